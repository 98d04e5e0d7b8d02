// docs/cli.md and the README tell the truth about the command line: every flag a command accepts
// (its parseFlags option tables in src/cli/<command>.ts, read from the source) is documented, every
// documented flag exists, each command's --help names exactly its flags, and every PORTCULLIS_*
// variable the code reads is documented.
import { readdirSync, readFileSync } from 'node:fs';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = new URL('../../../', import.meta.url).pathname;
const read = (path: string): string => readFileSync(`${root}${path}`, 'utf8');

/** The commands of src/main.ts's COMMANDS map → their module file. */
function commands(): Map<string, string> {
  const main = read('src/main.ts');
  return new Map([...main.matchAll(/^ {2}(\w+): \{ summary: .*import\('\.\/cli\/([\w-]+)\.js'\)/gm)].map((m) => [m[1]!, `src/cli/${m[2]}.ts`]));
}

/** Every `--flag` of every parseFlags(argv, {...}) call in a file, spreads of same-file constants included. */
function flagsOf(file: string): Set<string> {
  const source = ts.createSourceFile(file, read(file), ts.ScriptTarget.Latest, true);
  const consts = new Map<string, ts.Expression>();
  const flags = new Set<string>();
  const unwrap = (e: ts.Expression): ts.Expression => (ts.isAsExpression(e) || ts.isSatisfiesExpression(e) || ts.isParenthesizedExpression(e) ? unwrap(e.expression) : e);
  const collect = (e: ts.Expression): void => {
    const x = unwrap(e);
    if (ts.isIdentifier(x)) {
      const target = consts.get(x.text);
      if (target === undefined) throw new Error(`${file}: cannot resolve the option table ${x.text}`);
      collect(target);
      return;
    }
    if (!ts.isObjectLiteralExpression(x)) throw new Error(`${file}: an option table that is not an object literal`);
    for (const p of x.properties) {
      if (ts.isSpreadAssignment(p)) collect(p.expression);
      else if (p.name !== undefined && (ts.isIdentifier(p.name) || ts.isStringLiteral(p.name))) flags.add(`--${p.name.text}`);
    }
  };
  const visit = (node: ts.Node): void => {
    if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.initializer) consts.set(node.name.text, node.initializer);
    ts.forEachChild(node, visit);
  };
  visit(source);
  const calls = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'parseFlags' && node.arguments[1]) collect(node.arguments[1]);
    ts.forEachChild(node, calls);
  };
  calls(source);
  return flags;
}

/** docs/cli.md: `## \`portcullis <command>\`` → the flags in the first column of its tables. */
function documented(): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  let current: Set<string> | undefined;
  for (const line of read('docs/cli.md').split('\n')) {
    const heading = /^## `portcullis (\w+)`/.exec(line);
    if (heading) out.set(heading[1]!, (current = new Set()));
    else if (line.startsWith('## ')) current = undefined;
    else if (current && line.startsWith('| `--')) current.add(/^\| `(--[a-z][a-z0-9-]*)/.exec(line)![1]!);
  }
  return out;
}

const flagsIn = (text: string): string[] => [...text.matchAll(/(?<![\w-])(--[a-z][a-z0-9-]*)/g)].map((m) => m[1]!);

describe('the command line documentation', () => {
  const all = commands();

  it('reads every command and its option tables from the source', () => {
    expect([...all.keys()].sort()).toEqual(['audit', 'bench', 'diff', 'explain', 'keys', 'schema', 'serve', 'test', 'usage', 'validate']);
    expect(flagsOf('src/cli/audit.ts')).toEqual(new Set(['--key', '--expect-head', '--closed', '--since', '--format']));
  });

  it('lists in docs/cli.md exactly the flags each command accepts', () => {
    const docs = documented();
    for (const [name, file] of all) expect([...(docs.get(name) ?? [])].sort(), name).toEqual([...flagsOf(file)].sort());
  });

  it("names in each command's --help exactly the flags it accepts", async () => {
    for (const [name, file] of all) {
      const { usage } = (await import(`../../../${file}`)) as { usage: string };
      const named = new Set(flagsIn(usage).filter((f) => f !== '--help'));
      expect([...named].sort(), name).toEqual([...flagsOf(file)].sort());
    }
  });

  it('shows in the README synopsis only flags that exist', () => {
    const readme = read('README.md');
    const start = readme.indexOf('## Command line');
    const block = readme.slice(readme.indexOf('```', start) + 3, readme.indexOf('```', readme.indexOf('```', start) + 3));
    let command = '';
    const global = new Set(['--help', '--version']);
    for (const line of block.split('\n')) {
      command = /^portcullis (\w+)/.exec(line)?.[1] ?? command;
      const file = all.get(command);
      const known = file === undefined ? global : new Set([...flagsOf(file), ...global]);
      for (const flag of flagsIn(line)) expect(known.has(flag), `${command}: ${flag}`).toBe(true);
    }
  });

  it('documents every PORTCULLIS_* environment variable the code reads', () => {
    const names = new Set<string>();
    const walk = (dir: string): void => {
      for (const e of readdirSync(`${root}${dir}`, { withFileTypes: true })) {
        if (e.isDirectory()) walk(`${dir}/${e.name}`);
        else if (e.name.endsWith('.ts')) for (const m of read(`${dir}/${e.name}`).matchAll(/\bPORTCULLIS_[A-Z_]+\b/g)) names.add(m[0]);
      }
    };
    walk('src');
    expect(names.has('PORTCULLIS_INSTANCE')).toBe(true);
    const docs = read('docs/cli.md');
    const env = docs.slice(docs.indexOf('## Environment'));
    expect([...names].filter((n) => !env.includes(`| \`${n}\` |`))).toEqual([]);
  });
});
