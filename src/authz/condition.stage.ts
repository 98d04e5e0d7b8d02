// The condition stage (right after authorize: a condition reads the principal): the route's `when`
// expression, planned at load, evaluated against lazy bindings. Only true lets the request on;
// false, an evaluation error and a non-bool result all deny (fail closed), and each is counted.
import type { Logger } from 'pino';
import type { RequestContext } from '../core/context.js';
import { deny } from '../core/reasons.js';
import { CONTINUE, type Outcome, type Stage } from '../core/stage.js';
import { CellsBy2, conditionsTotal } from '../observability/metrics.js';
import { ConditionBindings, outcomeOf } from './condition.js';

const NOT_MET = deny('CONDITION_FAILED');
// The evaluator's message may quote request or claim values: it goes to the log and the trace, not to the client.
const NOT_DECIDED = deny('CONDITION_FAILED', "The route's condition could not be evaluated to true or false; the request is refused.");

export interface ConditionStageOptions {
  readonly logger?: Pick<Logger, 'warn'> | undefined;
}

class ConditionStage implements Stage {
  readonly name = 'condition';
  readonly #logger: Pick<Logger, 'warn'> | undefined;
  readonly #counters = new CellsBy2((route, result) => conditionsTotal.labels(route, result));

  constructor(options: ConditionStageOptions) {
    this.#logger = options.logger;
  }

  run(ctx: RequestContext): Outcome {
    const route = ctx.route;
    const conditions = ctx.plan.conditions;
    if (route === undefined || conditions === undefined) return CONTINUE;
    const condition = conditions.routes.get(route.index);
    if (condition === undefined) return CONTINUE;
    let value: unknown;
    try {
      value = condition.evaluate(new ConditionBindings(ctx, conditions.hidden));
    } catch (err) {
      value = err instanceof Error ? err : new Error(String(err));
    }
    if (value === true) {
      this.#counters.of(condition.route, 'true').inc();
      if (ctx.trace !== undefined) ctx.note(this.name, `when ${condition.source} → true`);
      return CONTINUE;
    }
    if (value === false) {
      this.#counters.of(condition.route, 'false').inc();
      if (ctx.trace !== undefined) ctx.note(this.name, `when ${condition.source} → false: CONDITION_FAILED`);
      return NOT_MET;
    }
    const why = outcomeOf(value) as string;
    this.#counters.of(condition.route, 'error').inc();
    this.#logger?.warn({ requestId: ctx.requestId, route: condition.route, condition: condition.source, error: why }, 'route condition denied: no bool result');
    if (ctx.trace !== undefined) ctx.note(this.name, `when ${condition.source} → ${why}: CONDITION_FAILED`);
    return NOT_DECIDED;
  }
}

export function createConditionStage(options: ConditionStageOptions = {}): Stage {
  return new ConditionStage(options);
}
