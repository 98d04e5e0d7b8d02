// The node flags Portcullis runs with: the ones the first line of its executable names
// (`#!/usr/bin/env -S node …`, from src/main.ts). Read by the bench, which runs Portcullis as
// deployed, and by the tests that keep npm start and the Dockerfile in step with it.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** `file` relative to the repository root (src/main.ts, or the built dist/main.js). */
export function nodeFlags(file = 'src/main.ts') {
  const first = fs.readFileSync(path.join(root, file), 'utf8').split('\n', 1)[0];
  const m = /^#!\/usr\/bin\/env -S node(.*)$/.exec(first);
  if (m === null) throw new Error(`${file} does not start with "#!/usr/bin/env -S node …": ${first}`);
  return m[1].trim().split(/\s+/).filter(Boolean);
}
