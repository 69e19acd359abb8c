import type { Model, Node } from './graph.js';
import type { Pass } from './passes/pass.js';

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

/** A pass applying rules over the main graph until none fires (bounded). Counts firings per rule. */
export function rulesPass(name: string, rules: readonly Rule<any>[], maxRounds = 8): Pass & { fired: Map<string, number> } {
  const fired = new Map<string, number>();
  return {
    name,
    fired,
    run(model: Model) {
      let changed = false;
      for (let round = 0; round < maxRounds; round++) {
        let any = false;
        for (const node of model.graph.nodes()) {
          if (!node.graph) continue; // removed by an earlier rewrite this round
          for (const rule of rules) {
            const m = tryRule(rule, node);
            if (m instanceof NoMatch) continue;
            rule.rewrite(m, node);
            fired.set(rule.name, (fired.get(rule.name) ?? 0) + 1);
            any = true;
            break;
          }
        }
        if (!any) break;
        changed = true;
      }
      return { model, changed };
    },
  };
}
