import { describe, expect, it } from 'vitest';
import { resolveServeConfig } from '../../../src/config/serve-config.js';

describe('serve TLS configuration', () => {
  it('is cleartext without --tls-cert, and takes the files from flags or the environment', () => {
    expect(resolveServeConfig({}, {}).tls).toBeUndefined();
    expect(resolveServeConfig({ 'tls-cert': 'c.pem', 'tls-key': 'k.pem' }, {}).tls).toEqual({ cert: 'c.pem', key: 'k.pem', clientCa: undefined, clientAuth: 'none' });
    const env = { PORTCULLIS_TLS_CERT: '/t/c', PORTCULLIS_TLS_KEY: '/t/k', PORTCULLIS_TLS_CLIENT_CA: '/t/ca', PORTCULLIS_ADMIN_TLS_CERT: '/a/c', PORTCULLIS_ADMIN_TLS_KEY: '/a/k' };
    const config = resolveServeConfig({}, env);
    expect(config.tls).toEqual({ cert: '/t/c', key: '/t/k', clientCa: '/t/ca', clientAuth: 'optional' });
    expect(config.adminTls).toEqual({ cert: '/a/c', key: '/a/k', clientCa: undefined, clientAuth: 'none' });
    expect(resolveServeConfig({ 'tls-client-auth': 'require' }, env).tls?.clientAuth).toBe('require');
  });

  it('names every inconsistent combination', () => {
    expect(() => resolveServeConfig({ 'tls-cert': 'c' }, {})).toThrow('--tls-cert and --tls-key go together');
    expect(() => resolveServeConfig({ 'tls-client-ca': 'ca' }, {})).toThrow('need --tls-cert and --tls-key');
    expect(() => resolveServeConfig({ 'tls-cert': 'c', 'tls-key': 'k', 'tls-client-auth': 'require' }, {})).toThrow('--tls-client-auth require needs --tls-client-ca');
    expect(() => resolveServeConfig({ 'tls-cert': 'c', 'tls-key': 'k', 'tls-client-auth': 'always' }, {})).toThrow('expected none, optional or require');
    expect(() => resolveServeConfig({ 'admin-tls-key': 'k' }, {})).toThrow('--admin-tls-cert and --admin-tls-key go together');
  });
});
