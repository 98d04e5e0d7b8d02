// The WWW-Authenticate challenge for a 401 that was built without one: what the policy's
// authenticators would ask for, or a Bearer challenge when the plan has none (a compiled policy
// always has one for each protected route; a plan assembled by hand may not).
import type { AuthnPlan } from './compile.js';

const DEFAULT_CHALLENGE = 'Bearer realm="portcullis"';

export function planChallenge(authn: AuthnPlan | undefined): string {
  const apiKey = authn?.apiKey?.challenge;
  const jwt = authn?.jwt?.challenge;
  if (apiKey !== undefined && jwt !== undefined) return `${apiKey}, ${jwt}`;
  return apiKey ?? jwt ?? DEFAULT_CHALLENGE;
}
