import { describe, expect, it } from 'vitest';
import { SECRET_NAMES } from '../../../src/audit/compile.js';
import { redactedTarget } from '../../../src/audit/redact.js';

describe('event path redaction', () => {
  it('keeps a path without a query as it is', () => {
    expect(redactedTarget('/v1/a', '', SECRET_NAMES)).toBe('/v1/a');
  });
  it('redacts values of secret-named parameters, whatever their case or encoding', () => {
    expect(redactedTarget('/a', '?page=2&Access_Token=abc&%70assword=x&API-KEY=k&q=ok', SECRET_NAMES)).toBe('/a?page=2&Access_Token=[REDACTED]&%70assword=[REDACTED]&API-KEY=[REDACTED]&q=ok');
  });
  it('applies configured additions', () => {
    expect(redactedTarget('/a', '?tracking_id=1&x=2', [...SECRET_NAMES, 'tracking_id'])).toBe('/a?tracking_id=[REDACTED]&x=2');
  });
  it('treats an undecodable parameter name as secret', () => {
    expect(redactedTarget('/a', '?%E0%A4%A=v', SECRET_NAMES)).toBe('/a?[REDACTED]=[REDACTED]');
  });
});
