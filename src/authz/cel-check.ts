// A type check for route conditions, run once at load. @bufbuild/cel parses and evaluates CEL but
// its checker does not yet handle calls, so this walks the parsed expression itself: every name must
// be declared (`principal`, `request`, `time` and macro variables), every field of `principal` and
// `request` must exist, every function must be known, credential headers may not be read, and the
// result must be able to be a bool. Types it cannot know (claims, map values) are `dyn` and are
// checked when evaluated: a non-bool result then denies.
import type { CelEnv, parse } from '@bufbuild/cel';
import { closest } from '../policy/suggest.js';

type ParsedExpr = ReturnType<typeof parse>;
type Expr = ParsedExpr['expr'];
type Scalar = 'bool' | 'string' | 'int' | 'uint' | 'double' | 'bytes' | 'null' | 'timestamp' | 'duration' | 'list' | 'map' | 'type' | 'dyn';
type Ty = Scalar | 'principal' | 'request';

/** The declared variables and their fields: what a condition may read. */
const FIELDS: Readonly<Record<'principal' | 'request', Readonly<Record<string, Scalar>>>> = {
  principal: { subject: 'string', tenant: 'string', roles: 'list', claims: 'map' },
  request: { method: 'string', path: 'string', params: 'map', headers: 'map' },
};
const ROOTS: Readonly<Record<string, Ty>> = { principal: 'principal', request: 'request', time: 'timestamp' };

const BOOL_RESULT = new Set(['_==_', '_!=_', '_<_', '_<=_', '_>_', '_>=_', '@in', '!_', '_&&_', '_||_', '@not_strictly_false', 'contains', 'startsWith', 'endsWith', 'matches']);
const INT_RESULT = new Set([
  'size',
  'getSeconds',
  'getMinutes',
  'getHours',
  'getMilliseconds',
  'getFullYear',
  'getMonth',
  'getDate',
  'getDayOfMonth',
  'getDayOfWeek',
  'getDayOfYear',
  'indexOf',
  'lastIndexOf',
]);
const STRING_RESULT = new Set(['charAt', 'lowerAscii', 'upperAscii', 'replace', 'substring', 'trim', 'join', 'format', 'strings.quote']);
const CONVERSIONS = new Set<Scalar>(['int', 'uint', 'double', 'bool', 'bytes', 'string', 'timestamp', 'duration', 'type', 'dyn']);
/** Operators the evaluator implements itself rather than as registered functions. */
const BUILT_IN = new Set(['_&&_', '_||_', '_?_:_', '_[_]', '@not_strictly_false', '!_']);
const NUMERIC = new Set<Ty>(['int', 'uint', 'double']);

export interface CheckProblem {
  readonly message: string;
  /** 0-based character offset in the expression, when known. */
  readonly offset: number | undefined;
}

class Problem extends Error {
  readonly offset: number | undefined;
  constructor(message: string, offset: number | undefined) {
    super(message);
    this.offset = offset;
  }
}

/**
 * Checks `parsed` and returns the first problem, or undefined. `hidden` are the header names (lower
 * case) a condition may not read; `principal` is false on a public route, which has none.
 */
export function checkCondition(parsed: ParsedExpr, env: CelEnv, hidden: ReadonlySet<string>, principal: boolean): CheckProblem | undefined {
  const positions = parsed.sourceInfo?.positions ?? {};
  const at = (e: Expr): number | undefined => positions[Number(e.id)];
  const fail = (e: Expr, message: string): never => {
    throw new Problem(message, at(e));
  };
  const known = (fn: string): boolean => BUILT_IN.has(fn) || env.funcs.find(fn) !== undefined;

  const isHeaders = (e: Expr | undefined): boolean =>
    e?.exprKind.case === 'selectExpr' && e.exprKind.value.field === 'headers' && e.exprKind.value.operand?.exprKind.case === 'identExpr' && e.exprKind.value.operand.exprKind.value.name === 'request';
  const checkHeaderName = (e: Expr, name: string): void => {
    // Header names are looked up in lower case: "X-Env" would never be found and always deny.
    if (name !== name.toLowerCase()) fail(e, `request.headers["${name}"]: header names are lower case here, write "${name.toLowerCase()}"`);
    if (hidden.has(name.toLowerCase())) fail(e, `request.headers["${name}"]: credential and identity headers are not visible to conditions`);
  };

  const infer = (e: Expr | undefined, scope: ReadonlySet<string>): Ty => {
    if (e === undefined) return 'dyn';
    const k = e.exprKind;
    switch (k.case) {
      case 'constExpr':
        switch (k.value.constantKind.case) {
          case 'boolValue':
            return 'bool';
          case 'stringValue':
            return 'string';
          case 'int64Value':
            return 'int';
          case 'uint64Value':
            return 'uint';
          case 'doubleValue':
            return 'double';
          case 'bytesValue':
            return 'bytes';
          case 'nullValue':
            return 'null';
          default:
            return 'dyn';
        }
      case 'identExpr': {
        const name = k.value.name;
        if (scope.has(name)) return 'dyn';
        const root = ROOTS[name];
        if (root === undefined) {
          const hint = closest(name, Object.keys(ROOTS));
          return fail(e, `undeclared reference to "${name}"${hint === undefined ? '' : ` (did you mean "${hint}"?)`}; a condition reads principal, request and time`);
        }
        if (root === 'principal' && !principal) return fail(e, 'a public route authenticates nobody: its condition cannot read principal');
        return root;
      }
      case 'selectExpr': {
        const operand = infer(k.value.operand, scope);
        const field = k.value.field;
        if (operand === 'principal' || operand === 'request') {
          const fields = FIELDS[operand];
          const t = fields[field];
          if (t === undefined) {
            const hint = closest(field, Object.keys(fields));
            return fail(e, `${operand} has no field "${field}"${hint === undefined ? '' : ` (did you mean "${hint}"?)`}; it has ${Object.keys(fields).join(', ')}`);
          }
          return k.value.testOnly ? 'bool' : t;
        }
        if (isHeaders(k.value.operand)) checkHeaderName(e, field);
        if (operand === 'map' || operand === 'dyn') return k.value.testOnly ? 'bool' : 'dyn';
        return fail(e, `cannot read field "${field}" of a ${operand}`);
      }
      case 'callExpr': {
        const fn = k.value.function;
        if (!known(fn)) {
          const hint = closest(
            fn,
            [...env.funcs].map((f) => f.name),
          );
          return fail(e, `unknown function "${fn}"${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`);
        }
        const target = k.value.target === undefined ? undefined : infer(k.value.target, scope);
        const args = k.value.args.map((a) => infer(a, scope));
        if (fn === '_[_]' && isHeaders(k.value.args[0])) {
          const key = k.value.args[1]?.exprKind;
          if (key?.case === 'constExpr' && key.value.constantKind.case === 'stringValue') checkHeaderName(e, key.value.constantKind.value);
        }
        if (fn === '_&&_' || fn === '_||_' || fn === '!_') {
          args.forEach((t, i) => {
            if (t !== 'bool' && t !== 'dyn') fail(k.value.args[i]!, `the operands of ${fn.replaceAll('_', '')} must be bool, not ${t}`);
          });
        }
        if ((fn === '_==_' || fn === '_!=_') && !comparable(args[0]!, args[1]!)) return fail(e, `compares ${an(args[0]!)} with ${an(args[1]!)}: never equal`);
        if (fn === '_?_:_') return args[1] === args[2] ? args[1]! : 'dyn';
        if (fn === '_[_]') return args[0] === 'principal' || args[0] === 'request' ? fail(e, `index ${args[0]} by its fields (${args[0]}.name)`) : 'dyn';
        if (BOOL_RESULT.has(fn)) return 'bool';
        if (INT_RESULT.has(fn)) return 'int';
        if (STRING_RESULT.has(fn)) return 'string';
        if (fn === 'split') return 'list';
        if (target === undefined && CONVERSIONS.has(fn as Scalar)) return fn as Scalar;
        if (['_+_', '_-_', '_*_', '_/_', '_%_'].includes(fn) && args[0] === args[1] && args[0] !== 'dyn') return args[0]!;
        return 'dyn';
      }
      case 'listExpr':
        for (const el of k.value.elements) infer(el, scope);
        return 'list';
      case 'structExpr':
        if (k.value.messageName !== '') return fail(e, `message types such as ${k.value.messageName} are not available in conditions`);
        for (const entry of k.value.entries) {
          if (entry.keyKind.case === 'mapKey') infer(entry.keyKind.value, scope);
          infer(entry.value, scope);
        }
        return 'map';
      case 'comprehensionExpr': {
        const c = k.value;
        infer(c.iterRange, scope);
        const inner = new Set(scope);
        inner.add(c.iterVar);
        if (c.iterVar2 !== '') inner.add(c.iterVar2);
        infer(c.accuInit, scope);
        inner.add(c.accuVar);
        infer(c.loopCondition, inner);
        infer(c.loopStep, inner);
        const resultScope = new Set(scope);
        resultScope.add(c.accuVar);
        return infer(c.result, resultScope);
      }
      default:
        return fail(e, 'this kind of expression is not supported in conditions');
    }
  };

  try {
    const t = infer(parsed.expr, new Set());
    if (t !== 'bool' && t !== 'dyn') return { message: `a condition must be true or false, this one is ${an(t === 'principal' || t === 'request' ? 'map' : t)}`, offset: undefined };
    return undefined;
  } catch (err) {
    if (err instanceof Problem) return { message: err.message, offset: err.offset };
    throw err;
  }
}

const an = (t: string): string => `${/^[aeiou]/.test(t) ? 'an' : 'a'} ${t}`;

/** Whether `==` between the two can ever be true (CEL equality across unrelated types is false). */
function comparable(a: Ty, b: Ty): boolean {
  if (a === 'dyn' || b === 'dyn' || a === b) return true;
  if (NUMERIC.has(a) && NUMERIC.has(b)) return true;
  if (a === 'null' || b === 'null') return true;
  const mapLike = (t: Ty) => t === 'map' || t === 'principal' || t === 'request';
  return mapLike(a) && mapLike(b);
}
