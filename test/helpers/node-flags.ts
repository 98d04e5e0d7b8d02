// The node flags Portcullis runs with, as the first line of src/main.ts names them (the shebang).
// @ts-expect-error: a plain .mjs module without type declarations
import { nodeFlags as shebangFlags } from '../../bench/node-flags.mjs';

export const nodeFlags = (file = 'src/main.ts'): string[] => shebangFlags(file) as string[];
