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
  chunked: boolean;
}

const join = (prev: string | undefined, v: string): string => (prev === undefined ? v : `${prev}, ${v}`);

/** One pass over rawHeaders; names are compared by length first so most never get lower-cased. */
export function arrivalHeaders(raw: readonly string[]): ArrivalHeaders {
  const h: ArrivalHeaders = { host: undefined, forwardedFor: undefined, requestId: undefined, traceparent: undefined, contentLength: undefined, chunked: false };
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
        if (name.toLowerCase() === 'transfer-encoding') h.chunked = true;
        break;
    }
  }
  return h;
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
