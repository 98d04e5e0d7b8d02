#!/usr/bin/env node
// Writes docs/policy-reference.md from the policy JSON Schema (policies/policy.schema.json, itself
// generated from src/policy/schema.ts by `npm run schema`). Every key, its type and constraints come
// from the schema; the sentences in NOTES add what a schema cannot say. Writes docs/policy-tests.md
// likewise from schemas/policy-test.schema.json (src/simulate/test-file.ts) and the example under
// docs/examples/tests/.
//   node scripts/gen-policy-docs.mjs          rewrite docs/policy-reference.md and docs/policy-tests.md
//   node scripts/gen-policy-docs.mjs --check  exit 1 when either file is stale (a test runs this)
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const SCHEMA = `${root}policies/policy.schema.json`;
const OUT = `${root}docs/policy-reference.md`;
const MAX_SAFE = 9007199254740991;

/** Key path (as rendered) → what the key does. Paths missing here get the schema's description only. */
const NOTES = {
  version: 'Always `1`.',
  $schema: 'Ignored by Portcullis; lets editors find the JSON Schema.',
  'upstreams.<name>': 'A named upstream; routes refer to it by name (`upstream`). With exactly one upstream, routes may omit `upstream`.',
  'upstreams.<name>.url': 'Where requests go. A path in the URL is prepended to the forwarded path. No query, fragment or credentials.',
  'upstreams.<name>.targets': 'Several URLs, used round robin, one circuit breaker per target. Set `url` or `targets`, not both.',
  'upstreams.<name>.timeouts.connect': 'Default 2s.',
  'upstreams.<name>.timeouts.response': 'Time to the response headers. Default 30s.',
  'upstreams.<name>.retries': 'Extra attempts for idempotent methods, only when no byte reached the upstream. Default 0.',
  'upstreams.<name>.breaker.consecutiveFailures': 'Open after this many failures in a row.',
  'upstreams.<name>.breaker.errorRate': 'Or open when this share of requests in `window` failed …',
  'upstreams.<name>.breaker.minRequests': '… once at least this many requests were seen in `window`.',
  'upstreams.<name>.breaker.cooldown': 'Time OPEN before HALF_OPEN.',
  'upstreams.<name>.breaker.halfOpenProbes': 'Requests let through while HALF_OPEN.',
  'upstreams.<name>.breaker.failOn': 'Statuses that count as failures (default 502, 503, 504; connect errors and timeouts always count).',
  'authentication.apiKeys.header': 'Header carrying the key. Default `x-api-key`.',
  'authentication.apiKeys.keys': 'Static keys. Only the hash is stored: `portcullis keys hash KEY` prints it.',
  'authentication.apiKeys.keys[].hash': '`sha256:` and the hex digest of the key.',
  'authentication.apiKeys.keys[].roles': 'A role that `roles` does not declare is a validation warning.',
  'authentication.apiKeys.keys[].expires': 'ISO 8601 time after which the key is refused.',
  'authentication.jwt': 'Trusted token issuers. A token is accepted when one issuer verifies it.',
  'authentication.jwt[].jwksUrl': 'Set exactly one of `jwksUrl`, `publicKey` (PEM, usually `file:`) or `secret` (HMAC, usually `env:`).',
  'authentication.jwt[].algorithms': 'Allow-list; a token signed with anything else is refused.',
  'authentication.jwt[].clockTolerance': 'Leeway for `exp`/`nbf`.',
  'authentication.jwt[].claims': 'Where the principal comes from in the token; dotted paths such as `realm_access.roles`.',
  'authentication.forward':
    'Headers the upstream receives with the principal. Client-sent copies (any case, any count, and `_` spellings such as `x_auth_tenant`) are always removed, as are copies of the default names when renamed. Names may not contain `_`.',
  'authentication.forward.subject': 'Default `x-auth-subject`.',
  'authentication.forward.tenant': 'Default `x-auth-tenant`.',
  'authentication.forward.roles': "Default `x-auth-roles`: the effective roles, comma-separated: the principal's own roles, then every role they inherit.",
  'authentication.forward.keyId': "Default `x-auth-key-id`: the API key's id, sent for API key callers only.",
  'authentication.forward.issuer': 'Default `x-auth-issuer`: the `name` of the `authentication.jwt` issuer that verified the token, sent for JWT callers only.',
  'authentication.forward.jwt': "Signed identity: a short-lived JWT carrying the principal, verifiable with the admin listener's `/.well-known/jwks.json`.",
  'authentication.forward.jwt.key': 'Ed25519 (EdDSA) or P-256 (ES256) private key in PEM; write it as `file:path`.',
  'authentication.forward.jwt.ttl': 'Token lifetime, 5s to 1h. Default 60s.',
  'authentication.forward.jwt.audience': 'The `aud` claim.',
  'authentication.forward.jwt.header': 'Default `x-auth-jwt`.',
  'authentication.forwardCredentials': 'Default false: the API key / Authorization header is removed before forwarding.',
  'authentication.lockout': 'Per client IP: after `failures` failed authentications within `window`, refuse with LOCKED_OUT for `duration`.',
  'authentication.lockout.ipv6Prefix': 'IPv6 clients are counted and locked out per network of this many leading bits. Default 64; 128 counts each address.',
  trustedProxies:
    'Only these peers may set X-Forwarded-For and X-Request-Id, and pass on X-Forwarded-Host, -Proto, -Port, -Prefix, -Server, -Scheme, -Ssl and Front-End-Https. From any other peer those are removed (the gateway writes its own X-Forwarded-For, -Proto and -Host).',
  paths: 'How paths that upstream frameworks read differently are handled.',
  'paths.emptySegments':
    'Empty segments (`/a//b`), which nginx (`merge_slashes`), Tomcat and others merge into one slash before routing. `unambiguous` (default): accepted only when the path with merged slashes matches the same route with the same parameters, else 400 BAD_REQUEST; the path is forwarded as written. `reject`: any `//` in the path is 400. `allow`: `//` is routed as written (only for upstreams that never merge slashes).',
  'paths.semicolons':
    '`;` path parameters (`/a;v=1/b`), which Tomcat, Jetty and Spring cut off every segment before routing. `unambiguous` (default): accepted only when the path without them matches the same route with the same parameters, else 400 BAD_REQUEST. `reject`: any `;` in the path is 400. `allow`: `;` is an ordinary character (only for upstreams that never strip parameters). Whatever the setting, a `.` or `..` segment with parameters (`..;`, `%2e%2e;`, `.;x`) or a segment that is only parameters (`/;x/`) is 400.',
  ipAllow: 'When set, only these client addresses are served (all routes).',
  ipDeny: 'These client addresses are refused (all routes).',
  'roles.<name>.inherits': 'Roles whose permissions this role also has.',
  'roles.<name>.permissions': '`resource:action` with `*` wildcards.',
  'tenants.tiers': 'Named limit tiers.',
  'tenants.tiers.<name>.rate': 'Token bucket refill rate per tenant.',
  'tenants.tiers.<name>.burst': 'Bucket size.',
  'tenants.tiers.<name>.quota': 'Requests per calendar window (UTC); no quota: unlimited.',
  'tenants.tiers.<name>.concurrency': 'Requests in flight per tenant.',
  'tenants.default': 'Tier of tenants not listed in `members`.',
  'tenants.members': 'Tenant → tier.',
  routes: 'First match in file order wins; no match answers 404 ROUTE_NOT_FOUND.',
  'routes[].match.path': 'Literal segments, `{name}` (one segment, captured), `*` (one segment), `**` (the rest). Matched on the canonical path, case-sensitive.',
  'routes[].match.host': 'Host name(s) without port, case-insensitive.',
  'routes[].public': 'No authentication. `require`, `tenantParam` and `authenticate` cannot be set on a public route.',
  'routes[].upstream': 'Optional when there is exactly one upstream.',
  'routes[].require': 'Permissions the principal must all have.',
  'routes[].tenantParam': "Path parameter that must equal the principal's tenant (else TENANT_MISMATCH).",
  'routes[].authenticate': 'Methods this route accepts. Default: every configured one.',
  'routes[].limits': 'Token buckets for this route, all checked in the one store call.',
  'routes[].limits[].by': 'What a bucket is per: `principal`, `tenant`, `key`, `ip` or `header:<name>`.',
  'routes[].limits[].burst': 'Bucket size; default the rate per second (at least 1).',
  'routes[].limits[].cost': 'Tokens one request takes. Default 1.',
  'routes[].limits[].ipv6Prefix':
    'For `by: ip`: IPv6 clients share a bucket per network of this many leading bits. Default 64 (the usual end-site allocation); 128 counts each address. Every spelling of an address, and an IPv4-mapped address, counts as one client.',
  'routes[].methodOverride':
    'Methods a POST may be turned into with `X-HTTP-Method-Override`, `X-HTTP-Method` or `X-Method-Override`. The request is then routed and authorized as that method and the header is forwarded. Without it those headers (and their `_` spellings) are removed. Each listed method must be one of `match.methods`. Once any route opts in, a request whose override headers disagree, repeat, or name no single method is 400, as is an honoured override on a method other than POST.',
  'routes[].maxBodySize': 'Larger bodies are refused with 413 BODY_TOO_LARGE.',
  'routes[].shadow': 'Decide and record, never enforce: for rolling out rules.',
  'routes[].audit': 'Which requests produce audit events. Default `all`.',
  'store.url': 'Redis URL, usually `env:REDIS_URL`. Absent: in-memory store (one instance only).',
  'store.onError': '`allow` (fail open, flagged) or `deny` (503 STORE_UNAVAILABLE) when the store is down.',
  'store.timeout':
    'How long Redis may stay silent while a check waits (default 50ms); then `onError` applies. Time a request spends queued inside the proxy does not count. A check that Redis runs more than ten times this (at least 500ms) after it was sent does nothing.',
  'store.slotTtl': 'A concurrency slot lives as long as its request: each replica renews its slots every third of this; the slots of a replica that died expire within it. Default 30s, at least 1s.',
  'audit.chain': 'Hash-chain every event (tamper evident): `portcullis audit verify` detects edits, deletions, insertions and reordering.',
  'audit.checkpoint':
    'Signed checkpoints (needs `chain: true`): an `audit.checkpoint` event in the chain signs the head before it, at `interval` when events were written since the last one, after `events` events, and on shutdown. `portcullis audit verify --key` checks them; `--expect-head SEQ:HASH` (from `GET /admin/audit/head` or the `audit checkpoint` log line) and `--closed` make a cut-off tail fail.',
  'audit.checkpoint.key':
    'Write it `env:NAME` or `file:path`. An HMAC secret (at least 32 bytes; `openssl rand -hex 32`), which auditors need too, or an Ed25519 private key in PEM (`openssl genpkey -algorithm ed25519`), whose public key is all an auditor needs and which cannot forge checkpoints.',
  'audit.sinks': 'Where events go; each sink is a one-key mapping.',
  'audit.spool': 'Directory where events wait while a sink fails.',
  upstreams: 'Where routes send requests, by name.',
  'upstreams.<name>.timeouts': 'Upstream timeouts; each key has its own default.',
  'upstreams.<name>.breaker':
    'A circuit breaker per target: when it opens, requests to that target are refused with 503 BREAKER_OPEN (and `Retry-After`) until `cooldown` has passed, then `halfOpenProbes` requests test it. An upstream without `breaker:` has no breaker: failures are never counted and its targets are always tried. A `breaker:` that sets neither trigger (`{}`) opens after 5 consecutive failures.',
  'upstreams.<name>.breaker.window': 'The sliding window `errorRate` and `minRequests` are counted over; at least 100ms.',
  authentication: 'How callers prove who they are. A route that is not `public` needs at least one method configured here.',
  'authentication.apiKeys': 'API keys in a request header. Keys created through the admin API (dynamic keys) need this section too.',
  'authentication.apiKeys.keys[].id': 'Names the key in logs, audit events (`x-auth-key-id` upstream) and the admin API; unique among static and dynamic keys.',
  'authentication.apiKeys.keys[].tenant': 'The tenant the key acts for (`tenantParam`, tenant limits, `x-auth-tenant`).',
  'authentication.apiKeys.keys[].subject': "The principal's subject (`x-auth-subject`).",
  'authentication.apiKeys.keys[].permissions': 'Permissions granted directly, in addition to those of `roles`.',
  'authentication.apiKeys.keys[].disabled':
    'A disabled key is refused with the same 401 AUTH_INVALID as an unknown one. A key can also be disabled at runtime without editing the policy: `portcullis keys revoke ID --admin URL`.',
  'authentication.jwt[].name': 'Names the issuer in metrics, logs and `x-auth-issuer`.',
  'authentication.jwt[].issuer': 'The `iss` claim a token must carry.',
  'authentication.jwt[].audience': 'The `aud` a token must carry (one of them, when a list).',
  'authentication.jwt[].publicKey': 'A PEM public key, certificate or JWK (usually `file:`).',
  'authentication.jwt[].secret': 'An HMAC secret for HS256/384/512, at least 32 bytes (usually `env:`).',
  'authentication.jwt[].typ': 'The `typ` header a token must carry (e.g. `at+jwt`); compared case-insensitively, with or without the `application/` prefix.',
  'authentication.jwt[].cooldown': 'With `jwksUrl`: the least time between two JWKS fetches (a token with an unknown `kid` triggers one), and how long fetches fail fast after a failed one.',
  'authentication.jwt[].cacheMaxAge': 'With `jwksUrl`: a key set older than this is refreshed in the background; while the IdP is down the old keys keep verifying.',
  'authentication.jwt[].claims.subject': 'Claim path of the subject.',
  'authentication.jwt[].claims.tenant': 'Claim path of the tenant.',
  'authentication.jwt[].claims.roles': 'Claim path of the roles (a list of strings, or one space-separated string, as OAuth `scope`).',
  'authentication.jwt[].claims.permissions': 'Claim path of permissions granted directly (a list of strings, or one space-separated string).',
  'authentication.lockout.failures': 'Failed authentications (AUTH_INVALID, AUTH_EXPIRED; not AUTH_MISSING) that lock an address out.',
  'authentication.lockout.window': 'The window the failures are counted in, from the first one.',
  'authentication.lockout.duration': 'How long a locked-out address is refused (429 LOCKED_OUT with `Retry-After`).',
  roles: 'Named roles: permissions, and roles they inherit (expanded when the policy loads; a cycle is an error).',
  tenants: 'Per-tenant limits: a tier per tenant, counted in the store.',
  'routes[].name': 'Names the route in metrics, logs, audit events and `portcullis explain`; unique.',
  'routes[].match': 'What a request must look like for this route.',
  'routes[].match.methods': 'Methods this route serves.',
  'routes[].ipAllow': 'When set, only these client addresses may use this route (after the top-level lists).',
  'routes[].ipDeny': 'These client addresses are refused on this route.',
  'routes[].limits[].rate': 'Refill rate of the bucket.',
  store: 'Where limits, lockouts and dynamic API keys are kept.',
  'store.prefix':
    'Prefix of every limit and lockout key Portcullis writes to Redis, so that several deployments can share one Redis. Dynamic API keys are kept under `portcullis:{keys}:` whatever the prefix.',
  audit: 'One audit event per request (see `routes[].audit`) plus system events.',
  'audit.checkpoint.algorithm': 'How checkpoints are signed.',
  'audit.checkpoint.interval': 'Sign the head this often when events were written since the last checkpoint; at least 100ms.',
  'audit.sinks[].stdout': 'Events as JSON lines on standard output, mixed with the logs.',
  'audit.sinks[].file': 'Events appended as JSON lines to a file.',
  'audit.sinks[].file.path': 'The file; its directory is created when missing.',
  'audit.sinks[].file.rotate': 'Rename the file to `<path>.<UTC time>` before a write would make it larger than this.',
  'audit.sinks[].file.retain': 'At each rotation, delete rotated files older than this.',
  'audit.sinks[].file.fsync': '`always`: after every batch; `batch`: at most once a second; `never`: left to the operating system.',
  'audit.sinks[].redisStream': 'Events added to a Redis stream (`XADD`, fields `id` and `event`).',
  'audit.sinks[].redisStream.key': "The stream's key.",
  'audit.sinks[].redisStream.maxLen': 'Approximate length the stream is trimmed to (`MAXLEN ~`).',
  'audit.sinks[].redisStream.url': 'The Redis to write to.',
  'audit.sinks[].webhook': 'Events POSTed as `application/x-ndjson` batches, retried with backoff.',
  'audit.sinks[].webhook.url': 'Where batches are POSTed.',
  'audit.sinks[].webhook.secret': 'Signs each batch: `x-portcullis-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`.',
  'audit.sinks[].webhook.batch': 'Most events per POST.',
  'audit.redact':
    'More query parameter names whose values events record as `[REDACTED]`, on top of the built-in ones: a parameter is redacted when its name, lower-cased, contains one of these or of `key`, `token`, `secret`, `password`, `passwd`, `pwd`, `auth`, `session`, `signature`, `sig`, `credential`, `cookie`, `code`. Headers and bodies are never recorded.',
};

/**
 * Key path → its default: the value used when the key is absent, or "none: <what then happens>".
 * Required keys need no entry (their default column says "required"); a test fails when a key has neither.
 */
const DEFAULTS = {
  $schema: 'none',
  upstreams: 'none: routes have nowhere to forward to (every route needs an upstream)',
  'upstreams.<name>.url': 'none: give `url` or `targets`',
  'upstreams.<name>.targets': 'none: give `url` or `targets`',
  'upstreams.<name>.timeouts': 'connect 2s, response 30s',
  'upstreams.<name>.timeouts.connect': '`2s`',
  'upstreams.<name>.timeouts.response': '`30s`',
  'upstreams.<name>.connections': '`128`',
  'upstreams.<name>.retries': '`0`',
  'upstreams.<name>.protocol': '`http1`',
  'upstreams.<name>.breaker': 'none: no circuit breaker',
  'upstreams.<name>.healthCheck': 'none: no active checks (targets stay in rotation until their breaker opens)',
  'upstreams.<name>.healthCheck.path': 'required',
  'upstreams.<name>.healthCheck.interval': '`10s`',
  'upstreams.<name>.healthCheck.timeout': '`2s`',
  'upstreams.<name>.healthCheck.healthyAfter': '`2`',
  'upstreams.<name>.healthCheck.unhealthyAfter': '`3`',
  'upstreams.<name>.usage': 'none: responses are not metered (charged 0)',
  'upstreams.<name>.usage.header': '`x-usage-tokens`',
  'upstreams.<name>.usage.json': '`auto`',
  'upstreams.<name>.breaker.consecutiveFailures': '`5` when `errorRate` is not set, else off',
  'upstreams.<name>.breaker.errorRate': 'none: off',
  'upstreams.<name>.breaker.minRequests': '`20`',
  'upstreams.<name>.breaker.window': '`10s`',
  'upstreams.<name>.breaker.cooldown': '`30s`',
  'upstreams.<name>.breaker.halfOpenProbes': '`1`',
  'upstreams.<name>.breaker.failOn': '`[502, 503, 504]`',
  'upstreams.<name>.preserveHost': "`false`: the upstream gets its target's host",
  authentication: 'none: only `public` routes can be served',
  'authentication.apiKeys': 'none: API keys are not accepted',
  'authentication.apiKeys.header': '`x-api-key`',
  'authentication.apiKeys.keys': 'none: no static keys (dynamic keys still work)',
  'authentication.apiKeys.keys[].limits': "none: only the tenant's tier applies",
  'authentication.apiKeys.keys[].limits.rate': 'none: no rate',
  'authentication.apiKeys.keys[].limits.burst': 'one second of `rate`, at least 1',
  'authentication.apiKeys.keys[].limits.quota': 'none: unlimited',
  'authentication.apiKeys.keys[].tenant': 'none: the key acts for no tenant',
  'authentication.apiKeys.keys[].subject': "the key's `id`",
  'authentication.apiKeys.keys[].roles': 'none: no roles',
  'authentication.apiKeys.keys[].permissions': 'none: only those of `roles`',
  'authentication.apiKeys.keys[].expires': 'none: never expires',
  'authentication.apiKeys.keys[].disabled': '`false`',
  'authentication.jwt': 'none: JWTs are not accepted',
  'authentication.jwt[].jwksUrl': 'none: give one of `jwksUrl`, `publicKey`, `secret`',
  'authentication.jwt[].publicKey': 'none: give one of `jwksUrl`, `publicKey`, `secret`',
  'authentication.jwt[].secret': 'none: give one of `jwksUrl`, `publicKey`, `secret`',
  'authentication.jwt[].clockTolerance': '`0s`',
  'authentication.jwt[].typ': 'none: `typ` is not checked',
  'authentication.jwt[].cooldown': '`30s`',
  'authentication.jwt[].cacheMaxAge': '`10m`',
  'authentication.jwt[].claims': 'subject from `sub`; no tenant, roles or permissions',
  'authentication.jwt[].claims.subject': '`sub`',
  'authentication.jwt[].claims.tenant': 'none: no tenant',
  'authentication.jwt[].claims.roles': 'none: no roles',
  'authentication.jwt[].claims.permissions': 'none: no direct permissions',
  'authentication.mtls': 'none: client certificates are not accepted',
  'authentication.mtls[].subject': 'the kind of name `match` matched (`uri` or `dns`)',
  'authentication.mtls[].tenant': 'none: no tenant',
  'authentication.mtls[].roles': 'none: no roles',
  'authentication.mtls[].permissions': 'none: only those of `roles`',
  'authentication.forward': 'the default header names below',
  'authentication.forward.subject': '`x-auth-subject`',
  'authentication.forward.tenant': '`x-auth-tenant`',
  'authentication.forward.roles': '`x-auth-roles`',
  'authentication.forward.keyId': '`x-auth-key-id`',
  'authentication.forward.issuer': '`x-auth-issuer`',
  'authentication.forward.jwt': 'none: no identity JWT is sent',
  'authentication.forward.jwt.ttl': '`60s`',
  'authentication.forward.jwt.audience': 'none: no `aud` claim',
  'authentication.forward.jwt.header': '`x-auth-jwt`',
  'authentication.forwardCredentials': '`false`',
  'authentication.lockout': 'none: no lockout',
  'authentication.lockout.ipv6Prefix': '`64`',
  trustedProxies: 'none: no peer is trusted',
  paths: '`unambiguous` for both',
  'paths.semicolons': '`unambiguous`',
  'paths.emptySegments': '`unambiguous`',
  ipAllow: 'none: every address (except `ipDeny`)',
  ipDeny: 'none: no address refused',
  roles: "none: no roles (only keys' direct permissions count)",
  'roles.<name>.inherits': 'none',
  'roles.<name>.permissions': 'none',
  'roles.<name>.crossTenant': '`false`',
  tenants: 'none: no tenant limits',
  'tenants.tiers.<name>.rate': 'none: no rate limit',
  'tenants.tiers.<name>.burst': 'the rate per second, at least 1',
  'tenants.tiers.<name>.quota': 'none: unlimited',
  'tenants.tiers.<name>.concurrency': 'none: unlimited',
  'tenants.tiers.<name>.tokens': 'none: tokens are counted, not limited',
  'tenants.tiers.<name>.tokens.quota': 'none: unlimited',
  'tenants.tiers.<name>.tokens.perRequest': 'none: a request is charged what it reports',
  'tenants.default': 'none: tenants not in `members` have no tier limits',
  'tenants.members': 'none: every tenant gets `default`',
  routes: 'none: every request is 404 ROUTE_NOT_FOUND',
  'routes[].match.host': 'none: any host',
  'routes[].match.methods': 'none: every method',
  'routes[].public': '`false`',
  'routes[].upstream': 'the only upstream (required when there are several)',
  'routes[].require': 'none: any authenticated caller',
  'routes[].tenantParam': 'none: no tenant check',
  'routes[].authenticate': 'every configured method',
  'routes[].ipAllow': 'none: every address',
  'routes[].ipDeny': 'none',
  'routes[].limits': 'none: only the tenant tier applies',
  'routes[].limits[].burst': 'the rate per second, at least 1',
  'routes[].limits[].cost': '`1`',
  'routes[].limits[].ipv6Prefix': '`64`',
  'routes[].methodOverride': 'none: override headers are removed',
  'routes[].maxBodySize': 'none: no limit',
  'routes[].shadow': '`false`',
  'routes[].when': 'none: no condition',
  'routes[].audit': '`all`',
  cors: 'none: no CORS; preflights are routed like any OPTIONS request',
  'cors.origins': 'none: required here or in the other `cors`',
  'cors.methods': "the route's methods, else GET, HEAD, POST",
  'cors.headers': 'none: only Accept, Accept-Language, Content-Language',
  'cors.exposeHeaders': 'none: only the CORS-safelisted response headers',
  'cors.credentials': '`false`',
  'cors.maxAge': "none: the browser's own (5s in most)",
  'routes[].cors': 'the top-level `cors`; its fields are merged with these, these win',
  'routes[].cors.origins': 'none: required here or in the other `cors`',
  'routes[].cors.methods': "the route's methods, else GET, HEAD, POST",
  'routes[].cors.headers': 'none: only Accept, Accept-Language, Content-Language',
  'routes[].cors.exposeHeaders': 'none: only the CORS-safelisted response headers',
  'routes[].cors.credentials': '`false`',
  'routes[].cors.maxAge': "none: the browser's own (5s in most)",
  'routes[].rewrite': 'none: the upstream gets the public path',
  'routes[].rewrite.stripPrefix': 'none',
  'routes[].rewrite.addPrefix': 'none',
  'routes[].rewrite.path': 'none',
  'routes[].timeouts': "the upstream's",
  'routes[].timeouts.response': "the upstream's `timeouts.response`",
  'routes[].headers': 'none: headers pass as the gateway rules say',
  'routes[].headers.request': 'none',
  'routes[].headers.request.set': 'none',
  'routes[].headers.request.remove': 'none',
  'routes[].headers.response': 'none',
  'routes[].headers.response.set': 'none',
  'routes[].headers.response.remove': 'none',
  store: 'in memory, one instance only',
  'store.url': 'none: in memory (one instance only)',
  'store.onError': '`allow`',
  'store.prefix': '`portcullis:`',
  'store.timeout': '`50ms`',
  'store.slotTtl': '`30s`',
  audit: 'none: no audit events',
  'audit.chain': '`false`',
  'audit.checkpoint': 'none: no checkpoints',
  'audit.checkpoint.algorithm': '`ed25519` for a PEM key, else `hmac-sha256`',
  'audit.checkpoint.interval': '`10s`',
  'audit.checkpoint.events': 'none: by `interval` only',
  'audit.sinks': 'none: events are recorded nowhere (a validation warning)',
  'audit.sinks[].stdout': 'none: each entry has exactly one of `stdout`, `file`, `redisStream`, `webhook`',
  'audit.sinks[].file': 'none: each entry has exactly one of `stdout`, `file`, `redisStream`, `webhook`',
  'audit.sinks[].file.rotate': 'none: never rotated',
  'audit.sinks[].file.retain': 'none: rotated files are kept',
  'audit.sinks[].file.fsync': '`batch`',
  'audit.sinks[].redisStream': 'none: each entry has exactly one of `stdout`, `file`, `redisStream`, `webhook`',
  'audit.sinks[].redisStream.maxLen': '`1000000`',
  'audit.sinks[].redisStream.url': '`store.url` (one of the two is required)',
  'audit.sinks[].webhook': 'none: each entry has exactly one of `stdout`, `file`, `redisStream`, `webhook`',
  'audit.sinks[].webhook.secret': 'none: batches are not signed',
  'audit.sinks[].webhook.batch': '`500`',
  'audit.spool': '`.portcullis-spool` beside the first file sink, else in the working directory',
  'audit.redact': 'none: the built-in names only',
};

/** The descriptions of the shared value notations (duration, rate, …): for those, the description is the type. */
const NOTATION = /^(A duration:|A rate:|A quota on|A size:|A percentage:|An IPv4 or IPv6|A permission `)/;
/** pattern → notation type, for a notation a key's own description replaced (filled by `notations`). */
const byPattern = new Map();
function notations(s) {
  if (s === null || typeof s !== 'object') return;
  if (s.type === 'string' && s.pattern && s.description && NOTATION.test(s.description)) byPattern.set(s.pattern, describeString(s));
  for (const v of Object.values(s)) notations(v);
}

const describeString = (s) => {
  if (s.enum) return `one of ${s.enum.map((v) => `\`${v}\``).join(', ')}`;
  if (s.pattern && byPattern.has(s.pattern) && !(s.description && NOTATION.test(s.description))) return byPattern.get(s.pattern);
  if (s.description && NOTATION.test(s.description)) {
    // "A duration: 250ms, 30s." → "duration (250ms, 30s)"; "A permission `x`; y." → "permission (`x`; y)"
    if (s.description.startsWith('An IPv4 or IPv6 address or CIDR block')) return 'IP address or CIDR block (10.0.0.0/8, ::1/128)';
    const m = /^An? (\w+)(?::| ) ?(.*?)\.?$/.exec(s.description);
    if (m) return `${m[1]} (${m[2]})`;
    return s.description.replace(/\.$/, '');
  }
  if (s.pattern === '^https?:\\/\\/[^\\s/]+(\\/[^\\s]*)?$') return 'http(s) URL';
  if (s.pattern) return `string matching \`${s.pattern}\``;
  return s.minLength ? 'non-empty string' : 'string';
};

const describeNumber = (s) => {
  const parts = [];
  if (s.exclusiveMinimum !== undefined) parts.push(`> ${s.exclusiveMinimum}`);
  if (s.minimum !== undefined) parts.push(`≥ ${s.minimum}`);
  if (s.maximum !== undefined && s.maximum !== MAX_SAFE) parts.push(`≤ ${s.maximum}`);
  return [s.type, ...parts].join(' ');
};

function typeOf(s) {
  if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
  // z.date() has no JSON Schema form (an empty schema): show the other members only.
  if (s.anyOf)
    return s.anyOf
      .filter((a) => Object.keys(a).length > 0)
      .map(typeOf)
      .join(' or ');
  switch (s.type) {
    case 'string':
      return describeString(s);
    case 'integer':
    case 'number':
      return describeNumber(s);
    case 'boolean':
      return 'boolean';
    case 'array':
      return `list${s.minItems ? ` (≥ ${s.minItems})` : ''} of ${typeOf(s.items)}`;
    case 'object':
      return s.properties && !s.additionalProperties ? 'mapping' : `mapping of name → ${typeOf(s.additionalProperties)}`;
    default:
      return 'any';
  }
}

/**
 * Flattens the schema into rows: [path, type, required, note]. The policy schema's string
 * descriptions name the notation (they become the type); with `plain`, every description is a note.
 */
function rows(s, path, required, out, plain = false) {
  const described = plain ? s.description : s.description && !NOTATION.test(s.description) ? s.description : undefined;
  const note = plain ? [NOTES[path], described].filter(Boolean).join(' ') : (NOTES[path] ?? described ?? '');
  out.push([path, plain && s.type === 'string' && !s.enum ? 'string' : typeOf(s), required, note]);
  const child = (p) => (path ? `${path}${p}` : p.replace(/^\./, ''));
  if (s.type === 'object' && s.properties) {
    const req = new Set(s.required ?? []);
    for (const [k, v] of Object.entries(s.properties)) rows(v, child(`.${k}`), req.has(k), out, plain);
  } else if (s.type === 'object' && typeof s.additionalProperties === 'object') {
    const v = s.additionalProperties;
    if (v.type === 'object' && v.properties) {
      const req = new Set(v.required ?? []);
      for (const [k, vv] of Object.entries(v.properties)) rows(vv, child(`.<name>.${k}`), req.has(k), out, plain);
    }
  } else if (s.type === 'array' && s.items?.type === 'object' && s.items.properties) {
    const req = new Set(s.items.required ?? []);
    for (const [k, v] of Object.entries(s.items.properties)) rows(v, child(`[].${k}`), req.has(k), out, plain);
  } else if (s.type === 'array' && s.items?.anyOf?.every((a) => a.type === 'object')) {
    // One-key mappings (the audit sinks): document each variant under its key.
    for (const variant of s.items.anyOf) {
      for (const [k, v] of Object.entries(variant.properties)) rows(v, child(`[].${k}`), false, out, plain);
    }
  }
  return out;
}

const cell = (text) => String(text).replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The default column: "required", or the DEFAULTS entry. */
const defaultOf = (path, required) => (required ? 'required' : (DEFAULTS[path] ?? ''));

/** Every key of the policy reference as [path, type, default, notes], in document order. */
export function referenceRows(schema) {
  notations(schema);
  const req = new Set(schema.required ?? []);
  const out = [];
  for (const [k, v] of Object.entries(schema.properties)) {
    if (v.type === 'object' || v.type === 'array') out.push(...rows(v, k, req.has(k), []));
    else out.push([k, typeOf(v), req.has(k), NOTES[k] ?? v.description ?? '']);
  }
  return out.map(([p, t, r, n]) => [p, t, defaultOf(p, r), n]);
}

/** Keys the reference would leave without a meaning or without a default ("required" / "none: …"). */
export function undocumented(schema) {
  return referenceRows(schema).flatMap(([p, , d, n]) => [...(n === '' ? [`${p}: no description`] : []), ...(d === '' ? [`${p}: no default`] : [])]);
}

export function render(schema) {
  notations(schema);
  const sections = [];
  const top = Object.entries(schema.properties);
  const req = new Set(schema.required ?? []);
  const simple = top.filter(([, v]) => !(v.type === 'object' || v.type === 'array'));
  const lines = [
    '# Policy reference',
    '',
    '<!-- Generated by scripts/gen-policy-docs.mjs from policies/policy.schema.json. Do not edit by hand:',
    '     edit src/policy/schema.ts (then `npm run schema`) or the NOTES in the script, and run',
    '     `node scripts/gen-policy-docs.mjs`. A test fails when this file is stale. -->',
    '',
    'A policy is a YAML file, or a directory of YAML files merged into one document (duplicate names',
    'are errors). Every value may be written `env:NAME` (read from the environment when the policy',
    "loads) or `file:path` (the file's contents, relative to the policy file). Editors validate",
    'against [`policies/policy.schema.json`](../policies/policy.schema.json) with',
    '`# yaml-language-server: $schema=./policy.schema.json`.',
    '',
    'The default column says what applies when a key is absent: a value, "required", or "none:" and',
    'what then happens.',
    '',
    'Value notations: durations `250ms` `30s` `5m` `1h` `1d`; rates `N/s` `N/m` `N/h`; quotas',
    '`N/minute|hour|day|month` (calendar windows, UTC); sizes `512kb` `1mb`; percentages `50%`.',
    '',
    'Keys the running build cannot enforce yet are refused by `portcullis validate` (and `serve`)',
    'with "not supported yet" — a policy never silently ignores a key.',
    '',
    'YAML anchors and aliases (`limits: *std`, `<<: *base`) are welcome: a file may use up to 10,000',
    'aliases and expand to up to 500,000 values; beyond that, or with a recursive alias, it is refused',
    'at the alias that crosses the bound.',
    '',
    '## Top level',
    '',
    '| key | type | default | notes |',
    '| --- | --- | --- | --- |',
    ...simple.map(([k, v]) => `| \`${k}\` | ${cell(typeOf(v))} | ${cell(defaultOf(k, req.has(k)))} | ${cell(NOTES[k] ?? v.description ?? '')} |`),
  ];
  for (const [k, v] of top.filter(([, v]) => v.type === 'object' || v.type === 'array')) {
    const table = rows(v, k, req.has(k), []);
    sections.push(
      [
        '',
        `## \`${k}\``,
        '',
        '| key | type | default | notes |',
        '| --- | --- | --- | --- |',
        ...table.map(([p, t, r, n]) => `| \`${p}\` | ${cell(t)} | ${cell(defaultOf(p, r))} | ${cell(n)} |`),
      ].join('\n'),
    );
  }
  return `${[...lines, ...sections].join('\n')}\n`;
}

const TEST_SCHEMA = `${root}schemas/policy-test.schema.json`;
const TEST_OUT = `${root}docs/policy-tests.md`;
const TEST_EXAMPLE = 'docs/examples/tests';

/** docs/policy-tests.md: the `*.test.yaml` format, from its JSON Schema, with examples a test runs. */
export function renderTests(schema, example) {
  const test = schema.properties.tests.items;
  const table = rows(test, 'tests[]', true, [], true).slice(1);
  const codes = test.properties.expect.anyOf.find((a) => a.type === 'object').properties.deny.enum;
  return `${[
    '# Policy tests reference',
    '',
    '<!-- Generated by scripts/gen-policy-docs.mjs from schemas/policy-test.schema.json and',
    `     ${TEST_EXAMPLE}/. Do not edit by hand: edit src/simulate/test-file.ts (then \`npm run schema\`)`,
    '     or the example, and run `node scripts/gen-policy-docs.mjs`. A test fails when this file is',
    '     stale, and another runs the example. -->',
    '',
    "`portcullis test PATH` decides each test's request with the real compiled policy and the real",
    'stages (canonical path, route, IP rules, authentication, authorization; limits, breakers and',
    'forwarding need a store and an upstream and are not run), and compares the decision with `expect`.',
    'PATH is a policy directory (every `*.test.yaml` in it), a policy file (the `*.test.yaml` files',
    'beside it) or one `*.test.yaml` file (run against the policy in its directory).',
    '',
    'It prints one line per failing test with its decision trace, then `N passed, M failed`. Exit 0',
    'when every test passed; exit 1 when one failed, when no test was found (unless `--allow-empty`),',
    'or when the policy or a test file is invalid (each error as `file:line:col key.path: message`).',
    '`--coverage` lists the routes and roles no test exercised; `--json` prints the results for tools.',
    '',
    'Editors validate test files against',
    '[`schemas/policy-test.schema.json`](../schemas/policy-test.schema.json) with',
    '`# yaml-language-server: $schema=…/policy-test.schema.json`.',
    '',
    '## Keys',
    '',
    '`tests` is the only top-level key: a list of tests, each a mapping with these keys.',
    '',
    '| key | type | required | notes |',
    '| --- | --- | --- | --- |',
    ...table.map(([p, t, r, n]) => `| \`${p}\` | ${cell(t)} | ${r ? 'yes' : ''} | ${cell(n)} |`),
    '',
    'A request gives at most one of `as`, `apiKey` and `jwt`. `CODE` in `{ deny: CODE }` is one of',
    `${codes.map((c) => `\`${c}\``).join(', ')} (the reason-code catalogue).`,
    '',
    '## Examples',
    '',
    `Every form of request and assertion, as [\`${TEST_EXAMPLE}/policy.test.yaml\`](examples/tests/policy.test.yaml)`,
    `runs them against [\`${TEST_EXAMPLE}/policy.yaml\`](examples/tests/policy.yaml) (\`portcullis test ${TEST_EXAMPLE}\`):`,
    '',
    '```yaml',
    example.trimEnd(),
    '```',
  ].join('\n')}\n`;
}

const isMain = process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  const missing = undocumented(JSON.parse(readFileSync(SCHEMA, 'utf8')));
  if (missing.length > 0) {
    console.error(`document these policy keys (NOTES / DEFAULTS in scripts/gen-policy-docs.mjs, or .describe() in src/policy/schema.ts):\n  ${missing.join('\n  ')}`);
    process.exit(1);
  }
  const outputs = [
    [OUT, render(JSON.parse(readFileSync(SCHEMA, 'utf8')))],
    [TEST_OUT, renderTests(JSON.parse(readFileSync(TEST_SCHEMA, 'utf8')), readFileSync(`${root}${TEST_EXAMPLE}/policy.test.yaml`, 'utf8'))],
  ];
  for (const [out, text] of outputs) {
    if (process.argv.includes('--check')) {
      let current = '';
      try {
        current = readFileSync(out, 'utf8');
      } catch {
        // missing counts as stale
      }
      if (current !== text) {
        console.error(`${out.slice(root.length)} is stale: run \`node scripts/gen-policy-docs.mjs\``);
        process.exitCode = 1;
      }
    } else {
      writeFileSync(out, text);
      console.log(`wrote ${out}`);
    }
  }
}
