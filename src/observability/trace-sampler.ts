// OpenTelemetry tracing, main-thread side: the settings read from the standard OTEL_* variables and
// the sampling decision, made once per request in Engine.prepare. A request that is not sampled
// costs what the plain traceparent propagation costs; a sampled one carries a SampledSpan, which
// the stages and the door fill with performance.now() marks and the trace worker turns into spans.
// Nothing here loads the OpenTelemetry packages: only the worker does, and only when configured.
import { randomHex, TRACEPARENT, ZERO_SPAN, ZERO_TRACE } from './traceparent.js';

type TraceProtocol = 'http/protobuf' | 'http/json';
type RootSampler = 'always_on' | 'always_off' | 'traceidratio';

export interface TracingConfig {
  readonly protocol: TraceProtocol;
  /** The OTEL_TRACES_SAMPLER value as given (or its default), for the startup log. */
  readonly sampler: string;
  readonly root: RootSampler;
  /** Whether a valid incoming traceparent's sampled flag decides (the parentbased_* samplers). */
  readonly parentBased: boolean;
  /** The traceidratio sampler's probability, 0..1. */
  readonly ratio: number;
}

const SAMPLERS: Readonly<Record<string, readonly [RootSampler, boolean]>> = {
  always_on: ['always_on', false],
  always_off: ['always_off', false],
  traceidratio: ['traceidratio', false],
  parentbased_always_on: ['always_on', true],
  parentbased_always_off: ['always_off', true],
  parentbased_traceidratio: ['traceidratio', true],
};

/**
 * Tracing as the OTEL_* variables ask for it, or undefined when no OTLP endpoint is set (or the SDK
 * is disabled): then nothing of OpenTelemetry is loaded. Throws on a value it cannot honour, so that
 * a typo does not silently turn tracing off or sample everything.
 */
export function tracingFromEnv(env: NodeJS.ProcessEnv): TracingConfig | undefined {
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (!endpoint || env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return undefined;
  const exporter = env.OTEL_TRACES_EXPORTER?.trim().toLowerCase();
  if (exporter === 'none') return undefined;
  if (exporter && exporter !== 'otlp') throw new Error(`OTEL_TRACES_EXPORTER="${exporter}" is not supported: use otlp (or none)`);
  const protocol = (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL || env.OTEL_EXPORTER_OTLP_PROTOCOL || 'http/protobuf').trim();
  if (protocol !== 'http/protobuf' && protocol !== 'http/json') throw new Error(`OTEL_EXPORTER_OTLP_PROTOCOL="${protocol}" is not supported: use http/protobuf or http/json`);
  const sampler = (env.OTEL_TRACES_SAMPLER || 'parentbased_always_on').trim().toLowerCase();
  const known = SAMPLERS[sampler];
  if (known === undefined) throw new Error(`OTEL_TRACES_SAMPLER="${sampler}" is not supported: use one of ${Object.keys(SAMPLERS).join(', ')}`);
  const [root, parentBased] = known;
  let ratio = 1;
  const arg = env.OTEL_TRACES_SAMPLER_ARG?.trim();
  if (root === 'traceidratio' && arg) {
    ratio = Number(arg);
    if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) throw new Error(`OTEL_TRACES_SAMPLER_ARG="${arg}" is not a probability between 0 and 1`);
  }
  return { protocol, sampler, root, parentBased, ratio };
}

/** Where a SampledSpan keeps each mark (start, end pairs), in the order the trace worker reads them. */
export const MARK = { authnStart: 0, authnEnd: 1, authzStart: 2, authzEnd: 3, limitsStart: 4, limitsEnd: 5, upstreamStart: 6, upstreamEnd: 7 } as const;
export const MARKS = 8;

/** A sampled request's server span: its ids, and performance.now() marks (0: not reached). */
export class SampledSpan {
  /** The incoming traceparent's span id, or "" when this request started the trace. */
  readonly parentSpanId: string;
  readonly spanId: string;
  readonly marks = new Float64Array(MARKS);

  constructor(parentSpanId: string, spanId: string) {
    this.parentSpanId = parentSpanId;
    this.spanId = spanId;
  }
}

/** What the sampler writes to: the request context. */
export interface Traced {
  span: SampledSpan | undefined;
}

// Trace-id ratio on the low 52 bits of the trace id (what a double holds exactly): the same trace
// id gets the same decision on every replica.
const RATIO_SCALE = 2 ** 52;

export class TraceSampler {
  readonly #root: RootSampler;
  readonly #parentBased: boolean;
  readonly #threshold: number;

  constructor(config: TracingConfig) {
    this.#root = config.root;
    this.#parentBased = config.parentBased;
    this.#threshold = config.ratio * RATIO_SCALE;
  }

  /**
   * The traceparent to forward for a request that arrived with `header`: the same trace, a new span
   * id (the upstream call's), and the sampled flag this gateway decided. A sampled request gets its
   * SampledSpan on `into`; the server span's parent is the incoming span.
   */
  begin(header: string | string[] | undefined, into: Traced): string {
    let traceId: string;
    let parentSpanId = '';
    let parentSampled = false;
    const m = typeof header === 'string' ? TRACEPARENT.exec(header) : null;
    if (m !== null && m[1] !== 'ff' && m[2] !== ZERO_TRACE && m[3] !== ZERO_SPAN) {
      traceId = m[2]!;
      parentSpanId = m[3]!;
      parentSampled = (Number.parseInt(m[4]!, 16) & 1) === 1;
    } else {
      traceId = randomHex(16);
    }
    const upstreamSpanId = randomHex(8);
    let sampled: boolean;
    if (this.#parentBased && parentSpanId !== '') sampled = parentSampled;
    else if (this.#root === 'always_on') sampled = true;
    else if (this.#root === 'always_off') sampled = false;
    else sampled = Number.parseInt(traceId.slice(19), 16) < this.#threshold;
    if (!sampled) return `00-${traceId}-${upstreamSpanId}-00`;
    into.span = new SampledSpan(parentSpanId, randomHex(8));
    return `00-${traceId}-${upstreamSpanId}-01`;
  }
}
