// `portcullis explain PATH --method M --path P [--host H] [--header 'k: v']... [--as TENANT:ROLE,ROLE] [--json]`:
// one request decided by the real Plan and stages (as `portcullis test` does), printed as a trace a
// person can follow: canonical path, every route tried, authentication, permissions, tenant check.

import type { Plan } from '../core/plan.js';
import { REASONS } from '../core/reasons.js';
import { buildPlan } from '../engine/validate.js';
import { formatDiagnostic, PolicyError } from '../policy/diagnostics.js';
import { simulationPlaceholder } from '../policy/placeholders.js';
import { type Identity, type SimResult, SimulationError, simulate } from '../simulate/simulate.js';
import { type CliIo, EXIT, parseFlags, UsageError } from './command.js';

export const usage = `Usage: portcullis explain PATH --method M --path P [--host H] [--header 'k: v']... [--as TENANT:ROLE,ROLE | --client-cert NAMES] [--json]

Decides one request against the policy at PATH with the real pipeline stages (route, IP rules,
authentication, authorization; limits, breaker and forwarding are skipped) and prints the trace.

Options:
  --method M        HTTP method (default GET)
  --path P          request target, e.g. /v1/tenants/acme/reports/q1 (required)
  --host H          Host header (default localhost)
  --header 'k: v'   a request header; repeatable (e.g. a real x-api-key or Authorization)
  --as T:R,R        act as a principal of tenant T with roles R,R (":R" for no tenant)
  --client-cert N   connect with a verified client certificate of these names, mapped by
                    authentication.mtls: 'URI:spiffe://example.org/ns/a/sa/b,DNS:a.example.org,CN:a'
  --ip A            client address the IP rules see (default 127.0.0.1)
  --json            print the decision as JSON
  -h, --help

An env: value explain never uses (upstream and store URLs, audit sinks and keys, the forwarded
identity key) may be unset: a placeholder stands in and a warning names it. Values the decision
uses (JWT secrets and keys, API key hashes, roles) must be set: unset, the policy is refused.

API keys given with --header are looked up among the policy's static keys only. Dynamic keys
(created through the admin API) live in the store, which explain does not read: they explain as
AUTH_INVALID (unknown). Use --as to explain what such a key's tenant and roles may do.
`;

function parseHeader(h: string): [string, string] {
  const colon = h.indexOf(':');
  if (colon <= 0) throw new UsageError(`--header "${h}": expected 'name: value'`);
  return [h.slice(0, colon).trim(), h.slice(colon + 1).trim()];
}

function identityOf(as: string | undefined, clientCert: string | undefined): Identity | undefined {
  if (as !== undefined && clientCert !== undefined) throw new UsageError('give --as or --client-cert, not both');
  return as !== undefined ? parseAs(as) : clientCert !== undefined ? parseClientCert(clientCert) : undefined;
}

function parseAs(v: string): Identity {
  const colon = v.indexOf(':');
  if (colon === -1) throw new UsageError(`--as "${v}": expected TENANT:ROLE,ROLE`);
  const tenant = v.slice(0, colon);
  const roles = v
    .slice(colon + 1)
    .split(',')
    .map((r) => r.trim())
    .filter((r) => r !== '');
  return { as: { tenant: tenant === '' ? undefined : tenant, roles, subject: 'explain' } };
}

/** `URI:…,DNS:…,CN:…` → the names of a simulated client certificate (one of each at most). */
function parseClientCert(v: string): Identity {
  const cert: { uri?: string; dns?: string; cn?: string } = {};
  for (const part of v.split(',')) {
    const colon = part.indexOf(':');
    const kind = part.slice(0, colon).trim().toLowerCase();
    if (colon <= 0 || (kind !== 'uri' && kind !== 'dns' && kind !== 'cn')) throw new UsageError(`--client-cert "${v}": expected URI:…, DNS:… and/or CN:…, separated by commas`);
    cert[kind] = part.slice(colon + 1).trim();
  }
  return { clientCert: cert };
}

export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseFlags(argv, {
    method: { type: 'string' },
    path: { type: 'string' },
    host: { type: 'string' },
    header: { type: 'string', multiple: true },
    as: { type: 'string' },
    'client-cert': { type: 'string' },
    ip: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'PATH is required' : `unexpected argument "${positionals[1]}"`);
  if (values.path === undefined) throw new UsageError('--path is required');
  const headers = Object.fromEntries((values.header ?? []).map(parseHeader));
  const method = (values.method ?? 'GET').toUpperCase();

  let plan: Plan;
  try {
    const built = await buildPlan(positionals[0]!, { env: io.env, unsetEnv: simulationPlaceholder });
    plan = built.plan;
    for (const d of built.placeholders) io.stderr(`${formatDiagnostic(d)}\n`);
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    for (const d of err.diagnostics) io.stderr(`${formatDiagnostic(d)}\n`);
    return EXIT.failed;
  }
  let r: SimResult;
  try {
    r = await simulate(plan, { method, path: values.path, host: values.host, ip: values.ip, headers, identity: identityOf(values.as, values['client-cert']) });
  } catch (err) {
    if (!(err instanceof SimulationError)) throw err;
    io.stderr(`portcullis explain: ${err.message}\n`);
    return EXIT.failed;
  }
  const missing = r.deny?.extra?.missing;

  if (values.json) {
    io.stdout(
      `${JSON.stringify(
        {
          request: { method, path: values.path, host: values.host ?? 'localhost' },
          canonicalPath: r.canonicalPath ?? null,
          routes: r.attempts,
          route: r.route ?? null,
          principal:
            r.principal === undefined
              ? null
              : { subject: r.principal.subject, tenant: r.principal.tenant ?? null, roles: r.principal.roles, permissions: r.principal.permissions, via: r.principal.via },
          trace: r.trace,
          decision: r.decision,
          status: r.status,
          ...(missing !== undefined ? { missing } : {}),
          ...(r.shadowDecision !== undefined ? { shadowDecision: r.shadowDecision } : {}),
        },
        null,
        2,
      )}\n`,
    );
    return EXIT.ok;
  }

  const out: string[] = [];
  out.push(`request: ${method} ${values.path} (host ${values.host ?? 'localhost'})`);
  out.push(r.canonicalPath !== undefined ? `canonical path: ${r.canonicalPath}` : `canonical path: refused (${r.decision})`);
  if (r.attempts.length > 0) {
    out.push('routes:');
    for (const a of r.attempts) out.push(`  ${a.matched ? 'match   ' : 'no match'} ${a.route}: ${a.reason}`);
  }
  const p = r.principal;
  for (const step of r.trace) {
    if (step.stage === 'canonical' || step.stage === 'route') continue;
    out.push(`${step.stage}: ${step.message}`);
    if (step.stage === 'authenticate' && p !== undefined) {
      const perms = p.permissions.length > 0 ? `, permissions ${p.permissions.join(', ')}` : '';
      out.push(`principal: ${p.subject}, tenant ${p.tenant ?? '(none)'}, roles ${p.roles.join(', ') || '(none)'}${perms}, via ${p.via}`);
    }
  }
  if (r.shadowDecision !== undefined) out.push(`shadow decision: ${r.shadowDecision}`);
  if (r.decision === 'AUTH_INVALID' && r.trace.some((s) => s.stage === 'authenticate' && s.message.startsWith('apiKey:'))) {
    out.push("note: explain knows only the policy's static keys; a dynamic key (admin API) is unknown here");
  }
  out.push(r.decision === 'allow' ? 'decision: allow' : `decision: deny ${r.decision} (${REASONS[r.decision].status})${missing !== undefined ? `, missing ${String(missing)}` : ''}`);
  io.stdout(`${out.join('\n')}\n`);
  return EXIT.ok;
}
