// Owns the running Plan: loads it, watches the policy for changes and swaps in each new version
// atomically. A request holds the Plan it started with; a reload replaces the field, never the
// object. A policy that fails to load or compile is logged and counted, and the last good one stays.
import { watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { EventBus } from '../events.js';
import { policyInfo, policyReloadsTotal } from '../observability/metrics.js';
import { compilePolicy } from './compile.js';
import { formatDiagnostic, PolicyError, type Diagnostic } from './diagnostics.js';
import { loadPolicySource, policyFiles } from './load.js';
import type { Plan } from './plan.js';

export type ReloadTrigger = 'watch' | 'signal' | 'admin';
export type ReloadResult = { ok: true; plan: Plan } | { ok: false; diagnostics: Diagnostic[] };

export interface PolicyManagerOptions {
  readonly watch: boolean;
  readonly logger: Logger;
  readonly bus: EventBus;
  /** Quiet time after the last file event before reloading (default 200ms): editors write in bursts. */
  readonly debounceMs?: number;
  readonly env?: NodeJS.ProcessEnv;
}

/** Loads and compiles; PolicyError carries every diagnostic. */
async function build(path: string, env: NodeJS.ProcessEnv | undefined): Promise<{ plan: Plan; warnings: Diagnostic[] }> {
  return compilePolicy(await loadPolicySource(path, { env }));
}

function asDiagnostics(path: string, err: unknown): Diagnostic[] {
  if (err instanceof PolicyError) return [...err.diagnostics];
  return [{ severity: 'error', file: path, line: 1, column: 1, path: '', message: err instanceof Error ? err.message : String(err) }];
}

export class PolicyManager {
  readonly #path: string;
  readonly #options: PolicyManagerOptions;
  #plan: Plan;
  #listeners: ((plan: Plan) => void)[] = [];
  #watchers: FSWatcher[] = [];
  #timer: NodeJS.Timeout | undefined;
  /** Reloads run one after another, so the last file state always wins. */
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(path: string, plan: Plan, options: PolicyManagerOptions) {
    this.#path = path;
    this.#plan = plan;
    this.#options = options;
  }

  /** Loads the policy (throws PolicyError when it is invalid) and, with watch, follows its changes. */
  static async open(path: string, options: PolicyManagerOptions): Promise<PolicyManager> {
    let built: { plan: Plan; warnings: Diagnostic[] };
    try {
      built = await build(path, options.env);
    } catch (err) {
      policyReloadsTotal.inc({ result: 'failure' });
      throw err instanceof PolicyError ? err : new PolicyError(asDiagnostics(path, err));
    }
    const manager = new PolicyManager(path, built.plan, options);
    manager.#accepted(built.plan, built.warnings, 'startup');
    if (options.watch) await manager.#watch();
    return manager;
  }

  get plan(): Plan {
    return this.#plan;
  }

  /** Called after every swap with the new Plan. Returns an unsubscribe function. */
  onSwap(fn: (plan: Plan) => void): () => void {
    this.#listeners.push(fn);
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== fn);
    };
  }

  /** Load, validate and swap; what file changes, SIGHUP and POST /admin/reload all call. */
  reload(trigger: ReloadTrigger): Promise<ReloadResult> {
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

  async #reload(trigger: ReloadTrigger): Promise<ReloadResult> {
    const log = this.#options.logger;
    let built: { plan: Plan; warnings: Diagnostic[] };
    try {
      built = await build(this.#path, this.#options.env);
    } catch (err) {
      const diagnostics = asDiagnostics(this.#path, err);
      const errors = diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);
      policyReloadsTotal.inc({ result: 'failure' });
      for (const line of errors) log.error({ trigger, policy: this.#path }, `policy rejected: ${line}`);
      log.warn({ trigger, hash: this.#plan.hash }, 'policy reload failed; still serving the last good policy');
      this.#options.bus.publish({ type: 'policy.rejected', errors, trigger });
      return { ok: false, diagnostics };
    }
    if (built.plan.hash === this.#plan.hash) {
      // Same content (an editor touching the file, a ConfigMap resync): nothing to swap.
      if (trigger !== 'watch') {
        policyReloadsTotal.inc({ result: 'success' });
        log.info({ trigger, hash: this.#plan.hash }, 'policy unchanged');
      }
      return { ok: true, plan: this.#plan };
    }
    const previous = this.#plan;
    this.#plan = built.plan;
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

  #accepted(plan: Plan, warnings: readonly Diagnostic[], trigger: string): void {
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
    const dir = isDirectory ? this.#path : dirname(this.#path);
    this.#arm(dir);
  }

  #arm(dir: string): void {
    if (this.#closed) return;
    let watcher: FSWatcher;
    try {
      watcher = watch(dir, { persistent: false }, () => this.#schedule());
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

  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      void this.reload('watch');
    }, this.#options.debounceMs ?? 200);
    this.#timer.unref();
  }
}
