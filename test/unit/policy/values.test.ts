import { describe, expect, it } from 'vitest';
import { parseDuration, parsePercent, parseQuota, parseRate, parseSize } from '../../../src/policy/values.js';

describe('policy values', () => {
  it.each([
    ['250ms', 250],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['0s', 0],
  ])('reads the duration %s as %i ms', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each([
    ['10/s', 10],
    ['600/m', 10],
    ['1800/h', 0.5],
  ])('reads the rate %s as %d per second', (text, perSecond) => expect(parseRate(text)).toBe(perSecond));

  it.each([
    ['512b', 512],
    ['512kb', 524_288],
    ['1mb', 1_048_576],
    ['1MB', 1_048_576],
    ['2gb', 2_147_483_648],
  ])('reads the size %s as %i bytes', (text, bytes) => expect(parseSize(text)).toBe(bytes));

  it.each([
    ['1000/day', { limit: 1000, window: 'day' }],
    ['5/minute', { limit: 5, window: 'minute' }],
    ['100000/month', { limit: 100000, window: 'month' }],
    ['7/hour', { limit: 7, window: 'hour' }],
  ])('reads the quota %s', (text, quota) => expect(parseQuota(text)).toEqual(quota));

  it.each([
    ['50%', 0.5],
    ['0%', 0],
    ['100%', 1],
    ['12.5%', 0.125],
  ])('reads the percentage %s as %d', (text, fraction) => expect(parsePercent(text)).toBe(fraction));

  it.each([
    [parseDuration, '30 s'],
    [parseDuration, '1w'],
    [parseDuration, '-1s'],
    [parseRate, '10/sec'],
    [parseRate, '10'],
    [parseSize, '1 mb'],
    [parseSize, '1tb'],
    [parseQuota, '1000/week'],
    [parsePercent, '101%'],
    [parsePercent, '50'],
  ] as [(s: string) => unknown, string][])('refuses a malformed value (%#: %s)', (parse, text) => {
    expect(() => parse(text)).toThrow(/invalid/);
  });
});
