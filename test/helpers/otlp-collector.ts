// A fake OpenTelemetry collector on loopback: a node:http server on port 0 that takes OTLP/HTTP
// trace exports (protobuf or JSON), keeps every raw body (to grep for what must never be in one) and
// decodes the spans into one flat shape, whichever encoding they came in.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

type AttrValue = string | number | boolean;

export interface CollectedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** "" for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  /** OTLP kind: 1 internal, 2 server, 3 client. */
  readonly kind: number;
  readonly attributes: Readonly<Record<string, AttrValue>>;
  /** The resource attributes of the batch the span came in. */
  readonly resource: Readonly<Record<string, AttrValue>>;
}

interface Export {
  readonly path: string;
  readonly contentType: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
}

export interface Collector {
  /** http://127.0.0.1:port */
  readonly url: string;
  readonly exports: Export[];
  spans(): CollectedSpan[];
  close(): Promise<void>;
}

export async function startCollector(): Promise<Collector> {
  const exports: Export[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const contentType = req.headers['content-type'] ?? '';
      exports.push({ path: req.url ?? '', contentType, headers: req.headers, body: Buffer.concat(chunks) });
      // An empty ExportTraceServiceResponse: accepted in full.
      if (contentType.includes('json')) res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      else res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    exports,
    spans: () => exports.flatMap((e) => (e.contentType.includes('json') ? fromJson(e.body) : fromProtobuf(e.body))),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

interface JsonKeyValue {
  key: string;
  value: { stringValue?: string; intValue?: number | string; boolValue?: boolean; doubleValue?: number };
}
interface JsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: JsonKeyValue[];
}
interface JsonRequest {
  resourceSpans: { resource?: { attributes?: JsonKeyValue[] }; scopeSpans: { spans: JsonSpan[] }[] }[];
}

function jsonAttrs(kvs: JsonKeyValue[] | undefined): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const { key, value } of kvs ?? []) out[key] = value.stringValue ?? (value.intValue !== undefined ? Number(value.intValue) : (value.boolValue ?? value.doubleValue ?? ''));
  return out;
}

function fromJson(body: Buffer): CollectedSpan[] {
  const req = JSON.parse(body.toString('utf8')) as JsonRequest;
  return req.resourceSpans.flatMap((rs) => {
    const resource = jsonAttrs(rs.resource?.attributes);
    return rs.scopeSpans.flatMap((ss) =>
      ss.spans.map((s) => ({ traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? '', name: s.name, kind: s.kind, attributes: jsonAttrs(s.attributes), resource })),
    );
  });
}

// The protobuf wire format, as far as an ExportTraceServiceRequest needs it.
interface Field {
  readonly n: number;
  readonly varint: bigint;
  readonly bytes: Buffer;
}

function fields(buf: Buffer): Field[] {
  const out: Field[] = [];
  let i = 0;
  const varint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[i++]!;
      v |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return v;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const n = key >>> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ n, varint: varint(), bytes: Buffer.alloc(0) });
    else if (wire === 1) {
      out.push({ n, varint: 0n, bytes: buf.subarray(i, i + 8) });
      i += 8;
    } else if (wire === 2) {
      const len = Number(varint());
      out.push({ n, varint: 0n, bytes: buf.subarray(i, i + len) });
      i += len;
    } else if (wire === 5) {
      out.push({ n, varint: 0n, bytes: buf.subarray(i, i + 4) });
      i += 4;
    } else throw new Error(`unexpected protobuf wire type ${wire}`);
  }
  return out;
}

function pbAttrs(kvs: Field[]): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const kv of kvs) {
    const f = fields(kv.bytes);
    const key = f.find((x) => x.n === 1)?.bytes.toString('utf8') ?? '';
    const any = fields(f.find((x) => x.n === 2)?.bytes ?? Buffer.alloc(0))[0];
    if (any === undefined) continue;
    out[key] = any.n === 1 ? any.bytes.toString('utf8') : any.n === 2 ? any.varint === 1n : any.n === 3 ? Number(any.varint) : any.bytes.readDoubleLE(0);
  }
  return out;
}

function fromProtobuf(body: Buffer): CollectedSpan[] {
  const spans: CollectedSpan[] = [];
  for (const rs of fields(body).filter((f) => f.n === 1)) {
    const rsf = fields(rs.bytes);
    const resourceFields = fields(rsf.find((f) => f.n === 1)?.bytes ?? Buffer.alloc(0));
    const resource = pbAttrs(resourceFields.filter((f) => f.n === 1));
    for (const ss of rsf.filter((f) => f.n === 2)) {
      for (const sp of fields(ss.bytes).filter((f) => f.n === 2)) {
        const s = fields(sp.bytes);
        const get = (n: number): Field | undefined => s.find((f) => f.n === n);
        spans.push({
          traceId: get(1)?.bytes.toString('hex') ?? '',
          spanId: get(2)?.bytes.toString('hex') ?? '',
          parentSpanId: get(4)?.bytes.toString('hex') ?? '',
          name: get(5)?.bytes.toString('utf8') ?? '',
          kind: Number(get(6)?.varint ?? 0n),
          attributes: pbAttrs(s.filter((f) => f.n === 9)),
          resource,
        });
      }
    }
  }
  return spans;
}
