// Portcullis bench scenarios, as data. Each one starts its own Portcullis with its policy:
//   name     shown in the table (and matched by --only, case-insensitive, spaces or dashes)
//   policy   policy file or directory, relative to the repository root
//   path     the request path (GET); every target in a run is asked the same way
//   headers  request headers (e.g. { 'x-api-key': 'bench-key-acme' })
//   env      extra environment for Portcullis (BENCH_UPSTREAM is always set)
//   setup    optional async (ctx) => ({ env?, measure?, stop? }) run before Portcullis starts.
//            ctx: { freePort(), spawn(cmd, args, env?), waitPort(port, child?), work (temp dir) }.
//            measure: { before(): Promise<S>, after(S, requests): Promise<Record<string, number>> }
//            adds columns per round, e.g. Redis round trips per request from INFO commandstats
//            deltas (cmdstat_evalsha calls + top-level commands / requests).
// Later issues add: "API key", "JWT RS256 (cached)", "API key + RBAC", "Redis limits", "audit on/off".
import { readFileSync } from 'node:fs';

export const PATH = '/v1/reports/q1';

export const scenarios = [
  {
    name: 'public route',
    policy: 'bench/policies/public',
    path: PATH,
    headers: {},
  },
  {
    name: 'API key',
    policy: 'bench/policies/api-key',
    path: PATH,
    headers: { 'x-api-key': 'bench-key-acme' },
  },
  {
    name: 'JWT RS256 (cached)',
    policy: 'bench/policies/jwt',
    path: PATH,
    headers: { authorization: `Bearer ${readFileSync(new URL('./policies/jwt/bench-token.txt', import.meta.url), 'utf8').trim()}` },
  },
];
