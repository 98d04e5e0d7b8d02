// The one escape for every line Portcullis writes (audit events, logs). JSON.stringify already
// escapes the C0 controls; it leaves raw the characters a terminal, an editor or a log viewer may
// act on instead of showing: DEL, the C1 controls (0x9B is a one-byte CSI on some terminals), the
// line and paragraph separators, and the bidirectional formatting characters (U+202E
// RIGHT-TO-LEFT OVERRIDE shows "/x/‮gpj.exe" as "/x/exe.jpg"). They are written as JSON
// "\uXXXX" escapes: the parsed value is unchanged (hash chains still verify), the bytes carry none.
const UNSAFE = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const UNSAFE_ALL = new RegExp(UNSAFE.source, 'g');

const escapeChar = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * A JSON text with each unsafe character written as its \uXXXX escape. Only valid for JSON, where
 * these characters can only occur inside strings; a line with none (nearly all) is returned as is.
 */
export function safeJsonLine(line: string): string {
  return UNSAFE.test(line) ? line.replace(UNSAFE_ALL, escapeChar) : line;
}
