// GET /.well-known/jwks.json on the admin listener: the public key upstreams verify signed identity
// tokens with. Short max-age: a policy reload with a new key publishes it within a minute.
import type { Plan } from '../core/plan.js';
import type { AdminResponse } from './routes.js';

export function jwksResponse(plan: Plan | undefined): AdminResponse {
  const signer = plan?.identityJwt;
  if (!signer) return { status: 404, problem: { title: 'Not Found', detail: 'signed identity (authentication.forward.jwt) is not configured' } };
  return { status: 200, body: signer.jwks, headers: { 'cache-control': 'public, max-age=60' } };
}
