// One fixture per invalid case; each must produce exactly these `file:line:col path: message` lines.
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../../../src/engine/compile.js';
import { formatDiagnostic, PolicyError } from '../../../src/policy/diagnostics.js';
import { loadPolicySource } from '../../../src/policy/load.js';

const DIR = 'test/fixtures/policy/invalid';

async function errorLines(name: string): Promise<string[]> {
  try {
    compilePolicy(await loadPolicySource(`${DIR}/${name}`, { env: {} }));
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    return err.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);
  }
  throw new Error(`${name} was accepted`);
}

const CASES: [name: string, what: string, lines: string[]][] = [
  ['yaml-syntax.yaml', 'a YAML syntax error', ['yaml-syntax.yaml:4:1 YAML: Flow map in block collection must be sufficiently indented and end with a }']],
  ['yaml-duplicate-key.yaml', 'a key written twice in one mapping', ['yaml-duplicate-key.yaml:4:1 YAML: Map keys must be unique']],
  ['unknown-top-level-key.yaml', 'an unknown top-level key, with did-you-mean', ['unknown-top-level-key.yaml:4:1 route: unknown key (did you mean "routes"?)']],
  ['unknown-route-key.yaml', 'an unknown route key, with did-you-mean', ['unknown-route-key.yaml:7:5 routes[0].requires: unknown key (did you mean "require"?)']],
  ['bad-duration.yaml', 'a malformed duration', ['bad-duration.yaml:5:26 upstreams.app.timeouts.connect: expected a duration such as 250ms, 30s, 5m, 1h or 1d']],
  ['bad-rate.yaml', 'a malformed rate', ['bad-rate.yaml:8:25 routes[0].limits[0].rate: expected a rate such as 10/s, 600/m or 1000/h']],
  ['bad-size.yaml', 'a malformed size', ['bad-size.yaml:7:18 routes[0].maxBodySize: expected a size such as 512kb or 1mb']],
  ['missing-env.yaml', 'an env: reference to an unset variable', ['missing-env.yaml:4:10 upstreams.app.url: environment variable PORTCULLIS_TEST_SURELY_UNSET_UPSTREAM is not set']],
  [
    'missing-file.yaml',
    'a file: reference to a missing file',
    [`missing-file.yaml:4:10 upstreams.app.url: file not found: ./no-such-upstream-url.txt (resolved to ${resolve(DIR, 'no-such-upstream-url.txt')})`],
  ],
  [
    'duplicate-route-names',
    'the same route name in two files of a directory',
    [`duplicate-route-names/b.yaml:6:11 routes[2].name: duplicate route "health" (first defined at ${DIR}/duplicate-route-names/a.yaml:5:11)`],
  ],
  [
    'duplicate-upstream-names',
    'the same upstream name in two files of a directory',
    [`duplicate-upstream-names/b.yaml:4:3 upstreams.app: duplicate upstream "app" (first defined at ${DIR}/duplicate-upstream-names/a.yaml:3:3)`],
  ],
  [
    'duplicate-role-names',
    'the same role name in two files of a directory',
    [`duplicate-role-names/b.yaml:4:3 roles.viewer: duplicate role "viewer" (first defined at ${DIR}/duplicate-role-names/a.yaml:3:3)`],
  ],
  [
    'setting-in-two-files',
    'one setting made in two files of a directory',
    [`setting-in-two-files/b.yaml:2:1 trustedProxies: already set at ${DIR}/setting-in-two-files/a.yaml:2:1; set it in one file only`],
  ],
  ['empty.yaml', 'an empty file', ['empty.yaml:1:1 empty policy file (expected a mapping starting with version: 1)']],
  [
    'duplicate-jwt-names.yaml',
    'two JWT issuers with one name in one file',
    [`duplicate-jwt-names.yaml:9:13 authentication.jwt[1].name: duplicate jwt issuer "corp-sso" (first defined at ${DIR}/duplicate-jwt-names.yaml:4:13)`],
  ],
  ['unknown-upstream.yaml', 'a reference to an unknown upstream, with did-you-mean', ['unknown-upstream.yaml:7:15 routes[0].upstream: unknown upstream "ap" (did you mean "app"?)']],
  ['route-without-upstream.yaml', 'a route without upstream when two exist', ['route-without-upstream.yaml:9:5 routes[1]: no upstream given and there are 2 (app, billing): set upstream']],
  ['double-star-not-last.yaml', '"**" before the last segment', ['double-star-not-last.yaml:6:20 routes[0].match.path: "**" may only be the last segment']],
  ['wrong-version.yaml', 'a version other than 1', ['wrong-version.yaml:1:10 version: unsupported version 2 (expected 1)']],
  [
    'bad-cidr.yaml',
    'malformed trusted proxies',
    [
      'bad-cidr.yaml:6:5 trustedProxies[1]: "10.0.0.0/33": the prefix length must be 0..32',
      'bad-cidr.yaml:7:5 trustedProxies[2]: "not-an-ip" is not an IP address or CIDR block (e.g. 10.0.0.0/8, ::1/128)',
    ],
  ],
  [
    'bad-method.yaml',
    'an unknown HTTP method, with did-you-mean',
    ['bad-method.yaml:6:45 routes[0].match.methods[1]: "GTE" is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE, CONNECT (did you mean "GET"?)'],
  ],
  ['missing-match.yaml', 'a route without match', ['missing-match.yaml:5:5 routes[0].match: required']],
  ['upstream-url-and-targets.yaml', 'an upstream with both url and targets', ['upstream-url-and-targets.yaml:5:14 upstreams.app.targets: set either url or targets, not both']],
  [
    'wrong-types.yaml',
    'values of the wrong YAML type, in YAML words',
    [
      'wrong-types.yaml:6:30 routes[0].match.host: expected a string or a list, got number 5',
      'wrong-types.yaml:8:33 routes[1].match.methods: must not be empty',
      'wrong-types.yaml:9:13 routes[1].public: expected true or false, got string "yes"',
    ],
  ],
  [
    'bad-store-url.yaml',
    'a store URL whose second host has no valid port',
    [
      'bad-store-url.yaml:5:8 store.url: host 2 is not host[:port]: expected redis://host:port, rediss://host:port, redis+sentinel://host:port[,host:port…]/mastername or redis+cluster://host:port[,host:port…]',
    ],
  ],
  ['short-slot-ttl.yaml', 'a concurrency slot TTL too short to be renewed reliably', ['short-slot-ttl.yaml:5:12 store.slotTtl: slotTtl must be at least 1s (slots are renewed every third of it)']],
  [
    'bad-audit-redis-url.yaml',
    'a redisStream sink URL whose second host has no valid port',
    [
      'bad-audit-redis-url.yaml:8:39 audit.sinks[0].redisStream.url: host 2 is not host[:port]: expected redis://host:port, rediss://host:port, redis+sentinel://host:port[,host:port…]/mastername or redis+cluster://host:port[,host:port…]',
    ],
  ],
  [
    'several-errors.yaml',
    'several mistakes in one file (all of them, not only the first)',
    [
      'several-errors.yaml:3:38 upstreams.app.conections: unknown key (did you mean "connections"?)',
      'several-errors.yaml:6:36 routes[0].match.methods[0]: "PUSH" is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE, CONNECT (did you mean "POST"?)',
      'several-errors.yaml:7:5 routes[1].name: required',
      'several-errors.yaml:7:5 routes[1].nme: unknown key (did you mean "name"?)',
    ],
  ],
];

describe('invalid policies', () => {
  it.each(CASES)('%s: reports %s at its position', async (name, _what, lines) => {
    expect(await errorLines(name)).toEqual(lines.map((l) => `${DIR}/${l}`));
  });

  it('reports a missing policy path', async () => {
    await expect(loadPolicySource(`${DIR}/does-not-exist.yaml`)).rejects.toThrow(`${DIR}/does-not-exist.yaml:1:1 policy not found`);
  });
});
