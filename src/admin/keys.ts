// Dynamic API keys through the admin API:
//   POST /admin/keys {tenant, roles?, permissions?, id?, expires?, subject?} → 201, the key shown ONCE
//   GET /admin/keys?tenant= → the policy's static keys and the dynamic ones (never digests or keys)
//   POST /admin/keys/:id/rotate {grace?} → 201, a new key (shown ONCE) for the same identity and
//   limits; the old one keeps working until the grace ends (default 24h), then it is expired
//   DELETE /admin/keys/:id → 204 for a dynamic key; 200 for a static key, which stays in the policy
//   but is refused from then on (the revocation is kept in the store: it outlasts reloads and
//   restarts); 404 unknown. Every replica refuses the key within ~1 s.
// A key id names one key: an id a static key of the running policy or a stored key has is 409
// KEY_ID_TAKEN (the reverse, a policy bringing a taken id, is refused by keyIdGuard in key-store.ts).
// The body is checked with the policy's own schemas for what static keys share with dynamic ones.
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { generateApiKey, hashApiKey } from '../authn/api-key.js';
import { isSafeListElement } from '../authn/claims.js';
import { type KeyStore, type StaticRevocation, type StoredKey, staticKeyIds } from '../authn/key-store.js';
import type { Plan } from '../core/plan.js';
import type { EventBus } from '../events.js';
import { type ApiKeySpec, apiKeySchema } from '../policy/schema.js';
import { formatPath } from '../policy/source-map.js';
import { closest } from '../policy/suggest.js';
import { parseDuration } from '../policy/values.js';
import type { AdminResponse, RegisterRoute } from './routes.js';

const VISIBLE = /^[\x21-\x7e]{1,256}$/;

const createKeySchema = z.strictObject({
  tenant: z.string().regex(VISIBLE, 'expected 1 to 256 visible ASCII characters'),
  roles: z.array(z.string().refine(isSafeListElement, 'a role name must be visible ASCII without spaces or commas')).max(64).optional(),
  permissions: apiKeySchema.shape.permissions.unwrap().max(256).optional(),
  id: apiKeySchema.shape.id.max(128).optional(),
  expires: z
    .string()
    .refine((s) => Number.isFinite(Date.parse(s)), { message: 'expected a date (e.g. 2027-01-01)', abort: true })
    .refine((s) => Date.parse(s) > Date.now(), 'is in the past')
    .nullable()
    .optional(),
  subject: z.string().regex(VISIBLE, 'expected 1 to 256 visible ASCII characters').optional(),
  limits: apiKeySchema.shape.limits,
});
const FIELDS = Object.keys(createKeySchema.shape);

const rotateSchema = z.strictObject({
  grace: z
    .string()
    .regex(/^\d+(ms|s|m|h|d)$/, 'expected a duration such as 30m, 24h or 7d')
    .optional(),
});
/** How long a rotated key keeps working when the rotation names no grace. */
const DEFAULT_GRACE = '24h';

const problem = (code: 'INVALID_BODY' | 'UNKNOWN_ROLE' | 'KEY_ID_TAKEN' | 'NOT_FOUND' | 'KEY_IS_STATIC', status: number, detail: string, extra?: Record<string, unknown>): AdminResponse => ({
  status,
  problem: { code, detail, extra },
});

/** Every issue as `field: message`, unknown fields with a did-you-mean. */
function invalid(issues: readonly z.core.$ZodIssue[]): AdminResponse {
  const errors: string[] = [];
  for (const issue of issues) {
    const path = formatPath(issue.path.filter((p): p is string | number => typeof p !== 'symbol'));
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys) {
        const hint = closest(k, FIELDS);
        errors.push(`${path === '' ? '' : `${path}.`}${k}: unknown field${hint ? ` (did you mean "${hint}"?)` : ''}`);
      }
    } else {
      errors.push(`${path === '' ? '(body)' : path}: ${issue.code === 'invalid_type' && issue.input === undefined ? 'required' : issue.message}`);
    }
  }
  return problem('INVALID_BODY', 400, errors.join('; '), { errors });
}

function publicView(k: StoredKey): Record<string, unknown> {
  return {
    id: k.id,
    tenant: k.tenant,
    subject: k.subject,
    roles: k.roles,
    permissions: k.permissions,
    created: k.created,
    expires: k.expires ?? null,
    limits: k.limits ?? null,
    rotatedFrom: k.rotatedFrom ?? null,
    rotatedTo: k.rotatedTo ?? null,
  };
}

type Status = 'active' | 'expired' | 'disabled' | 'revoked';

const expiry = (expires: string | Date | undefined): string | null => (expires === undefined ? null : expires instanceof Date ? expires.toISOString() : new Date(Date.parse(expires)).toISOString());

const statusOf = (expires: string | null, now: number): Status => (expires !== null && Date.parse(expires) <= now ? 'expired' : 'active');

/** A static key of the running policy as the API shows it: never its hash. */
function staticView(k: ApiKeySpec, revocation: StaticRevocation | undefined, now: number): Record<string, unknown> {
  const expires = expiry(k.expires);
  const status: Status = revocation !== undefined ? 'revoked' : k.disabled === true ? 'disabled' : statusOf(expires, now);
  return {
    id: k.id,
    source: 'policy',
    tenant: k.tenant ?? null,
    subject: k.subject ?? k.id,
    roles: k.roles ?? [],
    permissions: k.permissions ?? [],
    created: null,
    expires,
    limits: k.limits ?? null,
    status,
    revoked: revocation?.revoked ?? null,
  };
}

const digestOf = (k: ApiKeySpec): string => k.hash.slice('sha256:'.length);

export function keyRoutes(route: RegisterRoute, store: () => KeyStore, bus: EventBus, plan: () => Plan): void {
  route('POST', '/admin/keys', async (req) => {
    if (typeof req.body !== 'object' || req.body === null || Array.isArray(req.body)) {
      return problem('INVALID_BODY', 400, 'expected a JSON object {tenant, roles?, permissions?, id?, expires?, subject?}');
    }
    const parsed = createKeySchema.safeParse(req.body);
    if (!parsed.success) return invalid(parsed.error.issues);
    const body = parsed.data;
    if (body.limits?.burst !== undefined && body.limits.rate === undefined) return problem('INVALID_BODY', 400, 'limits.burst: needs limits.rate', { errors: ['limits.burst: needs limits.rate'] });
    const running = plan();
    // As in the policy, where an undeclared role is a warning; here it is refused: the key would be
    // created, handed out and then grant nothing.
    const declared = new Set(Object.keys(running.document.roles ?? {}));
    const unknown = (body.roles ?? []).filter((r) => !declared.has(r));
    if (unknown.length > 0) {
      const hints = unknown.map((r) => {
        const hint = closest(r, declared);
        return `"${r}"${hint ? ` (did you mean "${hint}"?)` : ''}`;
      });
      return problem('UNKNOWN_ROLE', 400, `the running policy declares no role ${hints.join(', ')} under roles`, { roles: unknown });
    }
    const tenant = body.tenant;
    const id = body.id ?? `${tenant.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]/, 'k')}-${randomBytes(6).toString('hex')}`;
    if (staticKeyIds(running).includes(id)) return problem('KEY_ID_TAKEN', 409, `the id "${id}" is taken by a static key of the running policy`);
    const expires = typeof body.expires === 'string' ? new Date(Date.parse(body.expires)).toISOString() : undefined;
    const key = generateApiKey();
    const stored: StoredKey = {
      id,
      digest: hashApiKey(key).slice('sha256:'.length),
      tenant,
      subject: body.subject ?? id,
      roles: body.roles ?? [],
      permissions: body.permissions ?? [],
      created: new Date().toISOString(),
      expires,
      ...(body.limits === undefined ? {} : { limits: body.limits }),
    };
    const r = await store().put(stored);
    if (r === 'duplicate') return problem('KEY_ID_TAKEN', 409, `the id "${id}" is taken by a dynamic key`);
    bus.publish({ type: 'key.created', keyId: id, tenant });
    return { status: 201, headers: { location: `/admin/keys/${encodeURIComponent(id)}` }, body: { ...publicView(stored), key } };
  });
  // The policy's static keys first (document order), then the dynamic ones (oldest first).
  route('GET', '/admin/keys', async (req) => {
    const query = req.query.get('tenant') ?? undefined;
    const tenant = query === '' ? undefined : query;
    const [keys, revocations, lastUsed] = await Promise.all([store().list(tenant), store().staticRevocations(), store().lastUsed()]);
    keys.sort((a, b) => a.created.localeCompare(b.created) || a.id.localeCompare(b.id));
    const now = Date.now();
    const statics = (plan().document.authentication?.apiKeys?.keys ?? [])
      .filter((k) => tenant === undefined || k.tenant === tenant)
      .map((k) => ({ ...staticView(k, revocations.get(digestOf(k)), now), lastUsed: lastUsed.get(k.id) ?? null }));
    const dynamics = keys.map((k) => {
      const view = publicView(k);
      return { ...view, source: 'dynamic', status: statusOf(view.expires as string | null, now), revoked: null, lastUsed: lastUsed.get(k.id) ?? null };
    });
    return { status: 200, body: { keys: [...statics, ...dynamics] } };
  });
  route('POST', '/admin/keys/:id/rotate', async (req) => {
    const id = req.params.id!;
    const parsed = rotateSchema.safeParse(req.body ?? {});
    if (!parsed.success) return invalid(parsed.error.issues);
    const old = await store().byId(id);
    if (old === undefined) {
      if (staticKeyIds(plan()).includes(id)) {
        return problem('KEY_IS_STATIC', 409, `"${id}" is a static key of the policy: rotate it there (portcullis keys create, add the new entry, and set expires on "${id}" to when the grace ends)`);
      }
      return problem('NOT_FOUND', 404, `no dynamic key with id "${id}"`);
    }
    const now = Date.now();
    const graceEnds = now + parseDuration(parsed.data.grace ?? DEFAULT_GRACE);
    const oldExpiry = old.expires === undefined ? Infinity : Date.parse(old.expires);
    const base = id.replace(/-r[0-9a-f]{8}$/, '');
    const key = generateApiKey();
    const fresh: StoredKey = {
      ...old,
      id: `${base}-r${randomBytes(4).toString('hex')}`,
      digest: hashApiKey(key).slice('sha256:'.length),
      created: new Date(now).toISOString(),
      rotatedFrom: id,
      rotatedTo: undefined,
    };
    if ((await store().put(fresh)) === 'duplicate') return problem('KEY_ID_TAKEN', 409, `the id "${fresh.id}" is taken; rotate again`);
    const retiring: StoredKey = { ...old, expires: new Date(Math.min(oldExpiry, graceEnds)).toISOString(), rotatedTo: fresh.id };
    if (!(await store().update(retiring))) {
      // Revoked while rotating: the new key must not outlive the decision to revoke the old one.
      await store().remove(fresh.id);
      return problem('NOT_FOUND', 404, `the key "${id}" was revoked while being rotated`);
    }
    bus.publish({ type: 'key.created', keyId: fresh.id, tenant: fresh.tenant });
    return {
      status: 201,
      headers: { location: `/admin/keys/${encodeURIComponent(fresh.id)}` },
      body: { ...publicView(fresh), key, previous: { id, expires: retiring.expires } },
    };
  });
  route('DELETE', '/admin/keys/:id', async (req) => {
    const id = req.params.id!;
    const removed = await store().remove(id);
    if (removed !== undefined) {
      bus.publish({ type: 'key.revoked', keyId: id });
      return { status: 204 };
    }
    const spec = (plan().document.authentication?.apiKeys?.keys ?? []).find((k) => k.id === id);
    if (spec === undefined) return problem('NOT_FOUND', 404, `no key with id "${id}" (neither in the running policy nor created through the admin API)`);
    const wanted: StaticRevocation = { digest: digestOf(spec), id, revoked: new Date().toISOString() };
    const inForce = await store().revokeStatic(wanted);
    if (inForce === wanted) bus.publish({ type: 'key.revoked', keyId: id });
    return {
      status: 200,
      body: {
        ...staticView(spec, inForce, Date.now()),
        note: `the policy still lists "${id}": the key stays refused while the store keeps this revocation; remove it from the policy to retire it for good`,
      },
    };
  });
}
