import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { adminTokenWeakness, checkAdminToken, isLoopbackHost } from '../../../src/config/admin-token.js';

describe('the admin token check', () => {
  it('accepts random tokens as openssl and Node make them', () => {
    for (let i = 0; i < 2_000; i++) {
      expect(adminTokenWeakness(randomBytes(32).toString('hex'))).toBeUndefined();
      expect(adminTokenWeakness(randomBytes(16).toString('hex'))).toBeUndefined();
      const b64 = randomBytes(32).toString('base64');
      // A random base64 token can contain a short word only between separators; that is rare enough.
      if (!/(^|[^a-z0-9])(secret|password|passwd|admin|token|test|testing|default|dummy|sample|demo|insecure|todo|fixme|letmein|qwerty)([^a-z0-9]|$)/i.test(b64)) {
        expect(adminTokenWeakness(b64), b64).toBeUndefined();
      }
    }
  });

  it('says why a token is too short, a placeholder or patterned', () => {
    expect(adminTokenWeakness('short-token')).toBe('it is 11 bytes long; at least 32 are required');
    expect(adminTokenWeakness('replace-me-with-a-long-random-token')).toMatch(/placeholder \(it contains "replaceme"\)/);
    expect(adminTokenWeakness('CHANGEME-CHANGEME-CHANGEME-CHANGEME')).toMatch(/placeholder/);
    expect(adminTokenWeakness('prod-admin-token-for-the-gateway-2025')).toMatch(/placeholder \(it contains "admin"\)/);
    expect(adminTokenWeakness('my_password_is_very_long_and_safe_1')).toMatch(/"password"/);
    expect(adminTokenWeakness('a'.repeat(64))).toBe('it uses only 1 different characters');
    expect(adminTokenWeakness('abcd1234'.repeat(5))).toMatch(/only 8|repeats/);
    expect(adminTokenWeakness('q7Xz9Lm2q7Xz9Lm2q7Xz9Lm2q7Xz9Lm2')).toBe('it repeats a shorter pattern');
    expect(adminTokenWeakness('abcdefghijklmnopqrstuvwxyz0123456789')).toBe('it is a run of consecutive characters');
  });

  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', 'localhost', 'LOCALHOST']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.10', '::ffff:10.0.0.1', 'example.com', '', '128.0.0.1']) expect(isLoopbackHost(h), h).toBe(false);
  });

  it('refuses a weak token off loopback, warns on loopback, and lets no token through (admin API disabled)', () => {
    expect(checkAdminToken('0.0.0.0', 9090, 'short')).toEqual({ refuse: expect.stringMatching(/^the admin listener 0\.0\.0\.0:9090 is not a loopback address.*5 bytes long/) });
    expect(checkAdminToken('::', 9090, 'short')).toEqual({ refuse: expect.stringContaining('[::]:9090') });
    expect(checkAdminToken('127.0.0.1', 9090, 'short')).toEqual({ warn: expect.stringContaining('accepted only because the admin listener 127.0.0.1:9090 is loopback') });
    expect(checkAdminToken('0.0.0.0', 9090, randomBytes(32).toString('hex'))).toBeUndefined();
    expect(checkAdminToken('0.0.0.0', 9090, undefined)).toBeUndefined();
  });
});
