// h2c with prior knowledge on the cleartext listener: a client that knows the server speaks HTTP/2
// opens with the fixed 24-byte connection preface (RFC 9113 §3.4), which no HTTP/1.1 request line
// can start with. The first bytes of each new connection are compared with it, and the socket goes,
// bytes put back, to the HTTP/2 door or to the HTTP/1.1 server. Nothing else of HTTP is parsed here.
import { createServer, type Server, type Socket } from 'node:net';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export type SocketHandler = (socket: Socket) => void;

/**
 * Reads until the bytes seen either are the preface or cannot become it, then hands the socket
 * on with those bytes unshifted. A client that sends nothing in `timeoutMs` is closed.
 */
function sniffPreface(socket: Socket, h2: SocketHandler, other: SocketHandler, timeoutMs: number): void {
  let seen: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  const done = (to: SocketHandler): void => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('error', onError);
    socket.pause();
    socket.unshift(seen);
    to(socket);
    // node:http reads a fresh socket straight from its handle: the bytes put back reach its parser
    // only through 'data', which a socket paused here would never emit.
    if (to === other) socket.resume();
  };
  const onData = (chunk: Buffer): void => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, PREFACE.length);
    if (seen.compare(PREFACE, 0, n, 0, n) !== 0) return done(other);
    if (n === PREFACE.length) done(h2);
  };
  // A client that closes before the preface is decided: hand what came to HTTP/1.1, which answers it.
  const onEnd = (): void => done(other);
  const onError = (): void => {
    clearTimeout(timer);
    socket.destroy();
  };
  socket.on('data', onData);
  socket.once('end', onEnd);
  socket.on('error', onError);
}

/** A cleartext listener that serves HTTP/2 with prior knowledge beside HTTP/1.1 (`serve --h2c`). */
export function createSniffingServer(h2: SocketHandler, http1: SocketHandler, timeoutMs = 10_000): Server {
  return createServer({ noDelay: true }, (socket) => sniffPreface(socket, h2, http1, timeoutMs));
}
