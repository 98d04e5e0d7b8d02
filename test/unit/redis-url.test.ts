import { describe, expect, it } from 'vitest';
import { parseRedisUrl } from '../../src/redis-url.js';

describe('store.url parsing', () => {
  it.each([
    ['redis://127.0.0.1:6379', { kind: 'server', url: 'redis://127.0.0.1:6379' }],
    ['rediss://:secret@cache.internal:6380/2', { kind: 'server', url: 'rediss://:secret@cache.internal:6380/2' }],
    [
      'redis+cluster://10.0.0.1:7000,10.0.0.2:7001,[fd00::3]:7002',
      {
        kind: 'cluster',
        hosts: [
          { host: '10.0.0.1', port: 7000 },
          { host: '10.0.0.2', port: 7001 },
          { host: 'fd00::3', port: 7002 },
        ],
        username: undefined,
        password: undefined,
      },
    ],
    ['redis+cluster://ops:p%40ss@node-a', { kind: 'cluster', hosts: [{ host: 'node-a', port: 6379 }], username: 'ops', password: 'p@ss' }],
    [
      'redis+sentinel://:pw@s1:26379,s2:26379/orders',
      {
        kind: 'sentinel',
        hosts: [
          { host: 's1', port: 26379 },
          { host: 's2', port: 26379 },
        ],
        name: 'orders',
        username: undefined,
        password: 'pw',
      },
    ],
    ['redis+sentinel://s1:26379', { kind: 'sentinel', hosts: [{ host: 's1', port: 26379 }], name: 'mymaster', username: undefined, password: undefined }],
  ])('reads %s', (url, target) => {
    expect(parseRedisUrl(url)).toEqual(target);
  });

  it.each([
    ['http://127.0.0.1:6379', 'unsupported scheme "http"'],
    ['localhost:6379', 'unsupported scheme "localhost"'],
    ['not a url', 'not a URL'],
    ['redis+cluster://a:7000,b:70000', 'host 2 is not host[:port]'],
    ['redis+cluster://a:7000,,b:7001', 'host 2 is not host[:port]'],
    ['redis+cluster://a:7000/0', 'a cluster URL has no path'],
    ['redis+sentinel://:%zz@s1/orders', 'the user or password is not valid percent-encoding'],
  ])('refuses %s, saying why', (url, problem) => {
    const r = parseRedisUrl(url);
    expect('problem' in r && r.problem).toMatch(problem);
  });

  it('never repeats the URL (it may hold a password) in a problem', () => {
    const r = parseRedisUrl('redis+cluster://:hunter2-secret@a:7000,b:x');
    expect('problem' in r && r.problem).not.toContain('hunter2');
  });
});
