// The path an event records: the canonical path, plus the query with every value whose name looks
// like a secret replaced by [REDACTED]. Requests without a query (the common case) cost nothing.
const REDACTED = '[REDACTED]';

export function redactedTarget(path: string, query: string, names: readonly string[]): string {
  if (query.length <= 1) return path;
  const parts = query.slice(1).split('&');
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    const eq = p.indexOf('=');
    let name = eq < 0 ? p : p.slice(0, eq);
    try {
      name = decodeURIComponent(name.replace(/\+/g, ' '));
    } catch {
      // Undecodable name: treat as secret rather than guess.
      parts[i] = `${REDACTED}=${REDACTED}`;
      continue;
    }
    const lower = name.toLowerCase();
    if (eq >= 0 && names.some((s) => lower.includes(s))) parts[i] = `${p.slice(0, eq)}=${REDACTED}`;
  }
  return `${path}?${parts.join('&')}`;
}
