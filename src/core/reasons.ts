// The one catalogue of reason codes. Every denial carries one of these codes: it is the response
// body's `code`, the audit event's `decision.code`, the metrics label and what `explain` prints.
// Codes are a public contract: add new ones, never rename or renumber.

export const REASONS = {
  ROUTE_NOT_FOUND: { status: 404, title: 'Not Found', message: 'No route matches this request.' },
  BAD_REQUEST: { status: 400, title: 'Bad Request', message: 'The request is malformed or ambiguous.' },
  IP_DENIED: { status: 403, title: 'Forbidden', message: 'Requests from this address are not allowed.' },
  AUTH_MISSING: { status: 401, title: 'Unauthorized', message: 'This route requires credentials.' },
  AUTH_INVALID: { status: 401, title: 'Unauthorized', message: 'The credentials are not valid.' },
  AUTH_EXPIRED: { status: 401, title: 'Unauthorized', message: 'The credentials have expired.' },
  IDP_UNAVAILABLE: { status: 503, title: 'Service Unavailable', message: 'The identity provider cannot be reached to verify the credentials.' },
  LOCKED_OUT: { status: 429, title: 'Too Many Requests', message: 'Too many failed authentication attempts from this address.' },
  PERMISSION_DENIED: { status: 403, title: 'Forbidden', message: 'The caller lacks a permission this route requires.' },
  TENANT_MISMATCH: { status: 403, title: 'Forbidden', message: 'The caller may not act on another tenant.' },
  RATE_LIMITED: { status: 429, title: 'Too Many Requests', message: 'Rate limit exceeded.' },
  QUOTA_EXCEEDED: { status: 429, title: 'Too Many Requests', message: 'Quota for the current window is exhausted.' },
  CONCURRENCY_EXCEEDED: { status: 429, title: 'Too Many Requests', message: 'Too many requests in flight.' },
  BODY_TOO_LARGE: { status: 413, title: 'Content Too Large', message: 'The request body exceeds the size this route accepts.' },
  BREAKER_OPEN: { status: 503, title: 'Service Unavailable', message: 'The upstream is failing; its circuit breaker is open.' },
  STORE_UNAVAILABLE: { status: 503, title: 'Service Unavailable', message: 'The limits store cannot be reached.' },
  UPSTREAM_TIMEOUT: { status: 504, title: 'Gateway Timeout', message: 'The upstream did not answer in time.' },
  UPSTREAM_ERROR: { status: 502, title: 'Bad Gateway', message: 'The upstream could not be reached or failed.' },
  // The gateway itself failed (a bug or an infrastructure fault inside Portcullis): never an allow.
  GATEWAY_ERROR: { status: 500, title: 'Internal Server Error', message: 'The gateway failed to handle this request.' },
  // Refusals of the HTTP parser that are not a plain 400.
  HEADERS_TOO_LARGE: { status: 431, title: 'Request Header Fields Too Large', message: 'The request head is larger than the gateway accepts.' },
  REQUEST_TIMEOUT: { status: 408, title: 'Request Timeout', message: 'The request did not arrive in time.' },
  CORS_REJECTED: { status: 403, title: 'Forbidden', message: 'The cross-origin request is not allowed from this origin, or with this method or these headers.' },
  CONDITION_FAILED: { status: 403, title: 'Forbidden', message: "The request does not meet the route's condition." },
  UPSTREAM_UNAVAILABLE: { status: 503, title: 'Service Unavailable', message: 'No target of the upstream passes its health checks.' },
  TOKEN_QUOTA_EXCEEDED: { status: 429, title: 'Too Many Requests', message: 'Token quota for the current window is exhausted.' },
} as const satisfies Record<string, { status: number; title: string; message: string }>;

export type ReasonCode = keyof typeof REASONS;
export const REASON_CODES = Object.freeze(Object.keys(REASONS) as ReasonCode[]);

export function isReasonCode(value: string): value is ReasonCode {
  return Object.hasOwn(REASONS, value);
}

export function statusOf(code: ReasonCode): number {
  return REASONS[code].status;
}

/**
 * A stage's refusal. `detail` goes into the problem body (never secrets, never what was granted),
 * `headers` are added to the response (Retry-After, RateLimit, WWW-Authenticate).
 */
export interface Deny {
  readonly code: ReasonCode;
  readonly detail?: string | undefined;
  readonly headers?: Readonly<Record<string, string>> | undefined;
  /** Extra problem members, e.g. `{ missing: 'reports:export' }`. */
  readonly extra?: Readonly<Record<string, string | number | boolean>> | undefined;
}

const plainDenies = new Map<ReasonCode, Deny>();
for (const code of REASON_CODES) plainDenies.set(code, Object.freeze({ code }));

/** A Deny; the plain ones (no detail, no headers) are shared frozen objects, so denying allocates nothing. */
export function deny(code: ReasonCode, detail?: string, headers?: Record<string, string>, extra?: Deny['extra']): Deny {
  if (detail === undefined && headers === undefined && extra === undefined) return plainDenies.get(code)!;
  return { code, detail, headers, extra };
}

/** RFC 9457 problem details body for a denial. */
export function problemBody(d: Deny, requestId: string): string {
  const r = REASONS[d.code];
  return problemJson(d.code, r.status, r.title, d.detail ?? r.message, requestId, d.extra);
}

/**
 * The one problem+json builder: denials (problemBody) and the admin API's answers (src/admin/problem.ts,
 * whose codes live in their own catalogue there). `extra` members never replace the standard ones.
 */
export function problemJson(code: string, status: number, title: string, detail: string, requestId?: string, extra?: Readonly<Record<string, unknown>>): string {
  const body: Record<string, unknown> = {
    type: `https://portcullis.dev/problems/${code.toLowerCase().replace(/_/g, '-')}`,
    title,
    status,
    detail,
    code,
  };
  if (requestId !== undefined) body.requestId = requestId;
  if (extra) for (const k in extra) if (!(k in body)) body[k] = extra[k];
  return JSON.stringify(body);
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
