import { describe, expect, it } from 'vitest';
import { checkPattern, compilePattern } from '../../../src/routing/pattern.js';

// [pattern, path, expected params or undefined for no match]
const TABLE: [string, string, Record<string, string> | undefined][] = [
  ['/healthz', '/healthz', {}],
  ['/healthz', '/healthz/', undefined],
  ['/healthz', '/healthzz', undefined],
  ['/healthz', '/health', undefined],
  ['/healthz', '/Healthz', undefined],
  ['/', '/', {}],
  ['/', '/a', undefined],
  ['/v1/users/{id}', '/v1/users/42', { id: '42' }],
  ['/v1/users/{id}', '/v1/users/', undefined],
  ['/v1/users/{id}', '/v1/users', undefined],
  ['/v1/users/{id}', '/v1/users/42/posts', undefined],
  ['/v1/users/{id}', '/v2/users/42', undefined],
  ['/v1/{a}/x/{b}', '/v1/one/x/two', { a: 'one', b: 'two' }],
  ['/v1/{a}/x/{b}', '/v1/one/y/two', undefined],
  ['/files/*', '/files/a.txt', {}],
  ['/files/*', '/files/', undefined],
  ['/files/*', '/files/a/b', undefined],
  ['/files/*/meta', '/files/a/meta', {}],
  ['/v1/admin/**', '/v1/admin', {}],
  ['/v1/admin/**', '/v1/admin/', {}],
  ['/v1/admin/**', '/v1/admin/users/1', {}],
  ['/v1/admin/**', '/v1/administrator', undefined],
  ['/v1/admin/**', '/v1', undefined],
  ['/**', '/', {}],
  ['/**', '/anything/at/all', {}],
  ['/v1/tenants/{tenant}/reports/**', '/v1/tenants/acme/reports', { tenant: 'acme' }],
  ['/v1/tenants/{tenant}/reports/**', '/v1/tenants/acme/reports/q1/2026', { tenant: 'acme' }],
  ['/v1/tenants/{tenant}/reports/**', '/v1/tenants/acme/report', undefined],
  ['/v1/tenants/{tenant}/reports/**', '/v1/tenants//reports/q1', undefined],
  ['/{a}/**', '/x', { a: 'x' }],
  ['/{a}/**', '/', undefined],
  ['/a/{b}', 'a/x', undefined],
  ['/a/{b}', '', undefined],
];

describe('compilePattern', () => {
  it.each(TABLE)('%s against %s', (pattern, path, expected) => {
    expect(compilePattern(pattern).match(path)).toEqual(expected);
  });

  it('returns a frozen empty params object when nothing is captured', () => {
    const params = compilePattern('/a/*').match('/a/b');
    expect(params).toEqual({});
    expect(Object.isFrozen(params)).toBe(true);
  });

  it('gives every match its own params object', () => {
    const m = compilePattern('/u/{id}');
    const first = m.match('/u/1');
    const second = m.match('/u/2');
    expect(first).toEqual({ id: '1' });
    expect(second).toEqual({ id: '2' });
  });

  it('lists the captured parameter names', () => {
    expect(compilePattern('/v1/{tenant}/x/{id}/**').params).toEqual(['tenant', 'id']);
  });

  it.each([
    ['/files/**/meta', '"**" may only be the last segment'],
    ['files', 'a path pattern starts with "/"'],
    ['/a/{b', 'invalid parameter segment "{b" (expected {name}: letters, digits, "_")'],
    ['/a/{}', 'invalid parameter segment "{}" (expected {name}: letters, digits, "_")'],
    ['/a/{b}{c}', 'invalid parameter segment "{b}{c}" (expected {name}: letters, digits, "_")'],
    ['/a/x*', 'invalid segment "x*": a segment is a literal, {name}, * or ** (never a mix)'],
    ['/{id}/{id}', 'parameter "id" appears twice'],
  ])('refuses %s', (pattern, problem) => {
    expect(checkPattern(pattern)).toBe(problem);
    expect(() => compilePattern(pattern)).toThrow(problem);
  });

  it.each([
    ['/a/**', '/a/b', true],
    ['/a/**', '/a', true],
    ['/a/**', '/a/{x}/**', true],
    ['/**', '/anything/{x}', true],
    ['/a/{x}', '/a/b', true],
    ['/a/*', '/a/{x}', true],
    ['/a/b', '/a/b', true],
    ['/a/b', '/a/{x}', false],
    ['/a/{x}', '/a/**', false],
    ['/a/{x}', '/a/b/c', false],
    ['/a/b/**', '/a/**', false],
    ['/a/*', '/a/', false],
  ])('knows whether %s covers every path of %s', (earlier, later, covered) => {
    expect(compilePattern(later).coveredBy(compilePattern(earlier))).toBe(covered);
  });
});
