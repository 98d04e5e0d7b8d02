// Admin API errors: RFC 9457 problem details built by the same problemJson as the proxy's denials,
// each with a stable `code` from the catalogue below. These are operator-facing answers, not request
// decisions, so they are not reason codes (no metrics label, no audit decision); a name shared with a
// reason code (BODY_TOO_LARGE) means the same thing. Codes are a contract: add, never rename.
import type { ServerResponse } from 'node:http';
import { PROBLEM_CONTENT_TYPE, problemJson } from '../core/reasons.js';

export const ADMIN_PROBLEMS = {
  ADMIN_UNAUTHORIZED: { status: 401, title: 'Unauthorized' },
  ADMIN_DISABLED: { status: 403, title: 'Forbidden' },
  NOT_FOUND: { status: 404, title: 'Not Found' },
  METHOD_NOT_ALLOWED: { status: 405, title: 'Method Not Allowed' },
  /** The body is not JSON. */
  INVALID_JSON: { status: 400, title: 'Bad Request' },
  /** The JSON does not match what the endpoint accepts: unknown fields, wrong types, bad values. */
  INVALID_BODY: { status: 400, title: 'Bad Request' },
  /** A role the running policy does not declare under `roles` (it would grant nothing). */
  UNKNOWN_ROLE: { status: 400, title: 'Bad Request' },
  /** Another key (static in the running policy, or dynamic in the store) has this id. */
  KEY_ID_TAKEN: { status: 409, title: 'Conflict' },
  /** A static key asked to be rotated: the policy holds it, so it is rotated there. */
  KEY_IS_STATIC: { status: 409, title: 'Conflict' },
  BODY_TOO_LARGE: { status: 413, title: 'Content Too Large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'Unsupported Media Type' },
  POLICY_REJECTED: { status: 422, title: 'Policy rejected' },
  INTERNAL_ERROR: { status: 500, title: 'Internal Server Error' },
  POLICY_NOT_LOADED: { status: 503, title: 'Service Unavailable' },
  // For handlers that name no code (see adminCodeFor).
  BAD_REQUEST: { status: 400, title: 'Bad Request' },
  CONFLICT: { status: 409, title: 'Conflict' },
  UNPROCESSABLE: { status: 422, title: 'Unprocessable Content' },
  SERVICE_UNAVAILABLE: { status: 503, title: 'Service Unavailable' },
} as const satisfies Record<string, { status: number; title: string }>;

export type AdminProblemCode = keyof typeof ADMIN_PROBLEMS;

/** The code of a handler's problem that names none (endpoints registered elsewhere), by status. */
const BY_STATUS: Readonly<Record<number, AdminProblemCode>> = {
  400: 'BAD_REQUEST',
  401: 'ADMIN_UNAUTHORIZED',
  403: 'ADMIN_DISABLED',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  409: 'CONFLICT',
  413: 'BODY_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  422: 'UNPROCESSABLE',
  503: 'SERVICE_UNAVAILABLE',
};

export function adminCodeFor(status: number): AdminProblemCode {
  return BY_STATUS[status] ?? 'INTERNAL_ERROR';
}

export function sendProblem(
  res: ServerResponse,
  code: AdminProblemCode,
  detail: string,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
  status: number = ADMIN_PROBLEMS[code].status,
  title: string = ADMIN_PROBLEMS[code].title,
): void {
  res.writeHead(status, { 'content-type': PROBLEM_CONTENT_TYPE, 'cache-control': 'no-store', ...headers });
  res.end(problemJson(code, status, title, detail, undefined, extra));
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}
