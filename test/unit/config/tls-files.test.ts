import { copyFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ReloadResult, TlsFiles } from '../../../src/config/tls-files.js';
import { createPki, SERVER_SAN } from '../../helpers/certs.js';

describe('TlsFiles', () => {
  it('refuses to start on files it cannot use, naming them', () => {
    const pki = createPki('files-start');
    const a = pki.issue('a', { cn: 'a', san: SERVER_SAN });
    const b = pki.issue('b', { cn: 'b', san: SERVER_SAN });
    expect(() => new TlsFiles({ cert: a.cert, key: b.key })).toThrow(`the key in ${b.key} does not belong to the certificate in ${a.cert}`);
    expect(() => new TlsFiles({ cert: path.join(pki.dir, 'missing.crt'), key: a.key })).toThrow(/cannot read the TLS certificate .*missing\.crt: ENOENT/);
    expect(() => new TlsFiles({ cert: a.key, key: a.key })).toThrow(/holds no PEM certificate/);
    expect(() => new TlsFiles({ cert: a.cert, key: a.key, clientCa: a.key })).toThrow(/holds no PEM certificate to verify client certificates/);
  });

  it('swaps only to a new valid pair, and says unchanged when the files hold what is served', () => {
    const pki = createPki('files-reload');
    const a = pki.issue('a', { cn: 'a', san: SERVER_SAN });
    const b = pki.issue('b', { cn: 'b', san: SERVER_SAN });
    const cert = path.join(pki.dir, 'live.crt');
    const key = path.join(pki.dir, 'live.key');
    copyFileSync(a.cert, cert);
    copyFileSync(a.key, key);
    const files = new TlsFiles({ cert, key, clientCa: pki.ca });
    const seen: Buffer[] = [];
    files.onChange((m) => seen.push(m.cert));
    expect(files.reload()).toEqual({ result: 'unchanged' });
    copyFileSync(b.cert, cert);
    const half = files.reload() as Extract<ReloadResult, { result: 'failed' }>;
    expect(half.result).toBe('failed');
    expect(half.error.message).toContain('does not belong');
    expect(files.current.cert.equals(a.certPem())).toBe(true);
    copyFileSync(b.key, key);
    expect(files.reload()).toEqual({ result: 'reloaded' });
    expect(seen).toHaveLength(1);
    expect(files.current.cert.equals(b.certPem())).toBe(true);
    // A rotated client CA alone is a change too.
    writeFileSync(pki.ca, Buffer.concat([pki.caPem(), a.certPem()]));
    expect(files.reload()).toEqual({ result: 'reloaded' });
    expect(files.current.minVersion).toBe('TLSv1.2');
    files.close();
  });
});
