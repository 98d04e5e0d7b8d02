// The policy's value notations (durations, rates, sizes, quotas, percentages) turned into numbers.
// The schema already checked the notation, so a malformed value reaching these functions is a bug
// and throws; compile-time callers report through the schema, never through these exceptions.

const DURATION_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const RATE_PER = { s: 1, m: 60, h: 3_600 } as const;
const SIZE_BYTES = { b: 1, kb: 1_024, mb: 1_048_576, gb: 1_073_741_824 } as const;

export type QuotaWindow = 'minute' | 'hour' | 'day' | 'month';

export interface Quota {
  readonly limit: number;
  readonly window: QuotaWindow;
}

function fail(kind: string, value: string): never {
  throw new Error(`invalid ${kind} ${JSON.stringify(value)}`);
}

/** `250ms`, `30s`, `5m`, `1h`, `1d` → milliseconds. */
export function parseDuration(value: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(value);
  if (!m) fail('duration', value);
  return Number(m[1]) * DURATION_MS[m[2] as keyof typeof DURATION_MS];
}

/** `10/s`, `600/m`, `1000/h` → requests per second. */
export function parseRate(value: string): number {
  const m = /^(\d+)\/(s|m|h)$/.exec(value);
  if (!m) fail('rate', value);
  return Number(m[1]) / RATE_PER[m[2] as keyof typeof RATE_PER];
}

/** `512b`, `512kb`, `1mb`, `1gb` (case-insensitive, binary multiples) → bytes. */
export function parseSize(value: string): number {
  const m = /^(\d+)(b|kb|mb|gb)$/i.exec(value);
  if (!m) fail('size', value);
  return Number(m[1]) * SIZE_BYTES[m[2]!.toLowerCase() as keyof typeof SIZE_BYTES];
}

/** `1000/day` → `{ limit: 1000, window: 'day' }` (calendar windows in UTC). */
export function parseQuota(value: string): Quota {
  const m = /^(\d+)\/(minute|hour|day|month)$/.exec(value);
  if (!m) fail('quota', value);
  return { limit: Number(m[1]), window: m[2] as QuotaWindow };
}

/** `50%` → 0.5; `0%`..`100%`, decimals allowed (`12.5%`). */
export function parsePercent(value: string): number {
  const m = /^(\d{1,3}(?:\.\d+)?)%$/.exec(value);
  if (!m) fail('percentage', value);
  const n = Number(m[1]);
  if (n > 100) fail('percentage', value);
  return n / 100;
}
