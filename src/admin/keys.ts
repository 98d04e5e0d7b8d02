// Dynamic API keys through the admin API (issue 6):
//   POST /admin/keys {tenant, roles?, permissions?, id?, expires?, subject?} → 201, the key shown ONCE
//   GET /admin/keys?tenant= → list (never digests or keys)
//   DELETE /admin/keys/:id → 204 (404 unknown); every replica drops it from its cache within ~1 s.
import { randomBytes } from 'node:crypto';
import { hashApiKey } from '../authn/api-key.js';
import type { KeyStore, StoredKey } from '../authn/key-store.js';
import { generateApiKey } from '../cli/keys.js';
import type { EventBus } from '../events.js';
import type { AdminHandler, AdminMethod, AdminResponse } from './routes.js';

type Register = (method: AdminMethod, pattern: string, handler: AdminHandler) => void;

const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const VISIBLE = /^[\x21-\x7e]{1,256}$/;
const LIST_ITEM = /^[\x21-\x2b\x2d-\x7e]{1,256}$/;

const bad = (detail: string): AdminResponse => ({ status: 400, problem: { title: 'Bad Request', detail } });

function strings(v: unknown, name: string): string[] | string {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && LIST_ITEM.test(x))) return `${name} must be an array of names (visible ASCII, no commas)`;
  return v as string[];
}

export function publicView(k: StoredKey): Record<string, unknown> {
  return { id: k.id, tenant: k.tenant, subject: k.subject, roles: k.roles, permissions: k.permissions, created: k.created, expires: k.expires ?? null };
}

export function keyRoutes(route: Register, store: () => KeyStore, bus: EventBus): void {
  route('POST', '/admin/keys', async (req) => {
    const b = req.body;
    if (typeof b !== 'object' || b === null || Array.isArray(b)) return bad('expected a JSON object {tenant, roles?, permissions?, id?, expires?, subject?}');
    const body = b as Record<string, unknown>;
    if (typeof body.tenant !== 'string' || !VISIBLE.test(body.tenant)) return bad('tenant is required (visible ASCII)');
    const tenant = body.tenant;
    const roles = strings(body.roles, 'roles');
    if (typeof roles === 'string') return bad(roles);
    const permissions = strings(body.permissions, 'permissions');
    if (typeof permissions === 'string') return bad(permissions);
    const id = body.id ?? `${tenant.replace(/[^A-Za-z0-9_.-]/g, '-')}-${randomBytes(6).toString('hex')}`;
    if (typeof id !== 'string' || !ID.test(id)) return bad('id must be letters, digits, "_", "." or "-"');
    const subject = body.subject ?? id;
    if (typeof subject !== 'string' || !VISIBLE.test(subject)) return bad('subject must be visible ASCII');
    let expires: string | undefined;
    if (body.expires !== undefined && body.expires !== null) {
      const ms = typeof body.expires === 'string' ? Date.parse(body.expires) : NaN;
      if (!Number.isFinite(ms)) return bad('expires must be a date (e.g. 2027-01-01)');
      if (ms <= Date.now()) return bad('expires is in the past');
      expires = new Date(ms).toISOString();
    }
    const key = generateApiKey();
    const stored: StoredKey = { id, digest: hashApiKey(key).slice('sha256:'.length), tenant, subject, roles, permissions, created: new Date().toISOString(), expires };
    const r = await store().put(stored);
    if (r === 'duplicate') return { status: 409, problem: { title: 'Conflict', detail: `a key with id "${id}" already exists` } };
    bus.publish({ type: 'key.created', keyId: id, tenant });
    return { status: 201, headers: { location: `/admin/keys/${encodeURIComponent(id)}` }, body: { ...publicView(stored), key } };
  });
  route('GET', '/admin/keys', async (req) => {
    const tenant = req.query.get('tenant') ?? undefined;
    const keys = await store().list(tenant === '' ? undefined : tenant);
    keys.sort((a, b) => a.created.localeCompare(b.created) || a.id.localeCompare(b.id));
    return { status: 200, body: { keys: keys.map(publicView) } };
  });
  route('DELETE', '/admin/keys/:id', async (req) => {
    const id = req.params.id!;
    const removed = await store().remove(id);
    if (removed === undefined) return { status: 404, problem: { title: 'Not Found', detail: `no dynamic key with id "${id}"` } };
    bus.publish({ type: 'key.revoked', keyId: id });
    return { status: 204 };
  });
}
