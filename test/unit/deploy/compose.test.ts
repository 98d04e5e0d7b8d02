// docker-compose.yml: accepted by docker-compose itself when it is installed, and always checked
// for the pieces the stack relies on (services, mounts, ports, healthchecks, the Prometheus target).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { planAt } from '../../helpers/plan.js';

const root = new URL('../../../', import.meta.url).pathname;

interface Service {
  image?: string;
  build?: unknown;
  entrypoint?: string[];
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: { test: string[] };
  read_only?: boolean;
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

const compose = parse(readFileSync(`${root}docker-compose.yml`, 'utf8')) as Compose;
const svc = (name: string): Service => {
  const s = compose.services[name];
  expect(s, `service ${name}`).toBeDefined();
  return s!;
};
const flag = (args: readonly string[], name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const portOf = (hostPort: string): string => hostPort.split(':').at(-1)!;
const whichCompose = spawnSync('sh', ['-c', 'command -v docker-compose'], { encoding: 'utf8' }).stdout.trim();

describe('docker-compose.yml', () => {
  // CI installs docker-compose (.ci/run): there, a missing one fails rather than weakening the test.
  const required = process.env.CI === 'true';
  it(whichCompose || required ? 'is accepted by `docker-compose config`' : 'parses as YAML (docker-compose is not installed here)', () => {
    if (whichCompose) {
      const r = spawnSync(whichCompose, ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    } else {
      expect(required, 'docker-compose is not installed, and CI needs it (.ci/run installs it)').toBe(false);
      expect(Object.keys(compose.services).length).toBeGreaterThan(0);
    }
  });

  it('runs redis, the echo upstream, portcullis and prometheus', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['echo', 'portcullis', 'prometheus', 'redis']);
    expect(svc('redis').healthcheck?.test).toContain('ping');
    expect(svc('prometheus').image).toMatch(/^prom\/prometheus:v\d/);
  });

  it('builds portcullis from this repository and mounts the policy directory the image serves', () => {
    const p = svc('portcullis');
    expect(p.build).toBe('.');
    const cmd = p.command!;
    expect(flag(cmd, '--policy')).toBe('/etc/portcullis/policies');
    const mount = p.volumes!.find((v) => v.split(':')[1] === '/etc/portcullis/policies');
    expect(mount, 'policy mount').toBeDefined();
    const hostDir = mount!.split(':')[0]!;
    expect(existsSync(`${root}${hostDir}`)).toBe(true);
    // A directory mount (not single files) so Portcullis's directory watch sees edits and reloads.
    expect(hostDir).toBe('./deploy/compose/policies');
    expect(p.read_only).toBe(true);
  });

  it('publishes the proxy and admin ports that serve listens on', () => {
    const p = svc('portcullis');
    const listen = portOf(flag(p.command!, '--listen')!);
    const admin = portOf(flag(p.command!, '--admin')!);
    expect(flag(p.command!, '--listen')).toBe(`0.0.0.0:${listen}`);
    expect(p.ports!.map(portOf).sort()).toEqual([listen, admin].sort());
    // The admin listener is published on the host's loopback only.
    expect(p.ports!.find((x) => portOf(x) === admin)).toMatch(/^127\.0\.0\.1:/);
    expect(p.healthcheck!.test.join(' ')).toContain(`http://127.0.0.1:${admin}/healthz`);
  });

  it('points portcullis at redis and at the echo service, and starts it after both are healthy', () => {
    const p = svc('portcullis');
    expect(p.environment!.REDIS_URL).toBe('redis://redis:6379');
    const echo = svc('echo');
    expect(p.environment!.UPSTREAM_URL).toBe(`http://echo:${echo.environment!.PORT}`);
    expect(p.depends_on).toEqual({ redis: { condition: 'service_healthy' }, echo: { condition: 'service_healthy' } });
    expect(echo.healthcheck?.test.join(' ')).toContain(`:${echo.environment!.PORT}/`);
    // From the user's environment, with no default: unset, the admin API is disabled.
    expect(p.environment!.PORTCULLIS_ADMIN_TOKEN).toBe('${PORTCULLIS_ADMIN_TOKEN:-}');
  });

  it('runs the echo upstream from the same image with its built entry point', () => {
    const echo = svc('echo');
    expect(echo.image).toBe(svc('portcullis').image);
    expect(echo.entrypoint).toEqual(['node', 'dist/demo/echo-upstream.js']);
    expect(existsSync(`${root}src/demo/echo-upstream.ts`)).toBe(true);
  });

  it('mounts a Prometheus config that scrapes the portcullis admin /metrics', () => {
    const prom = svc('prometheus');
    const config = prom.volumes!.find((v) => v.split(':')[1] === '/etc/prometheus/prometheus.yml');
    expect(config).toBeDefined();
    const text = readFileSync(`${root}${config!.split(':')[0]}`, 'utf8');
    const parsed = parse(text) as { scrape_configs: { job_name: string; metrics_path?: string; static_configs: { targets: string[] }[] }[]; rule_files?: string[] };
    const job = parsed.scrape_configs.find((j) => j.job_name === 'portcullis')!;
    expect(job.metrics_path ?? '/metrics').toBe('/metrics');
    const admin = portOf(flag(svc('portcullis').command!, '--admin')!);
    expect(job.static_configs[0]!.targets).toEqual([`portcullis:${admin}`]);
    for (const rule of parsed.rule_files ?? []) {
      expect(prom.volumes!.some((v) => v.split(':')[1] === rule)).toBe(true);
    }
    expect(Object.keys(compose.volumes ?? {})).toContain('prometheus-data');
  });

  it('alerts only on metrics Portcullis declares', () => {
    const metrics = readFileSync(`${root}src/observability/metrics.ts`, 'utf8');
    const declared = new Set([...metrics.matchAll(/name: '(portcullis_[a-z_]+)'/g)].map((m) => m[1]!));
    const alerts = readFileSync(`${root}deploy/prometheus/alerts.yml`, 'utf8');
    const used = [...alerts.matchAll(/\b(portcullis_[a-z_]+?)(?:_bucket|_sum|_count)?\b/g)].map((m) => m[1]!);
    expect(used.length).toBeGreaterThan(5);
    for (const name of used) expect(declared, name).toContain(name);
  });

  it('mounts a policy that compiles with the environment compose gives it', async () => {
    const env = svc('portcullis').environment!;
    const plan = await planAt(`${root}deploy/compose/policies`, env);
    expect(plan.upstreams.get('app')?.targets[0]?.origin).toBe(env.UPSTREAM_URL);
    expect(plan.routes.some((r) => !r.public)).toBe(true);
  });
});
