// PlanManager on real temp directories and real fs.watch: edits, atomic saves, delete+recreate
// and Kubernetes ConfigMap symlink swaps must all end in a swapped Plan; broken edits must not.
import { mkdir, mkdtemp, readFile, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Plan } from '../../../src/core/plan.js';
import { openPolicy, type PlanManager } from '../../../src/engine/compile.js';
import { EventBus, type SystemEvent } from '../../../src/events.js';
import { policyInfo, policyReloadsTotal } from '../../../src/observability/metrics.js';
import { PolicyError } from '../../../src/policy/diagnostics.js';

const policy = (port: number): string => `version: 1\nupstreams:\n  app: { url: "http://127.0.0.1:${port}" }\nroutes:\n  - name: all\n    match: { path: "/**" }\n    public: true\n`;
const portOf = (plan: Plan): string => plan.upstreams.get('app')!.targets[0]!.origin;

async function reloads(result: 'success' | 'failure'): Promise<number> {
  const metric = await policyReloadsTotal.get();
  return metric.values.find((v) => v.labels.result === result)?.value ?? 0;
}

async function until(what: string, check: () => boolean, ms = 5_000): Promise<number> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - start;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('PlanManager', () => {
  let dir: string;
  let manager: PlanManager | undefined;
  let logs: string[];
  let events: SystemEvent[];
  let bus: EventBus;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-manager-'));
    logs = [];
    events = [];
    bus = new EventBus();
    bus.subscribe((e) => events.push(e));
  });
  afterEach(async () => {
    await manager?.close();
    manager = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  const open = async (path: string, watch = true): Promise<PlanManager> => {
    const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(line) });
    manager = await openPolicy(path, { watch, logger, bus });
    return manager;
  };

  it('swaps in an edited policy within about a second and tells the listeners', async () => {
    const file = join(dir, 'policy.yaml');
    await writeFile(file, policy(3000));
    const m = await open(file);
    const swapped: Plan[] = [];
    m.onSwap((p) => swapped.push(p));
    expect(portOf(m.plan)).toBe('http://127.0.0.1:3000');
    const oldHash = m.plan.hash;
    await writeFile(file, policy(3001));
    const ms = await until('the swap', () => portOf(m.plan) === 'http://127.0.0.1:3001');
    expect(ms).toBeLessThan(1_500);
    expect(swapped).toEqual([m.plan]);
    expect(events.at(-1)).toEqual({ type: 'policy.loaded', hash: m.plan.hash, files: [file], trigger: 'watch' });
    const info = (await policyInfo.get()).values;
    expect(info.find((v) => v.labels.hash === m.plan.hash)?.value).toBe(1);
    expect(info.some((v) => v.labels.hash === oldHash)).toBe(false);
  });

  it('keeps the last good plan on a broken edit, counts the failure and logs every error', async () => {
    const file = join(dir, 'policy.yaml');
    await writeFile(file, policy(3000));
    const m = await open(file);
    const good = m.plan;
    const failures = await reloads('failure');
    await writeFile(file, 'version: 1\nupstreams:\n  app: { url: "http://127.0.0.1:3000", conections: 1 }\nroutes:\n  - { name: all, match: { path: "files/**" } }\n');
    await until('the failure to be counted', () => events.some((e) => e.type === 'policy.rejected'));
    expect(m.plan).toBe(good);
    expect(await reloads('failure')).toBe(failures + 1);
    const errors = logs
      .map((l) => JSON.parse(l) as { level: number; msg: string })
      .filter((l) => l.level === 50)
      .map((l) => l.msg);
    expect(errors).toEqual([
      `policy rejected: ${file}:3:40 upstreams.app.conections: unknown key (did you mean "connections"?)`,
      `policy rejected: ${file}:5:33 routes[0].match.path: a path pattern starts with "/"`,
    ]);
    // …and the next good edit is taken again.
    await writeFile(file, policy(3002));
    await until('the recovery', () => portOf(m.plan) === 'http://127.0.0.1:3002');
  });

  it('follows an atomic save (write a temp file, rename it over the policy)', async () => {
    const file = join(dir, 'policy.yaml');
    await writeFile(file, policy(3000));
    const m = await open(file);
    await writeFile(join(dir, '.policy.yaml.swp'), policy(3001));
    await rename(join(dir, '.policy.yaml.swp'), file);
    await until('the swap', () => portOf(m.plan) === 'http://127.0.0.1:3001');
    // The watch survives the inode change: a second save is seen too.
    await writeFile(join(dir, '.policy.yaml.swp'), policy(3002));
    await rename(join(dir, '.policy.yaml.swp'), file);
    await until('the second swap', () => portOf(m.plan) === 'http://127.0.0.1:3002');
  });

  it('follows an editor that deletes and recreates the file, without failing on the gap', async () => {
    const file = join(dir, 'policy.yaml');
    await writeFile(file, policy(3000));
    const m = await open(file);
    await unlink(file);
    await sleep(20);
    await writeFile(file, policy(3001));
    await until('the swap', () => portOf(m.plan) === 'http://127.0.0.1:3001');
    // The debounce spans the gap: no reload ran while the file was missing.
    expect(events.filter((e) => e.type === 'policy.rejected')).toEqual([]);
  });

  it('follows a Kubernetes ConfigMap swap (..data symlink replaced) for a file and for a directory', async () => {
    // kubelet layout: policy.yaml -> ..data/policy.yaml, ..data -> ..2026_01, files live in ..2026_01/
    await mkdir(join(dir, '..2026_01'));
    await writeFile(join(dir, '..2026_01', 'policy.yaml'), policy(3000));
    await symlink('..2026_01', join(dir, '..data'));
    await symlink(join('..data', 'policy.yaml'), join(dir, 'policy.yaml'));
    const m = await open(join(dir, 'policy.yaml'));
    const byDir = await openPolicy(dir, { watch: true, logger: pino({ level: 'silent' }), bus: new EventBus() });
    try {
      expect(portOf(m.plan)).toBe('http://127.0.0.1:3000');
      expect(portOf(byDir.plan)).toBe('http://127.0.0.1:3000');
      await mkdir(join(dir, '..2026_02'));
      await writeFile(join(dir, '..2026_02', 'policy.yaml'), policy(3001));
      await symlink('..2026_02', join(dir, '..data_tmp'));
      await rename(join(dir, '..data_tmp'), join(dir, '..data'));
      await rm(join(dir, '..2026_01'), { recursive: true });
      await until('the file swap', () => portOf(m.plan) === 'http://127.0.0.1:3001');
      await until('the directory swap', () => portOf(byDir.plan) === 'http://127.0.0.1:3001');
    } finally {
      await byDir.close();
    }
  });

  it('lets in-flight holders keep the plan they started with', async () => {
    const file = join(dir, 'policy.yaml');
    await writeFile(file, policy(3000));
    const m = await open(file, false);
    const held = m.plan;
    await writeFile(file, policy(3001));
    const result = await m.reload('admin');
    expect(result.ok).toBe(true);
    expect(m.plan).not.toBe(held);
    expect(portOf(held)).toBe('http://127.0.0.1:3000');
    expect(Object.isFrozen(held) && Object.isFrozen(held.routes[0])).toBe(true);
    expect(portOf(m.plan)).toBe('http://127.0.0.1:3001');
  });

  it('skips a reload whose content did not change', async () => {
    const file = join(dir, 'policy.yaml');
    await writeFile(file, policy(3000));
    const m = await open(file);
    const before = m.plan;
    let swaps = 0;
    m.onSwap(() => swaps++);
    await writeFile(file, await readFile(file, 'utf8')); // a touch: same bytes
    await sleep(600);
    const result = await m.reload('signal');
    expect(result).toEqual({ ok: true, plan: before });
    expect(m.plan).toBe(before);
    expect(swaps).toBe(0);
  });

  it('returns every diagnostic from a failed explicit reload', async () => {
    const file = join(dir, 'policy.yaml');
    await writeFile(file, policy(3000));
    const m = await open(file, false);
    await writeFile(file, 'version: 1\nroute: []\n');
    const result = await m.reload('admin');
    expect(result.ok).toBe(false);
    expect(!result.ok && result.diagnostics.map((d) => `${d.line}:${d.column} ${d.path}: ${d.message}`)).toEqual(['2:1 route: unknown key (did you mean "routes"?)']);
    expect(events.at(-1)).toEqual({ type: 'policy.rejected', errors: [`${file}:2:1 route: unknown key (did you mean "routes"?)`], trigger: 'admin' });
  });

  it('refuses to start on an invalid policy', async () => {
    const file = join(dir, 'policy.yaml');
    await writeFile(file, 'version: 3\n');
    await expect(open(file)).rejects.toBeInstanceOf(PolicyError);
  });
});
