#!/usr/bin/env node
// `npm test` runs this first (pretest). The suites need a real redis-server: when REDIS_URL is set
// or redis-server is on PATH there is nothing to do. On a Debian/Ubuntu machine where we are root
// and apt-get exists, install Debian's redis-server so `npm test` on a fresh machine does all the
// set-up itself. Anywhere else, do nothing: the test run's global setup fails with the install command.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const has = (bin) => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;

if (process.env.REDIS_URL || has('redis-server')) process.exit(0);

const root = typeof process.getuid === 'function' && process.getuid() === 0;
if (!root || !existsSync('/etc/debian_version') || !has('apt-get')) {
  console.error('ensure-redis: redis-server is not on PATH and REDIS_URL is not set; the test run will say how to install it.');
  process.exit(0);
}

const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
for (const args of [['update'], ['install', '-y', '--no-install-recommends', 'redis-server']]) {
  console.error(`ensure-redis: redis-server is missing; running apt-get ${args.join(' ')}`);
  const r = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env });
  if (r.status !== 0) {
    console.error(`ensure-redis: apt-get ${args[0]} failed (exit ${r.status}); install redis-server yourself or set REDIS_URL.`);
    process.exit(1);
  }
}
console.error('ensure-redis: installed redis-server');
