import { SmashError } from '../errors.js';
import type { Graph, Model, Node } from './graph.js';
import type { Pass, PassResult } from './passes/pass.js';

/**
 * A declarative rewrite: a pattern anchored at a node of type `anchor`, a `match` that either
 * returns the bound pieces or a reason why the pattern does not apply, and a `rewrite` that
 * changes the graph for a match. Rules are applied by `rulesPass`.
 */
export interface Rule<M = unknown> {
  readonly name: string;
  /** op type of the node the pattern is rooted at (`domain.Op` for non-default domains) */
  readonly anchor: string;
  match(node: Node): M | NoMatch;
  rewrite(match: M, node: Node): void;
}

/** Why a rule did not fire. */
export class NoMatch {
  constructor(readonly reason: string) {}
}

export const noMatch = (reason: string) => new NoMatch(reason);

/** Tries `rule` on `node`: the match, or the reason it does not apply. */
export function tryRule<M>(rule: Rule<M>, node: Node): M | NoMatch {
  if (node.qualifiedType() !== rule.anchor) return new NoMatch(`node is ${node.qualifiedType()}, rule anchors at ${rule.anchor}`);
  return rule.match(node);
}

export interface RulesPassOptions {
  /** rounds over the whole model before giving up (default 8) */
  maxRounds?: number;
  /**
   * What to do when rules still fire in the last round: `'error'` (default) throws a
   * RulesLimitError (a PassError inside runPasses); `'stop'` returns with `limitReached` set.
   */
  onLimit?: 'error' | 'stop';
}

export interface RulesPassResult extends PassResult {
  /** rounds run (the last one fired nothing unless the limit was reached) */
  rounds: number;
  /** rules still fired in the last allowed round: the graph may not be fully rewritten */
  limitReached: boolean;
}

/** A pass made of rules; `fired` counts firings per rule over all runs. */
export interface RulesPass extends Pass {
  readonly fired: Map<string, number>;
  run(model: Model): RulesPassResult;
}

/** Rules kept firing until the round limit: they may undo each other. */
export class RulesLimitError extends SmashError {
  constructor(readonly pass: string, readonly rounds: number, readonly lastFired: string[]) {
    super('RULES_ROUND_LIMIT', `rules pass '${pass}' still rewrote the graph after ${rounds} rounds (last round: ${lastFired.join(', ')}); rules that undo each other, or raise maxRounds`);
  }
}

/**
 * A pass applying rules over the main graph and every subgraph (If/Loop/Scan bodies, at any
 * depth) until a round fires none; counts firings per rule. Nodes a rewrite inserts after the
 * current one are tried in the same round, others in the next.
 */
export function rulesPass(name: string, rules: readonly Rule<any>[], opts: RulesPassOptions | number = {}): RulesPass {
  const { maxRounds = 8, onLimit = 'error' } = typeof opts === 'number' ? { maxRounds: opts } : opts;
  const fired = new Map<string, number>();
  const round = (g: Graph, firedNow: Set<string>) => {
    for (const node of g.nodes()) {
      let rewritten = false;
      for (const rule of rules) {
        const m = tryRule(rule, node);
        if (m instanceof NoMatch) continue;
        rule.rewrite(m, node);
        fired.set(rule.name, (fired.get(rule.name) ?? 0) + 1);
        firedNow.add(rule.name);
        rewritten = true;
        break;
      }
      // a rewrite may have removed the node or replaced its subgraphs: visit what is there now
      if (!rewritten || node.graph) for (const sg of node.subgraphs()) round(sg, firedNow);
    }
  };
  return {
    name,
    fired,
    run(model: Model): RulesPassResult {
      let changed = false;
      for (let r = 1; r <= maxRounds; r++) {
        const firedNow = new Set<string>();
        round(model.graph, firedNow);
        if (!firedNow.size) return { model, changed, rounds: r, limitReached: false };
        changed = true;
        if (r === maxRounds) {
          if (onLimit === 'error') throw new RulesLimitError(name, maxRounds, [...firedNow]);
          return { model, changed, rounds: r, limitReached: true };
        }
      }
      return { model, changed, rounds: 0, limitReached: maxRounds <= 0 };
    },
  };
}
