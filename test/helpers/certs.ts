// Certificates made for one test run with the openssl command line: a private CA, server
// certificates for 127.0.0.1/localhost, and client certificates with URI (SPIFFE) and DNS SANs.
// Everything is written under one temporary directory; file names say what they hold.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Pem {
  readonly cert: string;
  readonly key: string;
  /** The PEM texts, for Node clients. */
  certPem(): Buffer;
  keyPem(): Buffer;
}

export interface Pki {
  readonly dir: string;
  /** The CA certificate file. */
  readonly ca: string;
  caPem(): Buffer;
  /** A certificate signed by this CA; `san` such as `URI:spiffe://example.org/ns/a/sa/b,DNS:x.example.org`. */
  issue(name: string, options: { cn: string; san?: string; client?: boolean; days?: number }): Pem;
}

function openssl(args: readonly string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A new CA in a new temporary directory (`label` names it, so two CAs never verify each other's certificates). */
export function createPki(label = 'test'): Pki {
  const dir = mkdtempSync(path.join(os.tmpdir(), `pcs-pki-${label}-`));
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', `/CN=Portcullis ${label} CA`], dir);
  const ca = path.join(dir, 'ca.crt');
  return {
    dir,
    ca,
    caPem: () => readFileSync(ca),
    issue(name, { cn, san, client = false, days = 2 }) {
      const key = path.join(dir, `${name}.key`);
      const cert = path.join(dir, `${name}.crt`);
      const ext = path.join(dir, `${name}.ext`);
      const lines = [`basicConstraints=CA:FALSE`, `keyUsage=digitalSignature`, `extendedKeyUsage=${client ? 'clientAuth' : 'serverAuth'}`];
      if (san !== undefined) lines.push(`subjectAltName=${san}`);
      writeFileSync(ext, `${lines.join('\n')}\n`);
      openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
      openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', cert, '-days', String(days), '-extfile', ext], dir);
      return { cert, key, certPem: () => readFileSync(cert), keyPem: () => readFileSync(key) };
    },
  };
}

/** The server certificate every TLS test uses: valid for 127.0.0.1 and localhost. */
export const SERVER_SAN = 'IP:127.0.0.1,DNS:localhost';
