// Every door contains its own faults the same way: count them by where they were caught and log
// the error with its stack, and never let that bookkeeping throw into the code that contains them.
import type { Logger } from 'pino';
import { gatewayFaultsTotal } from './metrics.js';

/** Counts and logs a contained fault (`where` is the metric label). Never throws. */
export function faultContained(logger: Logger, where: string, err: unknown, fields?: Readonly<Record<string, unknown>>): void {
  try {
    gatewayFaultsTotal.labels(where).inc();
    logger.error({ err, where, ...fields }, 'gateway fault contained');
  } catch {
    // Logging itself failed: the count (if it got that far) is all that is left to say.
  }
}
