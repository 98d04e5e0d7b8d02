// The node flags Portcullis runs with, as the first line of src/main.ts names them (the shebang).
import { readFileSync } from 'node:fs';

const root = new URL('../../', import.meta.url).pathname;

export function nodeFlags(file = 'src/main.ts'): string[] {
  const first = readFileSync(`${root}${file}`, 'utf8').split('\n', 1)[0]!;
  const m = /^#!\/usr\/bin\/env -S node(.*)$/.exec(first);
  if (m === null) throw new Error(`${file} does not start with "#!/usr/bin/env -S node …": ${first}`);
  return m[1]!.trim().split(/\s+/).filter(Boolean);
}
