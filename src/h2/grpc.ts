// gRPC's view of a refusal. A gRPC client reads the outcome from grpc-status, not from the HTTP
// status, so every refusal is answered HTTP 200 trailers-only with the status the reason's HTTP
// status stands for; grpc-message carries the reason code so logs on both sides name the same thing.
import { type Deny, REASONS, statusOf } from '../core/reasons.js';

/** gRPC status codes (grpc/doc/statuscodes.md) the gateway answers with. */
const GrpcStatus = {
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** Whether a request is a gRPC call (application/grpc, application/grpc+proto, …). */
export function isGrpc(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.length >= 16 && contentType.slice(0, 16).toLowerCase() === 'application/grpc';
}

/** The gRPC status for an HTTP refusal status: by status, so every reason code has one. */
function grpcStatusOf(httpStatus: number): number {
  switch (httpStatus) {
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 413:
    case 429:
    case 431:
      return GrpcStatus.RESOURCE_EXHAUSTED;
    case 408:
    case 504:
      return GrpcStatus.DEADLINE_EXCEEDED;
    case 502:
    case 503:
      return GrpcStatus.UNAVAILABLE;
    case 400:
      return GrpcStatus.INVALID_ARGUMENT;
    default:
      return GrpcStatus.INTERNAL;
  }
}

/** The trailers-only head of a refusal: HTTP 200, grpc-status, grpc-message "<CODE>: <detail or message>". */
export function grpcRefusal(d: Deny, requestId: string): Record<string, string | number> {
  const text = `${d.code}: ${d.detail ?? REASONS[d.code].message}`;
  return {
    ':status': 200,
    'content-type': 'application/grpc',
    'grpc-status': grpcStatusOf(statusOf(d.code)),
    'grpc-message': percentEncoded(text),
    'x-request-id': requestId,
  };
}

/**
 * grpc-message's encoding (gRPC over HTTP/2): UTF-8, with every byte outside printable ASCII and
 * "%" itself percent-encoded; clients decode only that, so ":" and spaces stay as they are.
 */
function percentEncoded(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) out += byte < 0x20 || byte > 0x7e || byte === 0x25 ? `%${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte);
  return out;
}

const UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000_001 };

/** grpc-timeout ("100m", "5S", at most 8 digits and a unit) in milliseconds; undefined when absent or malformed. */
export function grpcTimeoutMs(value: string | undefined): number | undefined {
  if (value === undefined || value.length < 2 || value.length > 9) return undefined;
  const unit = UNITS[value[value.length - 1]!];
  const digits = value.slice(0, -1);
  if (unit === undefined || !/^[0-9]+$/.test(digits)) return undefined;
  return Math.max(1, Math.ceil(Number(digits) * unit));
}
