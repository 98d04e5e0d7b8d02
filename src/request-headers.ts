// Request headers read straight from `rawHeaders`. Node builds `req.headers` (an object with every
// header, names lower-cased) on first access; the pipeline needs a handful of values, so it finds
// them in one pass over the raw list and never asks Node for that object on the hot path.
// Repeated headers are joined with ", " as Node would join them (a repeated X-Request-Id or
// traceparent then fails its validation, exactly as before).

/** The headers the server reads for every request, found in one pass. */
export interface ArrivalHeaders {
  host: string | undefined;
  forwardedFor: string | undefined;
  requestId: string | undefined;
  traceparent: string | undefined;
  contentLength: string | undefined;
  /** A Transfer-Encoding line was sent (the body is chunked, unless `badFraming`). */
  chunked: boolean;
  /**
   * The body's framing is not the one unambiguous form (RFC 9112 §6): more than one
   * Transfer-Encoding line, a coding list other than exactly `chunked`, or Transfer-Encoding beside
   * Content-Length. A proxy and its upstream could disagree on where such a body ends.
   */
  badFraming: boolean;
}

const join = (prev: string | undefined, v: string): string => (prev === undefined ? v : `${prev}, ${v}`);

/** One pass over rawHeaders; names are compared by length first so most never get lower-cased. */
export function arrivalHeaders(raw: readonly string[]): ArrivalHeaders {
  const h: ArrivalHeaders = { host: undefined, forwardedFor: undefined, requestId: undefined, traceparent: undefined, contentLength: undefined, chunked: false, badFraming: false };
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    switch (name.length) {
      case 4:
        if (h.host === undefined && name.toLowerCase() === 'host') h.host = raw[i + 1]!;
        break;
      case 11:
        if (name.toLowerCase() === 'traceparent') h.traceparent = join(h.traceparent, raw[i + 1]!);
        break;
      case 12:
        if (name.toLowerCase() === 'x-request-id') h.requestId = join(h.requestId, raw[i + 1]!);
        break;
      case 14:
        if (h.contentLength === undefined && name.toLowerCase() === 'content-length') h.contentLength = raw[i + 1]!;
        break;
      case 15:
        if (name.toLowerCase() === 'x-forwarded-for') h.forwardedFor = join(h.forwardedFor, raw[i + 1]!);
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') {
          // llhttp already refuses most ambiguous forms; what it lets through ("gzip, chunked", two
          // lines, an empty value on some versions) is refused here, on every Node version alike.
          if (h.chunked || !isChunked(raw[i + 1]!)) h.badFraming = true;
          h.chunked = true;
        }
        break;
    }
  }
  if (h.chunked && h.contentLength !== undefined) h.badFraming = true;
  return h;
}

/** Exactly "chunked", any case (Node has trimmed the surrounding whitespace). */
function isChunked(v: string): boolean {
  return v.length === 7 && (v === 'chunked' || v.toLowerCase() === 'chunked');
}

/** The first value of one header (`lowerName` lower-case), or undefined; repeats are the caller's to refuse. */
export function firstHeader(raw: readonly string[], lowerName: string): string | undefined {
  const n = lowerName.length;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === n && (name === lowerName || name.toLowerCase() === lowerName)) return raw[i + 1];
  }
  return undefined;
}
