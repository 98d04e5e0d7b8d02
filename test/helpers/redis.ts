// Redis for tests: the shared server started by global-redis.ts, or a private one a test may kill
// and restart (fault tests). Never a mock.
import { type ChildProcess, spawn } from 'node:child_process';
import { inject } from 'vitest';
import { freePort, untilPong } from './ports.js';

export { freePort, untilPong };

export function redisUrl(): string {
  const url = inject('redisUrl');
  if (!url) throw new Error('no Redis for this run (global-redis.ts should have failed the run)');
  return url;
}

/** A redis-server of the test's own, on a fixed port so it can be stopped and started again. */
export class PrivateRedis {
  #child: ChildProcess | undefined;
  readonly port: number;
  /** Arguments after the port and bind address (a topology's cluster or replica settings). */
  readonly #extra: readonly string[];
  constructor(port: number, extra: readonly string[] = []) {
    this.port = port;
    this.#extra = extra;
  }
  static async start(extra: readonly string[] = []): Promise<PrivateRedis> {
    const r = new PrivateRedis(await freePort(), extra);
    await r.start();
    return r;
  }
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    const bin = inject('redisServerBin');
    if (!bin) throw new Error('redis-server is not installed: sudo apt-get install -y redis-server');
    this.#child = spawn(bin, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...this.#extra], { stdio: 'ignore' });
    await untilPong(this.port, `private redis-server on ${this.port} did not start`);
  }
  /** SIGKILL: the abrupt failure a crashed Redis is. */
  async kill(): Promise<void> {
    const c = this.#child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return; // already gone
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    });
  }
  async stop(): Promise<void> {
    await this.resume();
    await this.kill();
  }
  /** SIGSTOP: a Redis that hangs (connections stay open, nothing is answered) until resume(). */
  freeze(): void {
    this.#child?.kill('SIGSTOP');
  }
  resume(): void {
    const c = this.#child;
    if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGCONT');
  }
}
