// The compiled, immutable form of a policy, as the engine runs it. Built once per (re)load and
// swapped atomically; a request keeps the Plan it started with. This file declares only what every
// stage shares; each stage folder adds its own section to this interface (declaration merging, in
// that folder's compile.ts), and the engine assembles the whole.
export interface Plan {
  /** sha256 of the merged, resolved policy: names a version in logs, audit and /admin/policy. */
  readonly hash: string;
  readonly loadedAt: number;
  readonly files: readonly string[];
}
