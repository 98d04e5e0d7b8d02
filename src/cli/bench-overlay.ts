// What `portcullis bench` changes in the policy it measures, in memory: every upstream points at the
// stub (or --upstream), and the chosen route gets a credential it accepts — a temporary API key, or
// a JWT issuer with a freshly generated key — plus a role granting exactly what the route requires.
// A bench must not spend anything real: the store becomes a private in-memory one (unless asked
// otherwise) and audit goes to the bench's temporary directory. Routes, limits and tenant tiers are
// measured as written.
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import type { PolicyDocument } from '../policy/schema.js';
import type { CompiledRoute } from '../routing/route.js';

export const BENCH_ID = 'portcullis-bench';
const JWT_ISSUER = 'urn:portcullis:bench';
const JWT_AUDIENCE = 'portcullis-bench';

export interface BenchRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | undefined;
  /** How the request authenticates: none for a public route. */
  readonly credential: 'apiKey' | 'jwt' | 'none';
}

/** The route named, or the first that is not public (the one worth measuring). */
export function pickRoute(routes: readonly CompiledRoute[], name: string | undefined): CompiledRoute {
  if (name !== undefined) {
    const route = routes.find((r) => r.name === name);
    if (!route) throw new Error(`no route named "${name}" (routes: ${routes.map((r) => r.name).join(', ')})`);
    return route;
  }
  const route = routes.find((r) => !r.public) ?? routes[0];
  if (!route) throw new Error('the policy has no routes');
  return route;
}

/** A concrete path the pattern matches: `{param}` → its value (the tenant for tenantParam), `*` → x, `**` → bench. */
export function samplePath(pattern: string, params: Readonly<Record<string, string>>): string {
  return pattern
    .split('/')
    .map((s) => (s === '**' ? 'bench' : s === '*' ? 'x' : s.replace(/\{([^}]+)\}/g, (_, p: string) => params[p] ?? 'bench')))
    .join('/');
}

function methodOf(route: CompiledRoute): string {
  if (!route.methods || route.methods.has('GET')) return 'GET';
  return [...route.methods][0]!;
}

/**
 * Returns a changed copy of `doc` and the request to send. `doc` itself is not modified.
 * Async only because a JWT is signed with jose.
 */
export interface OverlayOptions {
  readonly upstreamUrl: string;
  readonly tenant: string;
  readonly durationMs: number;
  /** The bench's private directory (removed afterwards): audit is written there. Absolute. */
  readonly workDir: string;
  /** Keep store.url as written (--use-policy-store); otherwise limits live in this process only. */
  readonly usePolicyStore?: boolean;
}

export async function benchOverlay(doc: PolicyDocument, route: CompiledRoute, options: OverlayOptions): Promise<{ doc: PolicyDocument; request: BenchRequest }> {
  const out = structuredClone(doc);
  for (const spec of Object.values(out.upstreams ?? {})) {
    spec.url = options.upstreamUrl;
    delete spec.targets;
  }
  // Without store.url the limits (and dynamic keys) live in an in-memory store of this process:
  // a bench spends no real tenant's rate, quota or concurrency and leaves no key in a shared Redis.
  if (!options.usePolicyStore && out.store?.url !== undefined) delete out.store.url;
  // Bench traffic must not reach real audit destinations (a file, a SIEM webhook, a shared stream)
  // nor flood the terminal: the sinks become one file in the bench's own directory, by absolute
  // path so no rule for relative paths can place it elsewhere (events are still built, chained and
  // written, so their cost is measured). A spool is set even when the policy has none, for the same reason.
  if (out.audit !== undefined) {
    if (out.audit.sinks !== undefined && out.audit.sinks.length > 0) out.audit.sinks = [{ file: { path: join(options.workDir, 'audit.ndjson') } }];
    out.audit.spool = join(options.workDir, 'audit-spool');
  }
  const method = methodOf(route);
  const headers: Record<string, string> = {};
  const host = route.hosts ? [...route.hosts][0] : undefined;
  if (host) headers.host = host;
  const body = method === 'GET' || method === 'HEAD' || method === 'DELETE' || method === 'OPTIONS' ? undefined : '{"bench":true}';
  if (body !== undefined) headers['content-type'] = 'application/json';
  const spec = doc.routes?.[route.index];
  const tenantParam = spec?.tenantParam;
  const require = spec?.require ?? [];
  const authenticate = spec?.authenticate ?? ['apiKey', 'jwt'];
  const path = samplePath(route.matcher.pattern, tenantParam ? { [tenantParam]: options.tenant } : {});
  if (route.public) return { doc: out, request: { method, path, headers, body, credential: 'none' } };

  let roles: string[] = [];
  if (require.length > 0) {
    out.roles = { ...out.roles, [BENCH_ID]: { permissions: [...require] } };
    roles = [BENCH_ID];
  }
  const authn = (out.authentication ??= {});
  let credential: 'apiKey' | 'jwt';
  if (authenticate.includes('apiKey')) {
    const secret = `pcb_${randomBytes(24).toString('base64url')}`;
    const hash = `sha256:${createHash('sha256').update(secret).digest('hex')}`;
    const apiKeys = (authn.apiKeys ??= {});
    apiKeys.keys = [...(apiKeys.keys ?? []), { id: BENCH_ID, hash, tenant: options.tenant, subject: BENCH_ID, roles }];
    headers[(apiKeys.header ?? 'x-api-key').toLowerCase()] = secret;
    credential = 'apiKey';
  } else if (authenticate.includes('jwt')) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    authn.jwt = [
      ...(authn.jwt ?? []),
      {
        name: BENCH_ID,
        issuer: JWT_ISSUER,
        audience: JWT_AUDIENCE,
        publicKey: publicKey.export({ type: 'spki', format: 'pem' }) as string,
        algorithms: ['ES256'],
        claims: { subject: 'sub', tenant: 'tenant', roles: 'roles' },
      },
    ];
    // Valid for the whole run and then some; one token, so the verified-token cache is measured warm.
    const token = await new SignJWT({ tenant: options.tenant, roles })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
      .setIssuer(JWT_ISSUER)
      .setAudience(JWT_AUDIENCE)
      .setSubject(BENCH_ID)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + Math.ceil(options.durationMs / 1000) + 600)
      .sign(privateKey);
    headers.authorization = `Bearer ${token}`;
    credential = 'jwt';
  } else {
    throw new Error(`route "${route.name}" accepts no credential bench can make`);
  }

  return { doc: out, request: { method, path, headers, body, credential } };
}
