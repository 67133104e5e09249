/**
 * Where a webhook may be delivered. Only http(s); the target's name is resolved at delivery time and every address it
 * resolves to must be public — loopback, private, link-local, shared, multicast and reserved ranges are refused unless
 * WEBHOOK_ALLOW lists them (addresses or CIDR ranges, e.g. `127.0.0.1/32` for tests). The address checked is the one
 * the request then connects to (pinned): a name that resolves elsewhere a moment later cannot redirect the request.
 */
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

/** Ranges no webhook may reach unless allowed (RFC 6890 special-purpose ranges, IPv4 and IPv6). */
const SPECIAL_V4 = [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const;
const SPECIAL_V6 = [
  ['::', 128],
  ['::1', 128],
  // IPv4-mapped addresses (::ffff:0:0/96) are judged as the IPv4 address they carry (addressAllowed): BlockList would
  // match every IPv4 address against that range
  ['64:ff9b::', 96],
  ['100::', 64],
  ['2001::', 23],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const;

export class WebhookTargetRefused extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'WebhookTargetRefused';
  }
}

/** An allow-list from `WEBHOOK_ALLOW` entries: addresses or CIDR ranges. @throws TypeError for a malformed entry */
export function allowList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address, bits] = entry.split('/');
    const family = isIP(address ?? '');
    if (family === 0 || (bits !== undefined && !/^\d{1,3}$/.test(bits))) throw new TypeError(`WEBHOOK_ALLOW: ${entry} is not an address or a CIDR range`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) list.addAddress(address!, type);
    else list.addSubnet(address!, Number(bits), type);
  }
  return list;
}

const special = (() => {
  const list = new BlockList();
  for (const [net, bits] of SPECIAL_V4) list.addSubnet(net, bits, 'ipv4');
  for (const [net, bits] of SPECIAL_V6) list.addSubnet(net, bits, 'ipv6');
  return list;
})();

/** Whether a literal address may be reached: public, or allowed. */
export function addressAllowed(address: string, allowed: BlockList): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (allowed.check(address, type)) return true;
  // an IPv4-mapped IPv6 address is judged as the IPv4 address it carries
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped) return addressAllowed(mapped, allowed);
  return !special.check(address, type);
}

export interface PinnedTarget {
  url: URL;
  /** the address the request connects to, checked */
  address: string;
  family: 4 | 6;
}

/**
 * The target of a webhook URL, resolved and checked now. Every address the name resolves to must be allowed (a name
 * with one private address among public ones is refused: which one a client picks is not ours to predict).
 * @throws WebhookTargetRefused
 */
export async function resolveTarget(raw: string, allowed: BlockList): Promise<PinnedTarget> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WebhookTargetRefused('not a URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new WebhookTargetRefused(`${url.protocol} is not http(s)`);
  if (url.username || url.password) throw new WebhookTargetRefused('credentials in the URL');
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const addresses = isIP(host) ? [{ address: host, family: isIP(host) as 4 | 6 }] : await lookup(host, { all: true, verbatim: true }).catch(() => []);
  if (addresses.length === 0) throw new WebhookTargetRefused(`${host} does not resolve`);
  const refused = addresses.find((a) => !addressAllowed(a.address, allowed));
  if (refused) throw new WebhookTargetRefused(`${host} resolves to ${refused.address}, a private or reserved address (WEBHOOK_ALLOW can permit it)`);
  const first = addresses[0]!;
  return { url, address: first.address, family: first.family === 6 ? 6 : 4 };
}
