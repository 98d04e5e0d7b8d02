// The audit event as a zod schema: the published JSON Schema (schemas/audit-event.v1.json) is
// generated from it, and tests check written events against it. Keep in step with event.ts.
import { z } from 'zod';

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const systemTypes = [
  'policy.loaded',
  'policy.rejected',
  'breaker.transition',
  'key.created',
  'key.revoked',
  'lockout',
  'store.degraded',
  'store.recovered',
  'sink.failed',
  'sink.recovered',
  'audit.checkpoint',
  'tenant.crossed',
  'upstream.health',
] as const;

export const auditEventSchema = z
  .strictObject({
    v: z.literal(1).describe('Event format version.'),
    id: z.string().min(1).describe('Unique, time-sortable id: <base36 ms>-<instance>.<pid>-<base36 counter>. Use it to de-duplicate (delivery is at-least-once).'),
    time: z.iso.datetime().describe('When the event was recorded (UTC, ISO 8601).'),
    type: z.enum(['request', ...systemTypes]).describe('"request", or the system event type.'),
    severity: z.enum(['info', 'notice', 'warning', 'error']),
    request: z
      .strictObject({
        id: z.string(),
        method: z.string().describe('As sent; "" when a refused request\'s line could not be recovered.'),
        path: z
          .string()
          .describe(
            'Canonical path, or for a request refused before it had one (parser or canonicaliser refusal) the target as sent, cut at 2048 characters and then ending in "…"; "" when it could not be recovered. Query values whose names look secret are [REDACTED]. In the written line DEL, C1 controls, U+2028/2029 and bidi formatting characters are \\u escapes, never raw.',
          ),
        route: z.string().nullable(),
        upstreamPath: z.string().nullable().describe("The path the upstream got (percent-encoded, without the query) when the route's rewrite changed it; null when it got the canonical path."),
        ip: z.string().describe('The client address (the socket peer for a request the parser refused).'),
        via: z.literal('decision').optional().describe('Present when a data plane asked a decision listener instead of Portcullis proxying the request.'),
        door: z.enum(['envoy-grpc', 'envoy-http', 'forward-auth', 'nginx']).optional().describe('The decision door that asked (with via "decision").'),
      })
      .nullable(),
    actor: z.strictObject({ subject: z.string().nullable(), tenant: z.string().nullable(), keyId: z.string().nullable(), via: z.string().nullable() }).nullable(),
    decision: z
      .strictObject({
        allowed: z.boolean(),
        code: z.string().nullable().describe('Reason code from the catalogue (src/core/reasons.ts); null when allowed.'),
        permission: z.string().nullable(),
        shadow: z.string().nullable().describe('Shadow routes: the decision that was not enforced.'),
      })
      .nullable(),
    response: z
      .strictObject({
        status: z.number().int(),
        durationMs: z.number(),
        tokens: z.number().int().nonnegative().nullable().describe('Tokens charged for a metered upstream response (`usage`); null when not metered.'),
      })
      .nullable(),
    detail: z.record(z.string(), z.unknown()).nullable().describe("System events: the event's fields."),
    chain: z
      .strictObject({
        instance: z.string(),
        seq: z.number().int().nonnegative(),
        prev: hex64,
        hash: hex64.describe('sha256(prev ‖ canonical JSON of the event without chain.hash); see src/audit/chain.ts.'),
      })
      .optional(),
  })
  .describe('Portcullis audit event, version 1 (one per NDJSON line).');

export function auditEventJsonSchema(): Record<string, unknown> {
  return { $id: 'https://portcullis.dev/schemas/audit-event.v1.json', ...z.toJSONSchema(auditEventSchema) };
}
