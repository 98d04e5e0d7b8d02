// HOST:PORT as flags and env spell it: `0.0.0.0:8080`, `127.0.0.1:9090`, `[::1]:9090`, `:8080`.
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export function parseListen(value: string, what: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]*)):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`${what}: expected HOST:PORT such as 127.0.0.1:8080 or [::1]:8080 (got "${value}")`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** A URL a person can paste: wildcard binds are reached through loopback. */
export function displayUrl(url: string): string {
  return url.replace('//0.0.0.0:', '//127.0.0.1:').replace('//[::]:', '//[::1]:');
}
