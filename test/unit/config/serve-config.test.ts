import { describe, expect, it } from 'vitest';
import { displayUrl, parseListen } from '../../../src/config/address.js';
import { resolveServeConfig } from '../../../src/config/serve-config.js';

describe('serve configuration', () => {
  it('defaults to ./policies, 0.0.0.0:8080, admin 127.0.0.1:9090 and a 30s drain', () => {
    expect(resolveServeConfig({}, {})).toEqual({
      policyPath: './policies',
      listen: { host: '0.0.0.0', port: 8080 },
      admin: { host: '127.0.0.1', port: 9090 },
      adminToken: undefined,
      drainMs: 30_000,
      demo: false,
      h2c: false,
    });
  });

  it('takes the environment, and lets flags win over it', () => {
    const env = { PORTCULLIS_POLICY: '/etc/p', PORTCULLIS_LISTEN: '127.0.0.1:1', PORTCULLIS_ADMIN: '[::1]:2', PORTCULLIS_ADMIN_TOKEN: 't' };
    expect(resolveServeConfig({}, env)).toMatchObject({ policyPath: '/etc/p', listen: { host: '127.0.0.1', port: 1 }, admin: { host: '::1', port: 2 }, adminToken: 't' });
    expect(resolveServeConfig({ policy: 'x', listen: ':3', admin: 'off', drain: '500ms', demo: true }, env)).toMatchObject({
      policyPath: 'x',
      listen: { host: '0.0.0.0', port: 3 },
      admin: null,
      drainMs: 500,
      demo: true,
    });
  });

  it('refuses malformed addresses and durations with the flag named', () => {
    expect(() => parseListen('8080', '--listen')).toThrow(/--listen: expected HOST:PORT/);
    expect(() => parseListen('host:99999', '--admin')).toThrow(/--admin/);
    expect(() => resolveServeConfig({ drain: '30' }, {})).toThrow(/--drain: expected a duration/);
    expect(resolveServeConfig({}, { PORTCULLIS_ADMIN_TOKEN: '' }).adminToken).toBeUndefined();
  });

  it('turns h2c on with --h2c or PORTCULLIS_H2C=1, off by default, the flag winning', () => {
    expect(resolveServeConfig({}, {}).h2c).toBe(false);
    expect(resolveServeConfig({ h2c: true }, {}).h2c).toBe(true);
    expect(resolveServeConfig({}, { PORTCULLIS_H2C: '1' }).h2c).toBe(true);
    expect(resolveServeConfig({}, { PORTCULLIS_H2C: '0' }).h2c).toBe(false);
    expect(resolveServeConfig({ h2c: false }, { PORTCULLIS_H2C: '1' }).h2c).toBe(false);
  });

  it('shows wildcard binds as loopback URLs a person can paste', () => {
    expect(displayUrl('http://0.0.0.0:8080')).toBe('http://127.0.0.1:8080');
    expect(displayUrl('http://[::]:8080')).toBe('http://[::1]:8080');
  });
});
