import { describe, expect, it } from 'vitest';
import { closest, didYouMean, levenshtein } from '../../../src/policy/suggest.js';

describe('did-you-mean', () => {
  it.each([
    ['kitten', 'sitting', 3],
    ['', 'abc', 3],
    ['same', 'same', 0],
    ['requires', 'require', 1],
  ])('measures the edit distance of %s and %s as %i', (a, b, d) => expect(levenshtein(a, b)).toBe(d));

  it.each([
    ['requires', ['name', 'match', 'require', 'upstream'], 'require'],
    ['ap', ['app', 'billing'], 'app'],
    ['authentification', ['authentication', 'audit'], 'authentication'],
    ['Routes', ['routes', 'roles'], 'routes'],
    ['zzzzzz', ['routes', 'roles'], undefined],
  ])('suggests for %s', (word, candidates, hit) => expect(closest(word, candidates)).toBe(hit));

  it('formats a suggestion, or nothing when none is close', () => {
    expect(didYouMean('upstrem', ['upstream'])).toBe(' (did you mean "upstream"?)');
    expect(didYouMean('qqq', ['upstream'])).toBe('');
  });
});
