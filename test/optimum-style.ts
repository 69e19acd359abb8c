import { Node, Value, type Model } from '../src/ir/graph.js';
import { onnxDataType, type DType } from '../src/core/dtype.js';
import { tensor } from '../src/core/tensor.js';

/**
 * Rewrites graph inputs the way Optimum's exports declare them (other dtypes, a batch axis on
 * img_ids): the new input feeds the old one through a Cast or Squeeze inside the graph.
 */
export function optimumStyle(model: Model, changes: Record<string, { dtype: DType; batchAxis?: boolean }>): Model {
  const g = model.graph;
  g.inputs.forEach((old, i) => {
    const c = changes[old.name];
    if (!c) return;
    const outer = new Value(old.name, c.dtype, c.batchAxis ? [1, ...(old.shape ?? [])] : old.shape);
    old.name = `${old.name}_internal`;
    g.inputs[i] = outer;
    const n = c.batchAxis ? new Node('Squeeze', `/optimum/${outer.name}/Squeeze`) : new Node('Cast', `/optimum/${outer.name}/Cast`);
    n.inputs.push(outer);
    if (c.batchAxis) {
      const axes = new Value(`${outer.name}_axes`);
      const k = new Node('Constant', `/optimum/${outer.name}/axes`);
      k.attributes.set('value', { type: 'tensor', value: tensor.i64([1], [0]) });
      k.outputs.push(axes);
      g.insert(k, g.nodeList()[0]);
      n.inputs.push(axes);
    } else n.attributes.set('to', { type: 'int', value: onnxDataType(old.dtype!) });
    n.outputs.push(old);
    old.producer = undefined;
    g.insert(n, g.nodeList()[0]);
  });
  return model;
}

