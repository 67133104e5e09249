/**
 * Request headers of the team API's conveniences, parsed in one place: `Prefer: wait=N` (RFC 7240) and
 * `Idempotency-Key` (IETF draft-ietf-httpapi-idempotency-key-header).
 */
import { invalidRequest } from './problem';

/** The longest `Prefer: wait` honoured, seconds; a longer wait is cut to it (and `Preference-Applied` says so). */
export const MAX_PREFER_WAIT_S = 60;

/** Seconds from `Prefer: wait=N` (other preferences are ignored, as RFC 7240 allows); null without one. */
export function preferWait(header: string | undefined): number | null {
  if (!header) return null;
  for (const pref of header.split(',')) {
    const m = /^\s*wait\s*=\s*"?([^";\s]*)"?\s*(;.*)?$/i.exec(pref);
    if (!m) continue;
    if (!/^\d{1,6}$/.test(m[1]!)) throw invalidRequest([{ field: 'Prefer', reason: 'wait must be a whole number of seconds' }]);
    return Math.min(MAX_PREFER_WAIT_S, Number(m[1]));
  }
  return null;
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** The `Idempotency-Key` header (1–255 visible ASCII characters, optionally a quoted string); undefined without one. */
export function idempotencyKey(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const key = /^"(.*)"$/.exec(header)?.[1] ?? header;
  if (!IDEMPOTENCY_KEY.test(key)) throw invalidRequest([{ field: 'Idempotency-Key', reason: 'must be 1 to 255 visible ASCII characters' }]);
  return key;
}
