import { defineConfig } from 'vitest/config';

// Two cores: run test files in two forked workers; the integration and e2e suites use real
// sockets and real processes, so they get generous timeouts rather than retries.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    globalSetup: ['test/helpers/global-redis.ts'],
    // A suite must never pass by being skipped: a skipped test counts as a failure in CI (see .ci/run).
    passWithNoTests: false,
  },
});
