import { describe, expect, it } from 'vitest';
import { type Traced, TraceSampler, tracingFromEnv } from '../../../src/observability/trace-sampler.js';

const ENDPOINT = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' };
const PARENT = '00f067aa0ba902b7';
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';

function sampler(env: NodeJS.ProcessEnv): TraceSampler {
  const config = tracingFromEnv({ ...ENDPOINT, ...env });
  if (config === undefined) throw new Error('tracing off');
  return new TraceSampler(config);
}

function begin(s: TraceSampler, header?: string): { traceparent: string; into: Traced } {
  const into: Traced = { span: undefined };
  return { traceparent: s.begin(header, into), into };
}

describe('tracingFromEnv', () => {
  it('is off without an OTLP endpoint, with OTEL_SDK_DISABLED=true and with OTEL_TRACES_EXPORTER=none', () => {
    expect(tracingFromEnv({ OTEL_SERVICE_NAME: 'x', OTEL_TRACES_SAMPLER: 'always_on' })).toBeUndefined();
    expect(tracingFromEnv({ ...ENDPOINT, OTEL_SDK_DISABLED: 'true' })).toBeUndefined();
    expect(tracingFromEnv({ ...ENDPOINT, OTEL_TRACES_EXPORTER: 'none' })).toBeUndefined();
  });

  it('defaults to http/protobuf and parentbased_always_on, as the OpenTelemetry specification does', () => {
    expect(tracingFromEnv(ENDPOINT)).toEqual({ protocol: 'http/protobuf', sampler: 'parentbased_always_on', root: 'always_on', parentBased: true, ratio: 1 });
    expect(tracingFromEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c/v1/traces', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json' })?.protocol).toBe('http/json');
  });

  it('reads the ratio of traceidratio samplers from OTEL_TRACES_SAMPLER_ARG', () => {
    expect(tracingFromEnv({ ...ENDPOINT, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.01' })).toMatchObject({ root: 'traceidratio', parentBased: true, ratio: 0.01 });
    expect(tracingFromEnv({ ...ENDPOINT, OTEL_TRACES_SAMPLER: 'traceidratio' })).toMatchObject({ parentBased: false, ratio: 1 });
  });

  it('refuses what it cannot honour with a message naming the variable', () => {
    expect(() => tracingFromEnv({ ...ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toThrow(/OTEL_EXPORTER_OTLP_PROTOCOL="grpc"/);
    expect(() => tracingFromEnv({ ...ENDPOINT, OTEL_TRACES_SAMPLER: 'jaeger_remote' })).toThrow(/OTEL_TRACES_SAMPLER="jaeger_remote"/);
    expect(() => tracingFromEnv({ ...ENDPOINT, OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '1.5' })).toThrow(/OTEL_TRACES_SAMPLER_ARG="1.5"/);
    expect(() => tracingFromEnv({ ...ENDPOINT, OTEL_TRACES_EXPORTER: 'zipkin' })).toThrow(/OTEL_TRACES_EXPORTER/);
  });
});

describe('TraceSampler', () => {
  it('keeps the caller trace id, gives the upstream hop a new span id, and parents the server span on the caller span', () => {
    const { traceparent, into } = begin(sampler({}), `00-${TRACE}-${PARENT}-01`);
    expect(traceparent).toMatch(new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
    expect(traceparent.slice(36, 52)).not.toBe(PARENT);
    expect(into.span?.parentSpanId).toBe(PARENT);
    expect(into.span?.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(into.span?.spanId).not.toBe(traceparent.slice(36, 52));
  });

  it('starts a root span for an absent or invalid traceparent', () => {
    for (const header of [undefined, 'garbage', `ff-${TRACE}-${PARENT}-01`, `00-${'0'.repeat(32)}-${PARENT}-01`]) {
      const { traceparent, into } = begin(sampler({}), header);
      expect(traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      expect(traceparent.slice(3, 35)).not.toBe(TRACE);
      expect(into.span?.parentSpanId).toBe('');
    }
  });

  it('follows the caller flag when parent-based, whatever the root sampler says', () => {
    const off = sampler({ OTEL_TRACES_SAMPLER: 'parentbased_always_off' });
    expect(begin(off, `00-${TRACE}-${PARENT}-01`).into.span).toBeDefined();
    expect(begin(off).into.span).toBeUndefined();
    const on = sampler({});
    const unsampled = begin(on, `00-${TRACE}-${PARENT}-00`);
    expect(unsampled.into.span).toBeUndefined();
    expect(unsampled.traceparent).toMatch(new RegExp(`^00-${TRACE}-[0-9a-f]{16}-00$`));
  });

  it('ignores the caller flag when not parent-based', () => {
    expect(begin(sampler({ OTEL_TRACES_SAMPLER: 'always_on' }), `00-${TRACE}-${PARENT}-00`).into.span).toBeDefined();
    const off = begin(sampler({ OTEL_TRACES_SAMPLER: 'always_off' }), `00-${TRACE}-${PARENT}-01`);
    expect(off.into.span).toBeUndefined();
    expect(off.traceparent.endsWith('-00')).toBe(true);
  });

  it('samples a trace-id ratio: none at 0, all at 1, about the ratio between, the same decision for the same trace id', () => {
    const count = (ratio: string): number => {
      const s = sampler({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: ratio });
      let n = 0;
      for (let i = 0; i < 4000; i++) if (begin(s).into.span !== undefined) n++;
      return n;
    };
    expect(count('0')).toBe(0);
    expect(count('1')).toBe(4000);
    const quarter = count('0.25');
    expect(quarter).toBeGreaterThan(800);
    expect(quarter).toBeLessThan(1200);
    const s = sampler({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.5' });
    const low = `00-${'1'.repeat(19)}${'0'.repeat(13)}-${PARENT}-01`;
    const high = `00-${'1'.repeat(19)}${'f'.repeat(13)}-${PARENT}-01`;
    expect(begin(s, low).into.span).toBeDefined();
    expect(begin(s, high).into.span).toBeUndefined();
  });
});
