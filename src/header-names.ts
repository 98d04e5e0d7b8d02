// The header names the gateway owns, in one place: proxy/upstream-headers.ts builds its per-plan
// lookup from these lists, routing reads the method-override names, and authn/compile.ts refuses
// them as names for identity headers. Lower case. Every name here is also matched in its "_"
// look-alike spelling (X-Forwarded_For, x_auth_tenant): CGI-style stacks (Rack/Puma, older
// gunicorn, PHP) read "_" and "-" as the same character.

/** Hop-by-hop (RFC 9110 §7.6.1), or written by the proxy itself: never forwarded as sent. */
export const HOP_BY_HOP: readonly string[] = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'host',
  'proxy-authorization',
  'proxy-authenticate',
  // The proxy answers 100-continue itself (after every stage passed), and undici refuses it.
  'expect',
];

/** Hop-by-hop in a response (RFC 9110 §7.6.1): the proxy writes its own framing to the client. */
export const RESPONSE_HOP_BY_HOP_HEADERS: readonly string[] = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate'];

/**
 * The gateway writes these three for every request; a trusted proxy's values are carried over
 * (X-Forwarded-For extended with the peer), an untrusted peer's are dropped.
 */
export const FORWARDED_BY_GATEWAY: readonly string[] = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host'];

/**
 * The rest of the X-Forwarded family that frameworks honour, and the client certificate a
 * TLS-terminating proxy describes (Envoy's x-forwarded-client-cert): passed on from a trusted
 * proxy only.
 */
export const FORWARDED_FROM_TRUSTED: readonly string[] = [
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-forwarded-server',
  'x-forwarded-scheme',
  'x-forwarded-ssl',
  'front-end-https',
  'x-forwarded-client-cert',
];

/**
 * Never forwarded as sent, whoever sends them: client-address headers (the upstream learns the
 * client from X-Forwarded-For, which the gateway builds), headers that make a framework route by
 * another URL, host or method than the request line the gateway checked (even a trusted proxy
 * passes a client's copy of these along), and the request id and trace context, which the
 * gateway sets itself.
 */
export const GATEWAY_ONLY: readonly string[] = [
  'forwarded',
  'x-real-ip',
  'x-client-ip',
  'true-client-ip',
  'cf-connecting-ip',
  'x-cluster-client-ip',
  'fastly-client-ip',
  'x-original-url',
  'x-original-uri',
  'x-rewrite-url',
  'x-original-host',
  'x-original-method',
  'x-forwarded-uri',
  'x-forwarded-method',
  'x-request-id',
  'traceparent',
  'tracestate',
];

/** Removed unless the matched route honours them (routes[].methodOverride); see routing/method-override.ts. */
export const METHOD_OVERRIDE_HEADERS: readonly string[] = ['x-http-method-override', 'x-http-method', 'x-method-override'];

/** Names a policy may not give an identity or credential header. */
export const RESERVED_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  ...HOP_BY_HOP,
  ...FORWARDED_BY_GATEWAY,
  ...FORWARDED_FROM_TRUSTED,
  ...GATEWAY_ONLY,
  ...METHOD_OVERRIDE_HEADERS,
  'content-length',
  'cookie',
  'authorization',
]);
