// Every manifest under deploy/kubernetes/ parsed (multi-document YAML) and checked for what makes
// it work: probes on the admin port, the Service reaching Portcullis, the ConfigMap mounted where
// serve reads its policy, ports matching the CLI flags, a locked-down container.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { planFromFiles } from '../../helpers/plan.js';

const dir = new URL('../../../deploy/kubernetes/', import.meta.url).pathname;

type Manifest = any;

function manifestsIn(sub: string): { file: string; docs: Manifest[]; text: string } {
  const files = readdirSync(join(dir, sub)).filter((f) => /\.ya?ml$/.test(f));
  expect(files.length).toBeGreaterThan(0);
  const docs: Manifest[] = [];
  let text = '';
  for (const f of files) {
    text += readFileSync(join(dir, sub, f), 'utf8');
    for (const d of parseAllDocuments(readFileSync(join(dir, sub, f), 'utf8'))) {
      expect(d.errors, `${sub}/${f}`).toEqual([]);
      const value = d.toJS() as Manifest;
      if (value !== null) docs.push(value);
    }
  }
  return { file: sub, docs, text };
}

const examples = ['sidecar', 'gateway', 'sidecar-grpc'].map(manifestsIn);
const of = (docs: Manifest[], kind: string): Manifest[] => docs.filter((d) => d.kind === kind);
const flag = (args: readonly string[], name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const portcullisOf = (deployment: Manifest): Manifest => {
  const c = deployment.spec.template.spec.containers.find((x: Manifest) => x.args?.[0] === 'serve');
  expect(c, `portcullis container in ${deployment.metadata.name}`).toBeDefined();
  return c;
};
/** A named or numbered port of a container → its number. */
const portNumber = (container: Manifest, port: string | number): number => {
  if (typeof port === 'number') return port;
  const p = container.ports.find((x: Manifest) => x.name === port);
  expect(p, `port ${port}`).toBeDefined();
  return p.containerPort as number;
};
const selects = (selector: Record<string, string>, labels: Record<string, string>): boolean => Object.entries(selector).every(([k, v]) => labels[k] === v);

describe.each(examples)('the $file example', ({ file, docs, text }) => {
  it('has apiVersion, kind and metadata.name on every document', () => {
    expect(docs.length).toBeGreaterThanOrEqual(3);
    for (const d of docs) {
      expect(typeof d.apiVersion).toBe('string');
      expect(typeof d.kind).toBe('string');
      expect(d.metadata?.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    }
  });

  const deployment = of(docs, 'Deployment').find((d) => d.spec.template.spec.containers.some((c: Manifest) => c.args?.[0] === 'serve'));

  it('runs portcullis serve with ports matching its --listen and --admin flags', () => {
    expect(deployment).toBeDefined();
    const c = portcullisOf(deployment);
    const listen = Number(flag(c.args, '--listen')!.split(':')[1]);
    const admin = Number(flag(c.args, '--admin')!.split(':')[1]);
    expect(flag(c.args, '--listen')).toBe(`0.0.0.0:${listen}`);
    expect(flag(c.args, '--admin')).toBe(`0.0.0.0:${admin}`);
    expect(portNumber(c, 'proxy')).toBe(listen);
    expect(portNumber(c, 'admin')).toBe(admin);
    // The drain must finish inside the pod's grace period.
    const drain = Number(/^(\d+)s$/.exec(flag(c.args, '--drain')!)![1]);
    expect(deployment.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThan(drain);
  });

  it('probes readiness on /readyz and liveness on /healthz at the admin port', () => {
    const c = portcullisOf(deployment);
    const admin = portNumber(c, 'admin');
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    expect(portNumber(c, c.readinessProbe.httpGet.port)).toBe(admin);
    expect(portNumber(c, c.livenessProbe.httpGet.port)).toBe(admin);
  });

  it('mounts a ConfigMap of this example where --policy points', () => {
    const c = portcullisOf(deployment);
    const mount = c.volumeMounts.find((m: Manifest) => m.mountPath === '/etc/portcullis/policies');
    expect(mount).toBeDefined();
    expect(mount.readOnly).toBe(true);
    expect(flag(c.args, '--policy')).toBe(mount.mountPath);
    const volume = deployment.spec.template.spec.volumes.find((v: Manifest) => v.name === mount.name);
    expect(of(docs, 'ConfigMap').map((m) => m.metadata.name)).toContain(volume.configMap.name);
  });

  it('reads the admin token from a Secret the user creates with a random value, and ships none', () => {
    const c = portcullisOf(deployment);
    const env = c.env.find((e: Manifest) => e.name === 'PORTCULLIS_ADMIN_TOKEN');
    const ref = env.valueFrom.secretKeyRef;
    expect(of(docs, 'Secret')).toEqual([]);
    // The instructions at the top create exactly the Secret and key the Deployment reads.
    const create = text.split('\n').find((l) => /^#\s+kubectl create secret generic /.test(l));
    expect(create, 'a `kubectl create secret` line in the header').toBeDefined();
    expect(create).toContain(`kubectl create secret generic ${ref.name} --from-literal=${ref.key}="$(openssl rand -hex 32)"`);
    expect(text.indexOf(create!)).toBeLessThan(text.indexOf('kubectl apply'));
  });

  it('runs every container as non-root on a read-only root filesystem, with resources', () => {
    for (const d of of(docs, 'Deployment')) {
      const pod = d.spec.template.spec;
      expect(pod.securityContext.runAsNonRoot).toBe(true);
      expect(pod.automountServiceAccountToken).toBe(false);
      expect(selects(d.spec.selector.matchLabels, d.spec.template.metadata.labels)).toBe(true);
      for (const c of pod.containers) {
        expect(c.securityContext.readOnlyRootFilesystem, c.name).toBe(true);
        expect(c.securityContext.allowPrivilegeEscalation, c.name).toBe(false);
        expect(c.securityContext.capabilities.drop, c.name).toEqual(['ALL']);
        expect(c.resources.requests.cpu, c.name).toBeDefined();
        expect(c.resources.limits.memory, c.name).toBeDefined();
      }
    }
  });

  it('sends the Service to the portcullis proxy port of the pods', () => {
    const c = portcullisOf(deployment);
    const services = of(docs, 'Service').filter((s) => selects(s.spec.selector, deployment.spec.template.metadata.labels));
    expect(services).toHaveLength(1);
    for (const p of services[0].spec.ports) expect(portNumber(c, p.targetPort)).toBe(portNumber(c, 'proxy'));
  });

  it(`ships a policy that compiles (${file})`, async () => {
    const cm = of(docs, 'ConfigMap')[0];
    const env = Object.fromEntries(
      portcullisOf(deployment)
        .env.filter((e: Manifest) => typeof e.value === 'string')
        .map((e: Manifest) => [e.name, e.value]),
    );
    const plan = await planFromFiles(cm.data, env);
    expect(plan.routes.length).toBeGreaterThan(1);
    // Every protected route can be authenticated, so its 401 tells the client how.
    const protectedRoutes = plan.routes.filter((r) => !r.public);
    expect(protectedRoutes.length).toBeGreaterThan(0);
    for (const r of protectedRoutes) expect(plan.authn!.routes.get(r.index)!.missing.headers?.['www-authenticate'], r.name).toBeDefined();
  });
});

describe('the sidecar example', () => {
  const docs = examples[0]!.docs;
  const deployment = of(docs, 'Deployment')[0];

  it('puts the app and portcullis in one Pod, the app reachable only on loopback', async () => {
    const containers = deployment.spec.template.spec.containers;
    expect(containers).toHaveLength(2);
    const app = containers.find((c: Manifest) => c.args?.[0] !== 'serve');
    expect(app.ports).toBeUndefined();
    const listen = /-listen=(\S+)/.exec(app.args.join(' '))![1];
    expect(listen).toMatch(/^127\.0\.0\.1:\d+$/);
    const plan = await planFromFiles(of(docs, 'ConfigMap')[0].data, {});
    for (const u of plan.upstreams.values()) expect(u.targets[0]!.origin).toBe(`http://${listen}`);
  });
});

describe('the gateway example', () => {
  const docs = examples[1]!.docs;
  const gateway = of(docs, 'Deployment').find((d) => d.metadata.name === 'portcullis-gateway');

  it('runs several replicas that share one Redis', () => {
    expect(gateway.spec.replicas).toBeGreaterThanOrEqual(2);
    const env = portcullisOf(gateway).env.find((e: Manifest) => e.name === 'REDIS_URL');
    const host = /^redis:\/\/([^:/]+):(\d+)$/.exec(env.value)!;
    const redisService = of(docs, 'Service').find((s) => s.metadata.name === host[1]);
    expect(redisService, 'the Redis Service REDIS_URL names').toBeDefined();
    expect(redisService.spec.ports[0].port).toBe(Number(host[2]));
    expect(of(docs, 'ConfigMap')[0].data['routes.yaml']).toContain('url: env:REDIS_URL');
  });

  it('keeps a majority up through voluntary disruptions', () => {
    const pdb = of(docs, 'PodDisruptionBudget')[0];
    expect(pdb.apiVersion).toBe('policy/v1');
    expect(selects(pdb.spec.selector.matchLabels, gateway.spec.template.metadata.labels)).toBe(true);
    expect(pdb.spec.minAvailable).toBeGreaterThanOrEqual(1);
    expect(pdb.spec.minAvailable).toBeLessThan(gateway.spec.replicas);
    expect(gateway.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
  });
});

describe('the gRPC sidecar example', () => {
  const docs = examples[2]!.docs;
  const deployment = of(docs, 'Deployment')[0];

  it('serves h2c to callers and speaks h2c to the app', () => {
    expect(portcullisOf(deployment).args).toContain('--h2c');
    expect(of(docs, 'ConfigMap')[0].data['policy.yaml']).toMatch(/protocol: h2c/);
    expect(of(docs, 'Service')[0].spec.ports[0].appProtocol).toBe('kubernetes.io/h2c');
  });

  it('ships the same policy as policies/examples/grpc.yaml', () => {
    const example = readFileSync(new URL('../../../policies/examples/grpc.yaml', import.meta.url), 'utf8');
    const body = (text: string): string =>
      text
        .slice(text.indexOf('version: 1'))
        .replace(/ +#.*$/gm, '')
        .replace(/^ +/gm, '')
        .trim();
    expect(body(of(docs, 'ConfigMap')[0].data['policy.yaml'])).toBe(body(example));
  });
});
