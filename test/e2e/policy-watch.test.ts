// The policy directory watch of the built CLI under files that never stop changing: an audit trail
// appended beside the policy must not hold an edit back, and a policy file rewritten without pause
// still reaches the running policy within the watch's longest wait (1 s after the first event).
import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Serving, serveCli } from '../helpers/cli.js';
import { type OkUpstream, okUpstream } from '../helpers/upstream.js';

let upstream: OkUpstream;
let upstreamUrl: string;
const cleanups: (() => void | Promise<void>)[] = [];

const policy = (paths: readonly string[], comment = '') => `# ${comment}
version: 1
upstreams: { app: { url: "${upstreamUrl}" } }
routes:
${paths.map((p, i) => `  - { name: r${i}, match: { path: "${p}" }, public: true }`).join('\n')}
`;

/** Writes like an editor's atomic save: a temporary file renamed over the policy. */
function save(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

/** Calls `fn` every `ms` until the returned stop function runs. */
function every(ms: number, fn: () => void): () => void {
  const timer = setInterval(fn, ms);
  const stop = (): void => clearInterval(timer);
  cleanups.push(stop);
  return stop;
}

/** Milliseconds until `path` answers `status` on the proxy, or undefined after `within` ms. */
async function live(served: Serving, path: string, status: number, within: number): Promise<number | undefined> {
  const t0 = performance.now();
  while (performance.now() - t0 < within) {
    const res = await fetch(`${served.proxy}${path}`);
    await res.arrayBuffer();
    if (res.status === status) return performance.now() - t0;
    await new Promise((r) => setTimeout(r, 25));
  }
  return undefined;
}

async function serveDir(paths: readonly string[]): Promise<{ dir: string; file: string; served: Serving }> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-watch-'));
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, policy(paths));
  const served = await serveCli(dir);
  cleanups.push(async () => {
    await served.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, file, served };
}

beforeAll(async () => {
  upstream = await okUpstream();
  upstreamUrl = upstream.url;
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  await upstream.close();
});

describe('the policy watch of portcullis serve', () => {
  it('loads a policy edit while an audit file in the same directory is appended every 20 ms', async () => {
    const { dir, file, served } = await serveDir(['/a']);
    expect(await live(served, '/a', 200, 5_000)).toBeDefined();
    const trail = join(dir, 'audit.ndjson');
    let appended = 0;
    every(20, () => {
      appendFileSync(trail, `{"seq":${++appended},"type":"request"}\n`);
    });
    await new Promise((r) => setTimeout(r, 300));
    save(file, policy(['/a', '/b']));
    // The edit is live within the watch's bounds (200 ms quiet time), with room for a loaded machine;
    // the trail is still being written all along.
    const ms = await live(served, '/b', 200, 8_000);
    const during = appended;
    expect(ms, 'the edit never became live while the trail was written').toBeDefined();
    await new Promise((r) => setTimeout(r, 60));
    expect(appended).toBeGreaterThan(during);
    expect(ms!).toBeLessThan(5_000);
  });

  it('loads a policy rewritten every 20 ms within its longest wait, without waiting for the writes to stop', async () => {
    const { file, served } = await serveDir(['/a']);
    let writes = 0;
    every(20, () => {
      save(file, policy(['/a', '/burst'], `write ${++writes}`));
    });
    const ms = await live(served, '/burst', 200, 8_000);
    const during = writes;
    expect(ms, 'the rewritten policy never became live while it was being rewritten').toBeDefined();
    await new Promise((r) => setTimeout(r, 60));
    expect(writes).toBeGreaterThan(during);
    // 1 s longest wait after the first write, with room for a loaded machine.
    expect(ms!).toBeLessThan(5_000);
  });

  it('still reloads when a file the policy names with file: changes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-watch-'));
    const file = join(dir, 'policy.yaml');
    writeFileSync(join(dir, 'path.txt'), '/from-file\n');
    writeFileSync(file, policy(['file:path.txt']).replace('"file:path.txt"', 'file:path.txt'));
    const served = await serveCli(dir);
    cleanups.push(async () => {
      await served.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    expect(await live(served, '/from-file', 200, 5_000)).toBeDefined();
    save(join(dir, 'path.txt'), '/changed\n');
    expect(await live(served, '/changed', 200, 8_000)).toBeDefined();
  });
});
