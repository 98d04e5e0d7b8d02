// The admin listener's endpoint table: `route('GET', '/admin/tenants/:id/usage', handler)`. Patterns are
// split once at registration; lookup walks the (small) table per admin request.
import type { AdminProblemCode } from './problem.js';

export type AdminMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

interface AdminRequest {
  readonly method: string;
  readonly path: string;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** Parsed JSON body, or undefined when there was none. */
  readonly body: unknown;
}

/**
 * A handler's answer: JSON `body` with `status`; `problem` makes it an application/problem+json error
 * whose `code` is from ADMIN_PROBLEMS (problem.ts; derived from the status when not given).
 */
export interface AdminResponse {
  readonly status: number;
  readonly body?: unknown | undefined;
  readonly headers?: Readonly<Record<string, string>> | undefined;
  readonly problem?: { readonly code?: AdminProblemCode | undefined; readonly title?: string | undefined; readonly detail: string; readonly extra?: Record<string, unknown> | undefined } | undefined;
}

export type AdminHandler = (req: AdminRequest) => AdminResponse | Promise<AdminResponse>;

interface Entry {
  readonly method: string;
  readonly segments: readonly string[];
  readonly handler: AdminHandler;
}

export type Lookup =
  | { readonly kind: 'found'; readonly handler: AdminHandler; readonly params: Record<string, string> }
  | { readonly kind: 'method'; readonly allow: readonly string[] }
  | { readonly kind: 'none' };

function split(path: string): string[] {
  return path.split('/').filter((s) => s !== '');
}

export class AdminRoutes {
  #entries: Entry[] = [];

  add(method: AdminMethod, pattern: string, handler: AdminHandler): void {
    if (!pattern.startsWith('/')) throw new Error(`admin route patterns start with "/" (got ${pattern})`);
    if (['/metrics', '/healthz', '/readyz'].includes(pattern)) throw new Error(`${pattern} is built in`);
    const segments = split(pattern);
    const clash = this.#entries.find((e) => e.method === method && e.segments.join('/') === segments.join('/'));
    if (clash) throw new Error(`admin route ${method} ${pattern} is already registered`);
    this.#entries.push({ method, segments, handler });
  }

  lookup(method: string, path: string): Lookup {
    const parts = split(path);
    const allow: string[] = [];
    for (const e of this.#entries) {
      const params = match(e.segments, parts);
      if (!params) continue;
      if (e.method === method || (method === 'HEAD' && e.method === 'GET')) return { kind: 'found', handler: e.handler, params };
      allow.push(e.method);
    }
    return allow.length > 0 ? { kind: 'method', allow } : { kind: 'none' };
  }
}

function match(segments: readonly string[], parts: readonly string[]): Record<string, string> | undefined {
  if (segments.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    const p = parts[i]!;
    if (s.startsWith(':')) {
      try {
        params[s.slice(1)] = decodeURIComponent(p);
      } catch {
        return undefined;
      }
    } else if (s !== p) return undefined;
  }
  return params;
}

/** How a module of admin handlers adds them to the admin listener. */
export type RegisterRoute = (method: AdminMethod, pattern: string, handler: AdminHandler) => void;
