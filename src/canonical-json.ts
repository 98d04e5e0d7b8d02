// Canonical JSON: object keys sorted by UTF-16 code unit order at every level, no whitespace,
// undefined members dropped, numbers and strings as JSON.stringify writes them, a Date as its ISO
// string. The audit chain hashes it (a stable definition `audit verify` and third parties rely on)
// and the policy hash names a policy by it, not by its formatting or file split.
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}
