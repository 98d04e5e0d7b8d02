// A route as every stage knows it: which one it is, where it was written, whether it is public and
// where it goes. What a stage needs beyond that, it compiles into its own section of the Plan,
// indexed by `index`.

export interface Route {
  readonly name: string;
  /** Position in `routes` (file order): the index of every stage's per-route settings. */
  readonly index: number;
  /** Where the route was written. */
  readonly source: { readonly file: string; readonly line: number; readonly column: number };
  /** No credentials asked, no authorization. */
  readonly public: boolean;
  /** The upstream's name. */
  readonly upstream: string;
}
