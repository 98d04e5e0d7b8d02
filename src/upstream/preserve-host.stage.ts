// `upstreams.<name>.preserveHost`: the upstream gets the client's Host, so it must be exactly one
// Host header that is a host name or address with an optional port. Anything else (a second Host,
// a path, userinfo, spaces) could make the upstream route or build links by a host this gateway
// never matched; it is refused before anything is spent.
import type { RequestContext } from '../core/context.js';
import { deny } from '../core/reasons.js';
import { CONTINUE, type Outcome, type Stage } from '../core/stage.js';

const BAD_HOST = deny('BAD_REQUEST', 'The Host header must be one host name or address with an optional port.');
const AUTHORITY = /^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

export function createPreserveHostStage(): Stage {
  return { name: 'preserveHost', run };
}

function run(ctx: RequestContext): Outcome {
  const route = ctx.route;
  if (route === undefined || ctx.plan.upstreams.get(route.upstream)?.preserveHost !== true) return CONTINUE;
  if (!AUTHORITY.test(ctx.hostHeader)) return BAD_HOST;
  let hosts = 0;
  const raw = ctx.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') hosts++;
  return hosts === 1 ? CONTINUE : BAD_HOST;
}
