// The image is built where a Docker engine runs; here the Dockerfile is checked statically, and its
// HEALTHCHECK command is run for real against an admin listener.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminServer } from '../../../src/admin/server.js';
import { createLogger } from '../../../src/observability/logger.js';
import { nodeFlags } from '../../helpers/node-flags.js';
import { freePort } from '../../helpers/redis.js';

const root = new URL('../../../', import.meta.url).pathname;

interface Instruction {
  readonly op: string;
  readonly args: string;
}
interface Stage {
  readonly from: string;
  readonly name: string | undefined;
  readonly instructions: Instruction[];
}

/** Joins continuation lines, drops comments, splits into stages at FROM. ARGs before the first FROM are substituted. */
function parseDockerfile(text: string): { globalArgs: Record<string, string>; stages: Stage[] } {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    logical.push(pending + line);
    pending = '';
  }
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of logical) {
    const m = /^(\S+)\s*(.*)$/.exec(line)!;
    const op = m[1]!.toUpperCase();
    const args = m[2]!;
    if (op === 'FROM') {
      const [image, as, name] = args.split(/\s+/);
      const resolved = image!.replace(/\$\{(\w+)\}/g, (_, k: string) => globalArgs[k] ?? '');
      stages.push({ from: resolved, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else if (stages.length === 0) {
      if (op === 'ARG') {
        const [k, v] = args.split('=');
        globalArgs[k!] = v ?? '';
      }
    } else {
      stages.at(-1)!.instructions.push({ op, args });
    }
  }
  return { globalArgs, stages };
}

const text = readFileSync(`${root}Dockerfile`, 'utf8');
const { stages } = parseDockerfile(text);
const build = stages[0]!;
const runtime = stages.at(-1)!;
const all = (s: Stage, op: string): string[] => s.instructions.filter((i) => i.op === op).map((i) => i.args);
const one = (s: Stage, op: string): string => {
  const found = all(s, op);
  expect(found, `${op} in stage ${s.name}`).toHaveLength(1);
  return found[0]!;
};
const execForm = (args: string): string[] => JSON.parse(args) as string[];

describe('the Dockerfile', () => {
  it('builds in one node:24-slim stage and runs in another', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(build.from).toBe('node:24-slim');
    expect(runtime.from).toBe('node:24-slim');
    expect(build.name).toBe('build');
    expect(all(build, 'RUN').join('\n')).toMatch(/npm ci\b/);
    expect(all(build, 'RUN').join('\n')).toMatch(/npm run build\b/);
  });

  it('installs only production dependencies in the runtime stage and copies dist and policies', () => {
    const runs = all(runtime, 'RUN').join('\n');
    expect(runs).toMatch(/npm ci\b[^\n]*--omit=dev/);
    expect(runs).not.toMatch(/npm run build/);
    const copies = all(runtime, 'COPY');
    expect(copies).toContain('--from=build /src/dist ./dist');
    expect(copies.some((c) => /^policies\s+\/etc\/portcullis\/policies$/.test(c))).toBe(true);
    expect(copies.some((c) => /^package\.json package-lock\.json\b/.test(c))).toBe(true);
  });

  it('copies only files that exist and that .dockerignore lets through', () => {
    const ignored = readFileSync(`${root}.dockerignore`, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    for (const must of ['node_modules', 'dist', '.git', 'test']) expect(ignored).toContain(must);
    const sources = stages
      .flatMap((s) => all(s, 'COPY'))
      .filter((c) => !c.startsWith('--from='))
      .flatMap((c) => c.split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(3);
    for (const src of sources) {
      expect(existsSync(`${root}${src}`), `${src} exists`).toBe(true);
      expect(ignored, `${src} is not ignored`).not.toContain(src);
    }
  });

  it('runs as the unprivileged node user', () => {
    const user = one(runtime, 'USER');
    expect(user).toBe('node');
    expect(['root', '0', '0:0']).not.toContain(user);
  });

  it('carries the OCI image labels', () => {
    const labels = all(runtime, 'LABEL').join(' ');
    for (const key of ['title', 'description', 'version', 'revision', 'licenses', 'source']) {
      expect(labels).toContain(`org.opencontainers.image.${key}=`);
    }
  });

  it('serves the mounted policy directory on the exposed proxy and admin ports by default', () => {
    expect(execForm(one(runtime, 'ENTRYPOINT'))).toEqual(['node', ...nodeFlags(), 'dist/main.js']);
    const cmd = execForm(one(runtime, 'CMD'));
    expect(cmd).toEqual(['serve', '--policy', '/etc/portcullis/policies', '--listen', '0.0.0.0:8080', '--admin', '0.0.0.0:9090']);
    expect(one(runtime, 'EXPOSE').split(/\s+/).sort()).toEqual(['8080', '9090']);
    expect(existsSync(`${root}src/main.ts`)).toBe(true);
  });
});

describe('the image HEALTHCHECK', () => {
  const logger = createLogger({ level: 'silent' });
  let admin: AdminServer;
  let command: string[];

  beforeAll(async () => {
    const healthcheck = one(runtime, 'HEALTHCHECK');
    const m = /^(.*?)\bCMD\s+(\[.*\])$/.exec(healthcheck);
    expect(m, 'HEALTHCHECK … CMD [exec form]').not.toBeNull();
    expect(m![1]).toMatch(/--interval=\S+/);
    command = execForm(m![2]!);
    expect(command[0]).toBe('node');
    expect(command.join(' ')).toContain('http://127.0.0.1:9090/healthz');
    admin = new AdminServer({ host: '127.0.0.1', port: await freePort(), logger });
    await admin.listen();
  });
  afterAll(async () => {
    await admin.close();
  });

  // Asynchronously: the admin listener runs in this process and must keep answering.
  const runAgainst = (url: string) =>
    new Promise<{ status: number | null; stderr: string }>((resolve, reject) => {
      const args = command.slice(1).map((a) => a.replace('http://127.0.0.1:9090', url));
      const child = spawn(process.execPath, args, { cwd: root, timeout: 10_000 });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      child.on('error', reject);
      child.on('close', (status) => resolve({ status, stderr }));
    });

  it('passes against a running admin listener', async () => {
    const r = await runAgainst(admin.url!);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('fails when nothing answers on the admin port', async () => {
    const r = await runAgainst(`http://127.0.0.1:${await freePort()}`);
    expect(r.status).toBe(1);
  });
});
