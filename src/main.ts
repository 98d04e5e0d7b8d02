#!/usr/bin/env -S node --no-memory-reducer
// The node flags on the line above are the ones Portcullis runs with everywhere (npm start, the
// Docker image, npm run bench; tests keep them in step). --no-memory-reducer: when a process goes
// quiet, V8's memory reducer runs heap-shrinking GCs, and the traffic that follows cost Portcullis
// about 15% more CPU per request (bench rounds after idle gaps; see docs/operations.md). A proxy
// keeps its working heap instead; ordinary GC still bounds it.
// The `portcullis` command. Each command is one module under src/cli/, loaded only when used.
// To add one: put src/cli/<name>.ts (exporting `usage` and `run`) and one line in COMMANDS.
import { readFileSync } from 'node:fs';
import { type CliIo, type CommandModule, EXIT, UsageError } from './cli/command.js';

interface CommandEntry {
  readonly summary: string;
  readonly load: () => Promise<CommandModule> | CommandModule;
}

const COMMANDS: Record<string, CommandEntry> = {
  serve: { summary: 'run the proxy and the admin listener', load: () => import('./cli/serve.js') },
  validate: { summary: 'check a policy file or directory (exit 0 valid, 1 invalid)', load: () => import('./cli/validate.js') },
  schema: { summary: 'print the policy JSON Schema', load: () => import('./cli/schema.js') },
  test: { summary: 'run policy unit tests (*.test.yaml)', load: () => import('./cli/test.js') },
  explain: { summary: 'show the decision for one request, stage by stage', load: () => import('./cli/explain.js') },
  keys: { summary: 'create, hash, list and revoke API keys', load: () => import('./cli/keys.js') },
  audit: { summary: 'verify and report on audit logs', load: () => import('./cli/audit.js') },
  bench: { summary: 'load-test a policy with autocannon', load: () => import('./cli/bench.js') },
  diff: { summary: 'show what changes between two policies (exit 0 none, 1 changes)', load: () => import('./cli/diff.js') },
  usage: { summary: 'usage per tenant (requests, tokens, latency, cost) from audit files', load: () => import('./cli/usage.js') },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function help(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  const list = Object.entries(COMMANDS)
    .map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`)
    .join('\n');
  return `Usage: portcullis <command> [options]

Portcullis: a reverse-proxy policy sidecar (API keys, JWT, RBAC, limits, audit).

Commands:
${list}

Run "portcullis <command> --help" for a command's options.
  --version   print the version
  --help      print this help
`;
}

async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    const topic = first === 'help' ? rest[0] : undefined;
    if (topic !== undefined) {
      const entry = Object.hasOwn(COMMANDS, topic) ? COMMANDS[topic] : undefined;
      if (entry === undefined) {
        io.stderr(`portcullis help: unknown command "${topic}"\n\n${help()}`);
        return EXIT.usage;
      }
      io.stdout((await entry.load()).usage);
      return EXIT.ok;
    }
    (first === undefined ? io.stderr : io.stdout)(help());
    return first === undefined ? EXIT.usage : EXIT.ok;
  }
  if (first === '--version' || first === '-v') {
    io.stdout(`${version()}\n`);
    return EXIT.ok;
  }
  const entry = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
  if (!entry) {
    io.stderr(`portcullis: unknown command "${first}"\n\n${help()}`);
    return EXIT.usage;
  }
  const command = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout(command.usage);
    return EXIT.ok;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`portcullis ${first}: ${err.message}\n\n${command.usage}`);
      return EXIT.usage;
    }
    throw err;
  }
}

const io: CliIo = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  env: process.env,
  stdin: {
    isTTY: process.stdin.isTTY === true,
    read: async () => {
      let text = '';
      for await (const chunk of process.stdin) text += String(chunk);
      return text;
    },
  },
};

main(process.argv.slice(2), io).then(
  (code) => {
    // Commands that ran a server return after it stopped; anything left open (keep-alive pools,
    // timers) must not keep the process alive. Exit once stdout has drained.
    process.stdout.write('', () => process.exit(code));
  },
  (err: unknown) => {
    process.stderr.write(`portcullis: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(EXIT.failed);
  },
);
