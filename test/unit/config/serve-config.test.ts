import { describe, expect, it } from 'vitest';
import { displayUrl, parseListen } from '../../../src/config/address.js';
import { resolveServeConfig } from '../../../src/config/serve-config.js';

describe('serve configuration', () => {
  it('defaults to ./policies, 0.0.0.0:8080, admin 127.0.0.1:9090, no decision listener and a 30s drain', () => {
    expect(resolveServeConfig({}, {})).toEqual({
      policyPath: './policies',
      listen: { host: '0.0.0.0', port: 8080 },
      decisions: null,
      nginxHeaders: { uri: undefined, method: undefined },
      admin: { host: '127.0.0.1', port: 9090 },
      adminToken: undefined,
      drainMs: 30_000,
      demo: false,
      h2c: false,
      decisionsGrpc: null,
    });
  });

  it('takes the decision listener from --decisions or PORTCULLIS_DECISIONS, and allows --listen off only beside it', () => {
    const env = { PORTCULLIS_DECISIONS: '127.0.0.1:8081', PORTCULLIS_NGINX_URI_HEADER: 'X-Uri' };
    expect(resolveServeConfig({ listen: 'off' }, env)).toMatchObject({ listen: null, decisions: { host: '127.0.0.1', port: 8081 }, nginxHeaders: { uri: 'X-Uri' } });
    expect(resolveServeConfig({ decisions: ':9' }, env)).toMatchObject({ decisions: { host: '0.0.0.0', port: 9 } });
    expect(() => resolveServeConfig({ listen: 'off' }, {})).toThrow(/--decisions/);
    expect(() => resolveServeConfig({ decisions: 'nope' }, {})).toThrow(/--decisions: expected HOST:PORT/);
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

  it('takes the gRPC decision listener from --decisions-grpc or PORTCULLIS_DECISIONS_GRPC, and lets it serve alone', () => {
    expect(resolveServeConfig({}, { PORTCULLIS_DECISIONS_GRPC: '127.0.0.1:9292' }).decisionsGrpc).toEqual({ host: '127.0.0.1', port: 9292 });
    expect(resolveServeConfig({ 'decisions-grpc': '[::1]:1' }, { PORTCULLIS_DECISIONS_GRPC: '127.0.0.1:9292' }).decisionsGrpc).toEqual({ host: '::1', port: 1 });
    expect(resolveServeConfig({ 'decisions-grpc': 'off' }, { PORTCULLIS_DECISIONS_GRPC: '127.0.0.1:9292' }).decisionsGrpc).toBeNull();
    expect(resolveServeConfig({ listen: 'off', 'decisions-grpc': ':9292' }, {})).toMatchObject({ listen: null, decisionsGrpc: { host: '0.0.0.0', port: 9292 } });
    expect(() => resolveServeConfig({ listen: 'off' }, {})).toThrow(/--decisions HOST:PORT or --decisions-grpc HOST:PORT/);
    expect(() => resolveServeConfig({ 'decisions-grpc': '9292' }, {})).toThrow(/--decisions-grpc: expected HOST:PORT/);
  });

  it('shows wildcard binds as loopback URLs a person can paste', () => {
    expect(displayUrl('http://0.0.0.0:8080')).toBe('http://127.0.0.1:8080');
    expect(displayUrl('http://[::]:8080')).toBe('http://[::1]:8080');
  });
});
