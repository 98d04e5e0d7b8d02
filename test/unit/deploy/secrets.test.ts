// What the repository ships for deployment never carries a secret value: Kubernetes manifests,
// compose, the Dockerfile, the policies inside them, and the commands the docs tell users to run.
// Secrets come from the user (a Secret they create, their environment, env:/file: in policies).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isMap, isPair, isScalar, isSeq, parseAllDocuments } from 'yaml';

const root = new URL('../../../', import.meta.url).pathname;

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

const yamlFiles = [...filesUnder(join(root, 'deploy')).filter((f) => /\.ya?ml$/.test(f)), join(root, 'docker-compose.yml')];
const shipped = [...filesUnder(join(root, 'deploy')), join(root, 'docker-compose.yml'), join(root, 'Dockerfile')];
const docs = [...readdirSync(join(root, 'docs')).map((f) => join(root, 'docs', f)), join(root, 'README.md')].filter((f) => f.endsWith('.md'));

/** Names whose value is a credential. */
const SECRETISH = /(secret|password|passwd|token|api[-_]?key|credentials?|private[-_]?key)$/i;
/**
 * A value that points at a secret instead of being one: env:/file: (policy), ${VAR} without a
 * default (compose); or empty, which is how a proxy's config removes a credential header.
 */
const REFERENCE = /^(|env:[A-Za-z_][A-Za-z0-9_]*|file:.+|\$\{[A-Za-z_][A-Za-z0-9_]*(:?-)?\})$/;
const PLACEHOLDER = /replace[-_ ]?me|change[-_ ]?me/i;

interface Finding {
  readonly where: string;
  readonly what: string;
}

/** Every string a secret-ish key holds (maps, and Kubernetes `env: [{name, value}]` lists), in every YAML document of `text`. */
function literalSecrets(text: string, where: string, depth = 0): Finding[] {
  const found: Finding[] = [];
  const walk = (node: unknown, path: string): void => {
    if (isMap(node)) {
      const get = (k: string) => node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === k)?.value;
      const kind = get('kind');
      if (isScalar(kind) && kind.value === 'Secret' && (get('data') !== undefined || get('stringData') !== undefined)) {
        found.push({ where: `${where} ${path}`, what: 'a Secret with data' });
      }
      const name = get('name');
      const value = get('value');
      if (isScalar(name) && typeof name.value === 'string' && SECRETISH.test(name.value) && isScalar(value) && typeof value.value === 'string' && !REFERENCE.test(value.value)) {
        found.push({ where: `${where} ${path}.${name.value}`, what: value.value });
      }
      for (const pair of node.items) {
        if (!isPair(pair) || !isScalar(pair.key)) continue;
        const key = String(pair.key.value);
        const v = pair.value;
        if (SECRETISH.test(key) && isScalar(v) && typeof v.value === 'string' && !REFERENCE.test(v.value)) found.push({ where: `${where} ${path}.${key}`, what: v.value });
        // Policies embedded in ConfigMaps are YAML too.
        if (isScalar(v) && typeof v.value === 'string' && /\.ya?ml$/.test(key) && depth === 0) found.push(...literalSecrets(v.value, `${where} ${path}.${key} →`, 1));
        walk(v, `${path}.${key}`);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        walk(item, `${path}[${i}]`);
      });
    }
  };
  for (const doc of parseAllDocuments(text)) walk(doc.contents, '');
  return found;
}

describe('deployment files', () => {
  it('hold no literal value under a secret-ish name, and no Secret with data', () => {
    expect(yamlFiles.length).toBeGreaterThan(3);
    const found = yamlFiles.flatMap((f) => literalSecrets(readFileSync(f, 'utf8'), relative(root, f)));
    expect(found).toEqual([]);
  });

  it('hold no placeholder secret such as replace-me or change-me', () => {
    const found = shipped.filter((f) => PLACEHOLDER.test(readFileSync(f, 'utf8'))).map((f) => relative(root, f));
    expect(found).toEqual([]);
  });

  it('set no secret-ish variable in the Dockerfile', () => {
    const lines = readFileSync(join(root, 'Dockerfile'), 'utf8').split('\n');
    const found = lines.filter(
      (l) =>
        /^\s*(ENV|ARG)\s/i.test(l) &&
        l
          .split(/\s+/)
          .slice(1)
          .some((w) => SECRETISH.test(w.split('=')[0]!) && w.includes('=')),
    );
    expect(found).toEqual([]);
  });

  it('are told apart from a file that ships a secret (the check itself)', () => {
    const bad =
      'kind: Secret\nstringData: { token: x }\n---\nspec: { containers: [{ env: [{ name: PORTCULLIS_ADMIN_TOKEN, value: abc }] }] }\n---\nenvironment: { PORTCULLIS_ADMIN_TOKEN: "${PORTCULLIS_ADMIN_TOKEN:-change-me}" }\n---\ndata:\n  policy.yaml: |\n    audit: { sinks: [{ webhook: { url: "https://x", secret: s3cr3t } }] }\n';
    expect(literalSecrets(bad, 'bad').map((f) => f.what)).toEqual(['a Secret with data', 'x', 'abc', '${PORTCULLIS_ADMIN_TOKEN:-change-me}', 's3cr3t']);
    const good =
      'env: [{ name: PORTCULLIS_ADMIN_TOKEN, valueFrom: { secretKeyRef: { name: a, key: token } } }]\nenvironment: { PORTCULLIS_ADMIN_TOKEN: "${PORTCULLIS_ADMIN_TOKEN:-}" }\nsecret: env:HMAC\n';
    expect(literalSecrets(good, 'good')).toEqual([]);
  });
});

describe('the docs', () => {
  it('generate every admin token they tell users to set, and name no literal one', () => {
    const found: string[] = [];
    for (const f of docs) {
      for (const [line, text] of readFileSync(f, 'utf8').split('\n').entries()) {
        for (const m of text.matchAll(/(?:PORTCULLIS_ADMIN_TOKEN=|--from-literal=[\w.-]+=)("?)(\S*)/g)) {
          if (!m[2]!.startsWith('$(')) found.push(`${relative(root, f)}:${line + 1}: ${text.trim()}`);
        }
      }
    }
    expect(found).toEqual([]);
  });
});
