// A listener's certificate and key (and the client CA, for mTLS), read from files and kept current.
// Certificates are rotated by replacing files: cert-manager and kubelet swap a whole `..data`
// directory behind symlinks, an operator overwrites two files one after the other. So the
// directories are watched (a watch on a file follows the old inode and misses a symlink swap),
// changes are debounced, both files are read again and the pair is validated before it is used:
// a pair that does not load, or whose key does not belong to its certificate, keeps the old one.
// Open connections are unaffected by a swap; only new handshakes see the new certificate.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { dirname } from 'node:path';
import { createSecureContext, type SecureContextOptions } from 'node:tls';

/**
 * TLS 1.3 suites, then TLS 1.2 with forward secrecy and AEAD only (Mozilla "intermediate"): no
 * CBC, no RSA key exchange, no SHA-1 MACs.
 */
const MODERN_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export interface TlsFilePaths {
  readonly cert: string;
  readonly key: string;
  /** CA bundle that client certificates must chain to (mTLS). */
  readonly clientCa?: string | undefined;
}

/** What a listener is configured with: the files' contents plus the fixed protocol settings. */
export type TlsMaterial = SecureContextOptions & { readonly cert: Buffer; readonly key: Buffer; readonly ca?: Buffer | undefined };

/** What a reload attempt came to: `unchanged` when the files hold what is already served. */
export type ReloadResult = { readonly result: 'reloaded' | 'unchanged' } | { readonly result: 'failed'; readonly error: Error };

/** How long after the last file event a reload reads the files: a rotation writes several. */
const DEBOUNCE_MS = 200;

/**
 * Reads and validates a pair. Throws with a sentence naming the file when it cannot be used.
 * `createSecureContext` is what the listener itself will do with it; the explicit key check makes
 * the mismatch message plain whatever OpenSSL says.
 */
function readTlsMaterial(paths: TlsFilePaths): TlsMaterial {
  const cert = readPem(paths.cert, 'certificate');
  const key = readPem(paths.key, 'key');
  const ca = paths.clientCa === undefined ? undefined : readPem(paths.clientCa, 'client CA');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new Error(`${paths.cert} holds no PEM certificate: ${(err as Error).message}`);
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new Error(`${paths.key} holds no PEM private key: ${(err as Error).message}`);
  }
  if (!x509.checkPrivateKey(privateKey)) throw new Error(`the key in ${paths.key} does not belong to the certificate in ${paths.cert}`);
  // OpenSSL skips what is not a certificate in a CA bundle: a wrong file would verify no client at all.
  if (ca !== undefined && !ca.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`${paths.clientCa} holds no PEM certificate to verify client certificates with`);
  const material: TlsMaterial = { cert, key, ...(ca === undefined ? {} : { ca }), minVersion: 'TLSv1.2', ciphers: MODERN_CIPHERS, honorCipherOrder: true };
  try {
    createSecureContext(material);
  } catch (err) {
    throw new Error(`the TLS files ${paths.cert} / ${paths.key}${ca === undefined ? '' : ` / ${paths.clientCa}`} cannot be used: ${(err as Error).message}`);
  }
  return material;
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read the TLS ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * The current material of one listener and the watch that renews it. `onChange` receives each
 * validated new pair; `onResult` every attempt (for logs and the reload counter). Never throws
 * after construction: a bad rotation is a result, not a fault.
 */
export class TlsFiles {
  readonly #paths: TlsFilePaths;
  #current: TlsMaterial;
  readonly #watchers: FSWatcher[] = [];
  readonly #listeners: ((m: TlsMaterial) => void)[] = [];
  #onResult: ((r: ReloadResult) => void) | undefined;
  #timer: NodeJS.Timeout | undefined;

  /** Reads the files once; throws (start-up refuses) when they cannot be used. */
  constructor(paths: TlsFilePaths) {
    this.#paths = paths;
    this.#current = readTlsMaterial(paths);
  }

  get current(): TlsMaterial {
    return this.#current;
  }

  get paths(): TlsFilePaths {
    return this.#paths;
  }

  /** Called with every new, validated material. */
  onChange(listener: (m: TlsMaterial) => void): void {
    this.#listeners.push(listener);
  }

  /** Watches the files' directories; `onResult` hears every attempt. */
  watch(onResult: (r: ReloadResult) => void): void {
    this.#onResult = onResult;
    const dirs = new Set([this.#paths.cert, this.#paths.key, ...(this.#paths.clientCa === undefined ? [] : [this.#paths.clientCa])].map((p) => dirname(p)));
    for (const dir of dirs) {
      try {
        const w = watch(dir, { persistent: false }, () => this.#schedule());
        // A directory that goes away (an unmounted volume) ends its watch; the files served stay.
        w.on('error', () => w.close());
        this.#watchers.push(w);
      } catch (err) {
        onResult({ result: 'failed', error: new Error(`cannot watch ${dir}: ${(err as Error).message}`) });
      }
    }
  }

  /** Reads the files now (a file event, SIGHUP, a test) and swaps when they hold a new valid pair. */
  reload(): ReloadResult {
    let next: TlsMaterial;
    try {
      next = readTlsMaterial(this.#paths);
    } catch (err) {
      return this.#report({ result: 'failed', error: err as Error });
    }
    const cur = this.#current;
    if (next.cert.equals(cur.cert) && next.key.equals(cur.key) && sameBuffer(next.ca, cur.ca)) return this.#report({ result: 'unchanged' });
    this.#current = next;
    for (const l of this.#listeners) l(next);
    return this.#report({ result: 'reloaded' });
  }

  close(): void {
    clearTimeout(this.#timer);
    for (const w of this.#watchers) w.close();
    this.#watchers.length = 0;
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.reload(), DEBOUNCE_MS);
    this.#timer.unref();
  }

  #report(r: ReloadResult): ReloadResult {
    this.#onResult?.(r);
    return r;
  }
}

function sameBuffer(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a.equals(b);
}
