// The layering of src/ as rules (docs/architecture.md and DESIGN.md, "one engine, several doors").
// Top to bottom; a layer imports only layers below it:
//   main.ts, cli/, admin/   operator surfaces; nothing imports them (app.ts may compose admin/)
//   app.ts                  composition root
//   doors                   protocol adapters around the engine
//   engine                  the ordered stage list and the Plan assembled from each stage's section
//   stage folders           routing, authn, authz, limits, upstream, audit
//   core/                   shared contracts; imports only leaves
//   policy/                 the policy language; imports only leaves
//   leaves                  observability/ and small utilities that import nothing else in src/
// Type-only imports count: a type import ties two layers together as much as a value import does.
// Run: npm run layers

/** Files that import nothing in src/ except other leaves. Add a small utility here when it qualifies. */
const LEAVES = [
  // logger, metrics, request ids, traceparent, safe text
  '^src/observability/',
  // single-purpose files at the root of src/
  '^src/(canonical-json|events|header-names|ip-address|listen|redis-client|redis-url|request-headers|sha256)[.]ts$',
];
const CORE = ['^src/core/'];
const POLICY = ['^src/policy/'];
const STAGES = ['^src/(routing|authn|authz|limits|upstream|audit)/'];
/** The ordered stage list and the Plan assembly. */
const ENGINE = ['^src/engine/'];
/** Protocol adapters that call the engine. */
const DOORS = ['^src/proxy/', '^src/simulate/', '^src/h2/', '^src/decisions/'];
const APP = ['^src/app[.]ts$'];
const MAIN = ['^src/main[.]ts$'];
const CLI = ['^src/cli/'];
const ADMIN = ['^src/admin/'];

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import circle in src/ means two modules cannot be understood or loaded apart; break it by moving the shared part down a layer.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'leaves-import-only-leaves',
      severity: 'error',
      comment: 'A leaf imports nothing else in src/; a file that needs more is not a leaf (remove it from LEAVES).',
      from: { path: LEAVES },
      to: { path: '^src/', pathNot: LEAVES },
    },
    {
      name: 'core-imports-only-core-and-leaves',
      severity: 'error',
      comment: 'core/ holds the contracts every stage shares; it may import only core/ and the leaves.',
      from: { path: CORE },
      to: { path: '^src/', pathNot: [...CORE, ...LEAVES] },
    },
    {
      name: 'policy-imports-only-policy-and-leaves',
      severity: 'error',
      comment: 'policy/ is the policy language only: no stage folder, no engine, nothing above it. Each stage compiles its own section.',
      from: { path: POLICY },
      to: { path: '^src/', pathNot: [...POLICY, ...LEAVES] },
    },
    {
      name: 'stages-import-no-upper-layer',
      severity: 'error',
      comment: 'A stage folder sees core/, policy/, the leaves and other stage folders, never the engine, a door, the composition root or an operator surface.',
      from: { path: STAGES },
      to: { path: [...ENGINE, ...DOORS, ...APP, ...MAIN, ...CLI, ...ADMIN] },
    },
    {
      name: 'engine-imports-no-door-or-above',
      severity: 'error',
      comment: 'The engine decides; the doors call it. It imports no door, no composition root, no operator surface.',
      from: { path: ENGINE },
      to: { path: [...DOORS, ...APP, ...MAIN, ...CLI, ...ADMIN] },
    },
    {
      name: 'doors-import-no-composition',
      severity: 'error',
      comment: 'A door is built by app.ts and handed its parts; it imports neither app.ts nor an operator surface.',
      from: { path: DOORS },
      to: { path: [...APP, ...MAIN, ...CLI, ...ADMIN] },
    },
    {
      name: 'only-main-imports-cli',
      severity: 'error',
      comment: 'cli/ is the top of the graph: only main.ts starts it.',
      from: { path: '^src/', pathNot: [...MAIN, ...CLI] },
      to: { path: CLI },
    },
    {
      name: 'only-app-imports-admin',
      severity: 'error',
      comment: 'admin/ is an operator surface composed by app.ts; nothing else imports it (stages expose what admin needs through their own types).',
      from: { path: '^src/', pathNot: [...APP, ...MAIN, ...ADMIN] },
      to: { path: ADMIN },
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      comment: 'Every import resolves; otherwise the rules above would pass on a graph with holes.',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.build.json' },
    enhancedResolveOptions: {
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.json'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      exportsFields: ['exports'],
    },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
