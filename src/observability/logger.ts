// The one place logging is configured. Redaction lives here, once, so no caller can forget it:
// credentials and secrets are censored before a line is serialized, whatever logs them.
import pino, { type DestinationStream, type Level, type Logger } from 'pino';
import { safeJsonLine } from './safe-text.js';

export type { Logger } from 'pino';

const LEVELS: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Header names that carry credentials, wherever a headers object is logged. */
const SECRET_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key', 'x-auth-jwt'];
/** Object keys that name secrets, at the top level and one level down (`err.config.token` is not covered: log less). */
const SECRET_KEYS = ['apiKey', 'token', 'secret', 'password'];

export interface LoggerOptions {
  /** Default: LOG_LEVEL, else info. */
  readonly level?: string;
  /** Default: stdout. Tests pass a stream to capture lines. */
  readonly destination?: DestinationStream;
  /** More credential headers to censor, e.g. the policy's configured API key header. */
  readonly redactHeaders?: readonly string[];
}

export function resolveLevel(level: string | undefined): Level | 'silent' {
  const wanted = (level ?? process.env.LOG_LEVEL ?? 'info').trim().toLowerCase();
  if (!LEVELS.includes(wanted)) throw new Error(`LOG_LEVEL must be one of ${LEVELS.join(', ')} (got "${level ?? process.env.LOG_LEVEL}")`);
  return wanted as Level | 'silent';
}

function redactPaths(extraHeaders: readonly string[] = []): string[] {
  const headers = [...new Set([...SECRET_HEADERS, ...extraHeaders.map((h) => h.toLowerCase())])];
  const paths: string[] = [];
  for (const h of headers) {
    const key = `[${JSON.stringify(h)}]`;
    paths.push(`headers${key}`, `req.headers${key}`, `res.headers${key}`, `request.headers${key}`, `response.headers${key}`);
  }
  for (const k of SECRET_KEYS) paths.push(k, `*.${k}`);
  return paths;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      name: 'portcullis',
      level: resolveLevel(options.level),
      redact: { paths: redactPaths(options.redactHeaders), censor: '[REDACTED]' },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      // A logged value may come from a client (a target, a header): no raw bidi or C1 character in a line.
      hooks: { streamWrite: safeJsonLine },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
