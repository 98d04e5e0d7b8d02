// Starts one private redis-server for the whole run (or uses REDIS_URL) and hands its URL to
// every test file. When redis-server is missing the run fails here, with the install command:
// suites that need Redis never skip silently.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import type { TestProject } from 'vitest/node';
import { freePort, untilPong } from './ports.js';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
    redisServerBin: string;
  }
}

let child: ChildProcess | undefined;

function which(bin: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const bin = which('redis-server');
  project.provide('redisServerBin', bin ?? '');
  if (process.env.REDIS_URL) {
    project.provide('redisUrl', process.env.REDIS_URL);
    return async () => {};
  }
  if (!bin) {
    throw new Error(
      'The test suite needs a Redis server and none was found.\n' +
        '  Install it:  sudo apt-get install -y redis-server   (or: brew install redis)\n' +
        '  or point the tests at one:  REDIS_URL=redis://127.0.0.1:6379 npm test',
    );
  }
  const port = await freePort();
  child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  await untilPong(port, `redis-server on port ${port} did not answer PING within 10000ms`);
  project.provide('redisUrl', `redis://127.0.0.1:${port}`);
  return async () => {
    child?.kill('SIGTERM');
  };
}
