import { addressAllowed, allowList, resolveTarget, WebhookTargetRefused } from './address';

describe('webhook targets', () => {
  const none = allowList([]);

  it.each([
    '127.0.0.1',
    '10.1.2.3',
    '172.16.0.1',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '::1',
    'fd00::1',
    'fe80::1',
    '::ffff:127.0.0.1',
    '224.0.0.1',
  ])('refuses %s', (address) => expect(addressAllowed(address, none)).toBe(false));

  it.each(['93.184.216.34', '8.8.8.8', '2606:4700:4700::1111'])('allows the public %s', (address) => expect(addressAllowed(address, none)).toBe(true));

  it('allows what the allow-list names, addresses and ranges', () => {
    const allowed = allowList(['127.0.0.1', '10.0.0.0/8']);
    expect(addressAllowed('127.0.0.1', allowed)).toBe(true);
    expect(addressAllowed('127.0.0.2', allowed)).toBe(false);
    expect(addressAllowed('10.9.8.7', allowed)).toBe(true);
    expect(() => allowList(['localhost'])).toThrow(TypeError);
  });

  it('resolves names and checks every address; refuses other schemes and credentials', async () => {
    await expect(resolveTarget('http://localhost:9/hook', none)).rejects.toBeInstanceOf(WebhookTargetRefused);
    await expect(resolveTarget('http://localhost:9/hook', allowList(['127.0.0.1', '::1']))).resolves.toMatchObject({
      address: expect.stringMatching(/^(127\.0\.0\.1|::1)$/),
    });
    await expect(resolveTarget('ftp://93.184.216.34/x', none)).rejects.toThrow(/not http/);
    await expect(resolveTarget('https://user:pw@93.184.216.34/x', none)).rejects.toThrow(/credentials/);
    await expect(resolveTarget('http://[::1]:8080/x', none)).rejects.toThrow(/private/);
    await expect(resolveTarget('https://93.184.216.34/x', none)).resolves.toMatchObject({ address: '93.184.216.34', family: 4 });
  });
});
