import { describe, expect, it } from 'vitest';
import { canonicalize, isDeny, withoutParams } from '../../../src/routing/canonical.js';

const ok = (target: string, host = 'example.com') => {
  const r = canonicalize(target, host);
  if (isDeny(r)) throw new Error(`refused ${target}: ${r.detail}`);
  return r;
};
const refused = (target: string, host = 'example.com') => {
  const r = canonicalize(target, host);
  return isDeny(r) ? r.code : 'allowed';
};

describe('canonical path', () => {
  it.each([
    ['/a/b', '/a/b', '/a/b'],
    ['/a/./b', '/a/b', '/a/b'],
    ['/a/../b', '/b', '/b'],
    ['/../../etc/passwd', '/etc/passwd', '/etc/passwd'],
    ['/a/b/..', '/a/', '/a/'],
    ['/a/%2e%2e/b', '/b', '/b'],
    ['/a/%2E/b', '/a/b', '/a/b'],
    ['/a//b', '/a//b', '/a//b'],
    ['/a;x=1/b', '/a;x=1/b', '/a;x=1/b'],
    ['/caf%C3%A9', '/café', '/caf%C3%A9'],
    ['/a%20b', '/a b', '/a%20b'],
    ['/a%252Fb', '/a%2Fb', '/a%252Fb'],
    ['/%61cme', '/acme', '/acme'],
  ])('%s is matched as %s and forwarded as %s', (target, path, forwardPath) => {
    const r = ok(target);
    expect(r.path).toBe(path);
    expect(r.forwardPath).toBe(forwardPath);
  });

  it('keeps the query string untouched and separate', () => {
    expect(ok('/a/../b?x=%2F&y=..')).toEqual({ path: '/b', forwardPath: '/b', query: '?x=%2F&y=..' });
  });

  it.each([
    ['/a%2Fb', 'encoded slash'],
    ['/a%2fb', 'encoded slash, lower case'],
    ['/a%5Cb', 'encoded backslash'],
    ['/a\\b', 'raw backslash'],
    ['/a%00b', 'encoded NUL'],
    ['/a%0Ab', 'encoded line feed'],
    ['/a%7F', 'encoded DEL'],
    ['/a%zz', 'invalid escape'],
    ['/a%4', 'incomplete escape'],
    ['/a%C3', 'truncated UTF-8'],
    ['/a%FF', 'invalid UTF-8'],
    ['/a%C2%85', 'encoded C1 control'],
    ['/a#frag', 'fragment'],
    ['/a?b#frag', 'fragment after the query'],
    ['*', 'asterisk form'],
    ['a/b', 'relative target'],
    ['http://evil.com/a', 'absolute form for another host'],
  ])('refuses %s (%s) with BAD_REQUEST', (target) => {
    expect(refused(target)).toBe('BAD_REQUEST');
  });

  it('accepts the absolute form when it names the Host header', () => {
    expect(ok('http://Example.com/a/../b?q', 'example.com')).toEqual({ path: '/b', forwardPath: '/b', query: '?q' });
  });

  it('allocates no new path string on the common path', () => {
    const target = '/v1/tenants/acme/reports/q1';
    expect(ok(target).path).toBe(target);
  });
});

describe('";" path parameters next to dot segments', () => {
  it.each([
    ['/public/..;/admin/x', 'a ".." segment with parameters (Tomcat resolves it as "..")'],
    ['/public/%2e%2e;/admin', 'an encoded ".." with parameters'],
    ['/a/..;jsessionid=1/b', 'a ".." segment with a session id'],
    ['/public/..%3b/admin', 'a ".." with an encoded ";"'],
    ['/public/%2E%2E%3Bx/admin', 'everything encoded'],
    ['/a/.;x/b', 'a "." segment with parameters'],
    ['/a/%2e;/b', 'an encoded "." with parameters'],
    ['/;x/admin', 'a segment that is only parameters'],
    ['/admin/%3bx/', 'an encoded segment that is only parameters'],
  ])('refuses %s with 400 (%s)', (target) => {
    expect(refused(target)).toBe('BAD_REQUEST');
  });

  it.each([
    ['/a;x=1/b', '/a;x=1/b'],
    ['/a/..x;y/b', '/a/..x;y/b'],
    ['/a/...;/b', '/a/...;/b'],
    ['/a%3Bx/b', '/a;x/b'],
  ])('leaves %s to the route stage as %s (the segment has a name)', (target, path) => {
    expect(ok(target).path).toBe(path);
  });
});

describe('withoutParams', () => {
  it.each([
    ['/admin;x/secret', '/admin/secret'],
    ['/a;jsessionid=1/b;v=2', '/a/b'],
    ['/a/b', '/a/b'],
    ['/files/report.pdf;', '/files/report.pdf'],
  ])('%s is routed by Tomcat, Jetty and Spring as %s', (path, stripped) => {
    expect(withoutParams(path)).toBe(stripped);
  });
});
