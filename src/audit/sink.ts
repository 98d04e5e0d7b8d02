// What every audit sink implements. A sink writes whole batches of NDJSON lines (no trailing
// newline per element) and rejects when the batch may not have been stored; the dispatcher then
// spools and retries, so delivery is at-least-once (consumers de-duplicate by event id).
export interface AuditSink {
  readonly name: string;
  write(batch: readonly string[]): Promise<void>;
  close(): Promise<void>;
}
