import { describe, expect, it } from 'vitest';
import { formatDiagnostic, PolicyError } from '../../../src/policy/diagnostics.js';
import { planFrom } from '../../helpers/plan.js';

const compile = (upstream: string) => planFrom(`version: 1\nupstreams:\n  app:\n${upstream}\nroutes:\n  - { name: all, match: { path: "/**" }, public: true }\n`);

async function errorOf(upstream: string): Promise<string> {
  try {
    await compile(upstream);
  } catch (err) {
    if (err instanceof PolicyError) return err.diagnostics.map(formatDiagnostic).join('\n');
    throw err;
  }
  throw new Error('compiled');
}

describe('upstreams.<name>.protocol', () => {
  it('defaults to http1', async () => {
    expect((await compile('    url: http://127.0.0.1:3000')).upstreams.get('app')!.protocol).toBe('http1');
  });

  it('takes h2 for https targets and h2c for http targets', async () => {
    expect((await compile('    url: https://orders.internal\n    protocol: h2')).upstreams.get('app')!.protocol).toBe('h2');
    expect((await compile('    targets: [http://127.0.0.1:1, http://127.0.0.1:2]\n    protocol: h2c')).upstreams.get('app')!.protocol).toBe('h2c');
  });

  it('refuses h2 over cleartext and h2c over TLS at the protocol key', async () => {
    expect(await errorOf('    url: http://127.0.0.1:3000\n    protocol: h2')).toMatch(/protocol h2 needs https URLs/);
    expect(await errorOf('    url: https://orders.internal\n    protocol: h2c')).toMatch(/protocol h2c needs http URLs/);
  });

  it('refuses an unknown protocol', async () => {
    expect(await errorOf('    url: http://127.0.0.1:3000\n    protocol: http3')).toMatch(/protocol/);
  });
});
