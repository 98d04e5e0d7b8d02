import { describe, expect, it } from 'vitest';
import { policyJsonSchema } from '../../../src/policy/schema.js';

type Node = Record<string, unknown>;

/** Every object schema (type: object with properties) reachable from the root. */
function objectSchemas(node: unknown, path = '#', out: [string, Node][] = []): [string, Node][] {
  if (Array.isArray(node))
    node.forEach((n, i) => {
      objectSchemas(n, `${path}/${i}`, out);
    });
  else if (node !== null && typeof node === 'object') {
    const n = node as Node;
    if (n.type === 'object' && n.properties !== undefined) out.push([path, n]);
    for (const [k, v] of Object.entries(n)) objectSchemas(v, `${path}/${k}`, out);
  }
  return out;
}

describe('policyJsonSchema', () => {
  const schema = policyJsonSchema();

  it('is a draft-7 schema with an id and a title', () => {
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(schema.$id).toBe('https://portcullis.dev/schemas/policy.v1.json');
    expect(schema.title).toBe('Portcullis policy v1');
  });

  it('closes every object, as the strict zod objects are', () => {
    const objects = objectSchemas(schema);
    expect(objects.length).toBeGreaterThan(20);
    const open = objects.filter(([, n]) => n.additionalProperties !== false).map(([p]) => p);
    expect(open).toEqual([]);
  });

  it('describes the top-level sections and requires version', () => {
    const properties = schema.properties as Node;
    expect(Object.keys(properties).sort()).toEqual(
      ['$schema', 'audit', 'authentication', 'cors', 'ipAllow', 'ipDeny', 'paths', 'roles', 'routes', 'store', 'tenants', 'trustedProxies', 'upstreams', 'version'].sort(),
    );
    expect(schema.required).toEqual(['version']);
  });

  it('round-trips through JSON (editors read it as a file)', () => {
    expect(JSON.parse(JSON.stringify(schema))).toEqual(schema);
  });
});
