// The TLS front of the proxy listener. It owns the handshake (TLS 1.2+, modern ciphers, optional
// or required client certificates, certificate reload) and hands each secured socket to the door
// that speaks the negotiated protocol: `h2` to the HTTP/2 handler when one is given, everything
// else (`http/1.1`, or no ALPN at all) to the node:http server of ProxyServer, exactly as if that
// server had accepted the socket itself, so its per-connection bookkeeping, parser limits and
// timeouts apply unchanged. Without an HTTP/2 handler only `http/1.1` is offered.
import type { Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import { createServer, type SecureContextOptions, type Server, type TLSSocket } from 'node:tls';
import { listenOn } from '../listen.js';

/** none: no certificate asked; optional: asked, verified when sent; require: no verified certificate, no handshake. */
type ClientAuth = 'none' | 'optional' | 'require';

/** The certificate, key and client CA in force, and word of each validated replacement (config/tls-files.ts). */
interface CertificateSource {
  readonly current: SecureContextOptions;
  onChange(listener: (next: SecureContextOptions) => void): void;
}

export interface TlsListenerOptions {
  readonly files: CertificateSource;
  readonly clientAuth: ClientAuth;
  /** ProxyServer's node:http server: every socket that did not negotiate h2. */
  readonly http: HttpServer;
  /** The HTTP/2 door; when present, ALPN offers `h2` first. */
  readonly h2?: ((socket: TLSSocket) => void) | undefined;
  /** Called on each failed handshake (counted, never logged per connection at info). */
  readonly onHandshakeError?: ((err: Error) => void) | undefined;
}

/** Longest a client may take to finish the handshake before the socket is closed. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

export class TlsListener {
  readonly #server: Server;
  /** Every accepted TCP connection still open, handshake done or not. */
  readonly #sockets = new Set<Socket>();

  constructor(options: TlsListenerOptions) {
    const { http, h2 } = options;
    this.#server = createServer(
      {
        ...options.files.current,
        requestCert: options.clientAuth !== 'none',
        rejectUnauthorized: options.clientAuth === 'require',
        ALPNProtocols: h2 === undefined ? ['http/1.1'] : ['h2', 'http/1.1'],
        handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      },
      (socket) => {
        // A peer certificate is read once per connection and remembered (authn/mtls.ts): a TLS 1.2
        // renegotiation must not change who the connection is.
        socket.disableRenegotiation();
        if (h2 !== undefined && socket.alpnProtocol === 'h2') h2(socket);
        else http.emit('connection', socket);
      },
    );
    this.#server.on('connection', (raw: Socket) => {
      this.#sockets.add(raw);
      raw.once('close', () => this.#sockets.delete(raw));
    });
    this.#server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      options.onHandshakeError?.(err);
      socket.destroy();
    });
    // node:http starts checking its header and request timeouts when it begins listening; this
    // server never listens itself (the TLS server accepts for it), so it is told it does.
    http.emit('listening');
    options.files.onChange((m) => this.#server.setSecureContext(m));
  }

  listen(host: string, port: number): Promise<string> {
    return listenOn(this.#server, host, port, 'https');
  }

  /** Stops accepting; resolves once every connection is gone (those handed over drain with their door). */
  close(): Promise<void> {
    if (!this.#server.listening) return Promise.resolve();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  /** Ends what the doors have not: connections still in their handshake when the drain is over. */
  destroyRemaining(): void {
    for (const s of this.#sockets) s.destroy();
  }
}
