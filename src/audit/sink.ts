// What every audit sink implements. A sink writes whole batches of NDJSON lines (no trailing
// newline per element) and rejects when the batch may not have been stored; the dispatcher then
// spools and retries, so delivery is at-least-once (consumers de-duplicate by event id).
export interface AuditSink {
  readonly name: string;
  write(batch: readonly string[]): Promise<void>;
  /** Optional: acquire what the first write needs (open the file) so it costs no more than later ones. */
  open?(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A write that stored the first `delivered` lines of its batch and then failed: the dispatcher
 * keeps only the rest, so a sink that splits a batch into several requests does not deliver the
 * requests that succeeded a second time.
 */
export class PartialWriteError extends Error {
  readonly delivered: number;
  constructor(delivered: number, cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = 'PartialWriteError';
    this.delivered = delivered;
  }
}
