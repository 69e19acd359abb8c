import type { Node, Value } from '../graph.js';
import { noMatch, type Rule } from '../rewrite.js';

/**
 * Removes an Identity by letting its consumers read its input.
 *
 *     x ─► Identity ─► y ─► consumers      ⇒      x ─► consumers
 *
 * Not when y is a graph output (the output's name must survive).
 */
export const identityElimination: Rule<{ input: Value; output: Value }> = {
  name: 'identity-elimination',
  anchor: 'Identity',
  match(node: Node) {
    const input = node.inputs[0];
    const output = node.outputs[0]!;
    if (!input) return noMatch('Identity has no input');
    if (node.graph!.outputs.includes(output)) return noMatch(`'${output.name}' is a graph output`);
    return { input, output };
  },
  rewrite({ input, output }, node) {
    node.graph!.replaceAllUses(output, input);
    node.graph!.remove(node);
  },
};
