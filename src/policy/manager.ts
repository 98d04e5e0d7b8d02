// Owns the running Plan: loads it, watches the policy for changes and swaps in each new version
// atomically. A request holds the Plan it started with; a reload replaces the field, never the
// object. A policy that fails to load or compile is logged and counted, and the last good one stays.
import { type FSWatcher, watch } from 'node:fs';
import { basename, dirname, relative, sep } from 'node:path';
import type { Logger } from 'pino';
import type { EventBus } from '../events.js';
import { policyInfo, policyReloadsTotal } from '../observability/metrics.js';
import { buildPolicy, type PolicyCompiler } from './build.js';
import { type Diagnostic, formatDiagnostic, PolicyError } from './diagnostics.js';
import { isPolicyFileName, policyFiles } from './load.js';
import type { KeyPath, SourceMap, SourcePosition } from './source-map.js';

export type ReloadTrigger = 'watch' | 'signal' | 'admin';

/**
 * A check a policy must also pass against state outside it before it runs (e.g. key ids that the
 * key store already holds). Its errors refuse the policy like validation errors; `position` turns a
 * key path of the merged document into file:line:column.
 */
export type PlanGuard<P> = (plan: P, position: (path: KeyPath) => SourcePosition) => Promise<readonly Diagnostic[]>;

/** What the manager needs to know of a compiled policy; the engine's Plan is one. */
export interface CompiledPolicy {
  readonly hash: string;
  readonly files: readonly string[];
  readonly routes: { readonly length: number };
}

interface Built<P> {
  readonly plan: P;
  readonly warnings: Diagnostic[];
  readonly sourceMap: SourceMap;
}
export type ReloadResult<P> = { ok: true; plan: P } | { ok: false; diagnostics: Diagnostic[] };

export interface PolicyManagerOptions<P> {
  readonly compile: PolicyCompiler<P>;
  readonly watch: boolean;
  readonly logger: Logger;
  readonly bus: EventBus;
  /** Quiet time after the last policy file event before reloading (default 200ms): editors write in bursts. */
  readonly debounceMs?: number;
  /** Longest time from the first policy file event to the reload, however often files keep changing (default 1s). */
  readonly maxWaitMs?: number;
  readonly env?: NodeJS.ProcessEnv;
}

/** Loads and compiles; PolicyError carries every diagnostic. `onFileReference` hears every `file:` target. */
async function build<P>(compile: PolicyCompiler<P>, path: string, env: NodeJS.ProcessEnv | undefined, onFileReference?: (target: string) => void): Promise<Built<P>> {
  const { plan, warnings, loaded } = await buildPolicy(compile, path, { env, onFileReference });
  return { plan, warnings, sourceMap: loaded.sourceMap };
}

function asDiagnostics(path: string, err: unknown): Diagnostic[] {
  if (err instanceof PolicyError) return [...err.diagnostics];
  return [{ severity: 'error', file: path, line: 1, column: 1, path: '', message: err instanceof Error ? err.message : String(err) }];
}

export class PolicyManager<P extends CompiledPolicy> {
  readonly #path: string;
  readonly #options: PolicyManagerOptions<P>;
  #plan: P;
  /** Where the running plan's keys were written, for guards run against it. */
  #sourceMap: SourceMap;
  #guards: PlanGuard<P>[] = [];
  #listeners: ((plan: P) => void)[] = [];
  #watchers: FSWatcher[] = [];
  #timer: NodeJS.Timeout | undefined;
  /** When the first policy file event of the pending reload arrived (undefined: none pending). */
  #firstEventAt: number | undefined;
  #policyIsDirectory = false;
  /** Every file the last load's `file:` values named (absolute paths). */
  #references: readonly string[] = [];
  /** Reloads run one after another, so the last file state always wins. */
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(path: string, built: Built<P>, options: PolicyManagerOptions<P>) {
    this.#path = path;
    this.#plan = built.plan;
    this.#sourceMap = built.sourceMap;
    this.#options = options;
  }

  /** Loads the policy (throws PolicyError when it is invalid) and, with watch, follows its changes. */
  static async open<P extends CompiledPolicy>(path: string, options: PolicyManagerOptions<P>): Promise<PolicyManager<P>> {
    let built: Built<P>;
    const references: string[] = [];
    try {
      built = await build(options.compile, path, options.env, (t) => references.push(t));
    } catch (err) {
      policyReloadsTotal.inc({ result: 'failure' });
      throw err instanceof PolicyError ? err : new PolicyError(asDiagnostics(path, err));
    }
    const manager = new PolicyManager(path, built, options);
    manager.#references = references;
    manager.#accepted(built.plan, built.warnings, 'startup');
    if (options.watch) await manager.#watch();
    return manager;
  }

  get plan(): P {
    return this.#plan;
  }

  /**
   * Adds a check every later policy must pass before it is swapped in, and runs it once against the
   * running policy: throws PolicyError (nothing registered) when that one fails it.
   */
  async addGuard(guard: PlanGuard<P>): Promise<void> {
    const sourceMap = this.#sourceMap;
    const errors = (await guard(this.#plan, (path) => sourceMap.position(path))).filter((d) => d.severity === 'error');
    if (errors.length > 0) {
      policyReloadsTotal.inc({ result: 'failure' });
      throw new PolicyError(errors);
    }
    this.#guards.push(guard);
  }

  /** Called after every swap with the new Plan. Returns an unsubscribe function. */
  onSwap(fn: (plan: P) => void): () => void {
    this.#listeners.push(fn);
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== fn);
    };
  }

  /** Load, validate and swap; what file changes, SIGHUP and POST /admin/reload all call. */
  reload(trigger: ReloadTrigger): Promise<ReloadResult<P>> {
    const run = this.#queue.then(() => this.#reload(trigger));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
    await this.#queue;
  }

  async #reload(trigger: ReloadTrigger): Promise<ReloadResult<P>> {
    const log = this.#options.logger;
    let built: Built<P>;
    const references: string[] = [];
    try {
      built = await build(this.#options.compile, this.#path, this.#options.env, (t) => references.push(t));
    } catch (err) {
      // Also after a failure: the file a new `file:` value names may be about to be created.
      this.#references = references;
      return this.#rejected(trigger, asDiagnostics(this.#path, err));
    }
    this.#references = references;
    if (built.plan.hash === this.#plan.hash) {
      // Same content (an editor touching the file, a ConfigMap resync): nothing to swap.
      if (trigger !== 'watch') {
        policyReloadsTotal.inc({ result: 'success' });
        log.info({ trigger, hash: this.#plan.hash }, 'policy unchanged');
      }
      return { ok: true, plan: this.#plan };
    }
    const sourceMap = built.sourceMap;
    for (const guard of this.#guards) {
      let refused: Diagnostic[];
      try {
        refused = (await guard(built.plan, (path) => sourceMap.position(path))).filter((d) => d.severity === 'error');
      } catch (err) {
        refused = asDiagnostics(this.#path, err);
      }
      if (refused.length > 0) return this.#rejected(trigger, refused);
    }
    const previous = this.#plan;
    this.#plan = built.plan;
    this.#sourceMap = sourceMap;
    policyInfo.remove({ hash: previous.hash });
    this.#accepted(built.plan, built.warnings, trigger);
    for (const fn of this.#listeners) {
      try {
        fn(built.plan);
      } catch (err) {
        log.error({ err }, 'policy swap listener failed');
      }
    }
    return { ok: true, plan: built.plan };
  }

  #rejected(trigger: ReloadTrigger, diagnostics: Diagnostic[]): ReloadResult<P> {
    const log = this.#options.logger;
    const errors = diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);
    policyReloadsTotal.inc({ result: 'failure' });
    for (const line of errors) log.error({ trigger, policy: this.#path }, `policy rejected: ${line}`);
    log.warn({ trigger, hash: this.#plan.hash }, 'policy reload failed; still serving the last good policy');
    this.#options.bus.publish({ type: 'policy.rejected', errors, trigger });
    return { ok: false, diagnostics };
  }

  #accepted(plan: P, warnings: readonly Diagnostic[], trigger: string): void {
    const log = this.#options.logger;
    policyReloadsTotal.inc({ result: 'success' });
    policyInfo.set({ hash: plan.hash }, 1);
    for (const w of warnings) log.warn({ policy: this.#path }, formatDiagnostic(w));
    log.info({ trigger, hash: plan.hash, files: plan.files, routes: plan.routes.length }, 'policy loaded');
    this.#options.bus.publish({ type: 'policy.loaded', hash: plan.hash, files: plan.files, trigger });
  }

  /**
   * Watches directories, not files: an atomic save (write temp + rename), an editor's delete and
   * recreate, and a Kubernetes ConfigMap swap (the `..data` symlink replaced) all replace the inode
   * a file watch would be attached to, but every one of them is an event in the directory.
   */
  async #watch(): Promise<void> {
    const { isDirectory } = await policyFiles(this.#path);
    this.#policyIsDirectory = isDirectory;
    this.#arm(isDirectory ? this.#path : dirname(this.#path));
  }

  /**
   * Whether an event about `name` in the watched directory may change the policy. Other files there
   * (an audit trail, logs, editor swap files) change all the time and must not hold a reload back.
   */
  #concerns(dir: string, name: string | null): boolean {
    if (name === null) return true; // the platform did not say which entry changed
    // Kubernetes swaps a ConfigMap or Secret by replacing the `..data` symlink (via `..data_tmp` and
    // a `..<timestamp>` directory); the policy files themselves are symlinks that never change.
    if (name.startsWith('..')) return true;
    if (this.#policyIsDirectory ? isPolicyFileName(name) : name === basename(this.#path)) return true;
    // A file a `file:` value names, or the subdirectory it lives in (replaced as a whole by atomic swaps).
    return this.#references.some((target) => relative(dir, target).split(sep)[0] === name);
  }

  #arm(dir: string): void {
    if (this.#closed) return;
    let watcher: FSWatcher;
    try {
      watcher = watch(dir, { persistent: false }, (_event, name) => {
        if (this.#concerns(dir, name === null ? null : String(name))) this.#schedule();
      });
    } catch (err) {
      this.#options.logger.error({ err, dir }, 'cannot watch the policy; retrying');
      setTimeout(() => this.#arm(dir), 1_000).unref();
      return;
    }
    watcher.on('error', (err) => {
      this.#options.logger.error({ err, dir }, 'policy watch failed; re-arming');
      watcher.close();
      this.#watchers = this.#watchers.filter((w) => w !== watcher);
      setTimeout(() => {
        this.#arm(dir);
        this.#schedule();
      }, 1_000).unref();
    });
    this.#watchers.push(watcher);
  }

  /**
   * Debounced, so an editor's burst of writes loads once; but never later than maxWaitMs after the
   * first event, so a file rewritten without pause still reaches the running policy.
   */
  #schedule(): void {
    if (this.#closed) return;
    const now = performance.now();
    this.#firstEventAt ??= now;
    const debounce = this.#options.debounceMs ?? 200;
    const deadline = this.#firstEventAt + (this.#options.maxWaitMs ?? 1_000);
    clearTimeout(this.#timer);
    this.#timer = setTimeout(
      () => {
        this.#firstEventAt = undefined;
        void this.reload('watch');
      },
      Math.max(0, Math.min(debounce, deadline - now)),
    );
    this.#timer.unref();
  }
}
