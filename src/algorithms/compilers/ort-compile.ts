/**
 * ortCompile: our fusions where ONNX Runtime's own optimizer does not reach (attention to
 * MultiHeadAttention, RMSNorm written as Mul(x, x), GELU's tanh form), restricted to what the
 * target provider runs, then ONNX Runtime's optimizer at its highest level when the session is
 * created.
 */
import { z } from 'zod';
import { mkdtempSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Model } from '../../ir/graph.js';
import { saveModel } from '../../ir/model-file.js';
import { Session } from '../../runtime/session.js';
import { modulePath } from '../../ir/modules.js';
import { NoMatch, rulesPass, tryRule, type Rule } from '../../ir/rewrite.js';
import { deadCodeElimination } from '../../ir/passes/dead-code-elimination.js';
import { profileRuns, type ProfileName } from '../../runtime/profiles.js';
import { defineAlgorithm, supported } from '../algorithm.js';
import { attentionFusion } from '../../runtime/attention.js';
import { fastGeluFusion } from './fusions/fast-gelu.js';
import { rmsNormFusion } from './fusions/rms-norm.js';

/** Each fusion with the op it emits, so a profile can refuse it. */
export const FUSIONS: readonly { rule: Rule<any>; emits: string }[] = [
  { rule: attentionFusion, emits: 'com.microsoft.MultiHeadAttention' },
  { rule: rmsNormFusion, emits: 'SimplifiedLayerNormalization' },
  { rule: fastGeluFusion, emits: 'com.microsoft.FastGelu' },
];

function rulesFor(profile: ProfileName): Rule<any>[] {
  return FUSIONS.filter((f) => profileRuns(profile, f.emits)).map((f) => f.rule);
}

/** Applies the fusions the profile can run; returns how often each fired. */
export function fuse(model: Model, profile: ProfileName): Map<string, number> {
  const pass = rulesPass('ort-compile-fusions', rulesFor(profile));
  pass.run(model);
  if (pass.fired.size) {
    deadCodeElimination.run(model);
    model.opsetImports.set('com.microsoft', 1);
  }
  return pass.fired;
}

/**
 * Writes ONNX Runtime's optimized graph (the extended level: fusions, constant folding, not the
 * machine-specific layouts of the highest level) into a bundle, so a bundle's load does not redo
 * them; running it at the highest level gives the unoptimized graph's outputs bit for bit.
 */
async function writeOptimized(model: Model, file: string): Promise<void> {
  // onnxruntime 1.30 writes the weights of If branches twice into an optimized model (then
  // refuses to load it: "initializer name is not unique"): a graph with branches (a cacher's) is
  // saved as it is, and onnxruntime optimizes it when it loads
  if (model.graph.nodeList().some((n) => n.subgraphs().length)) {
    saveModel(model, file);
    return;
  }
  const staging = mkdtempSync(join(dirname(file), '.ort-'));
  try {
    saveModel(model, join(staging, 'model.onnx'));
    const s = await Session.create(join(staging, 'model.onnx'), {
      optimizationLevel: 'extended',
      optimizedModelPath: file,
      configEntries: {
        'session.optimized_model_external_initializers_file_name': `${basename(file)}_data`,
        'session.optimized_model_external_initializers_min_size_in_bytes': '1024',
      },
    });
    await s.release();
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

export const ortCompile = defineAlgorithm({
  name: 'ortCompile',
  kind: 'compiler',
  description: 'fuses attention, RMSNorm and tanh-GELU into ONNX Runtime kernels, then runs ORT’s optimizer at its highest level',
  schema: z.object({
    fusions: z.boolean().default(true).describe('apply our fusions before ONNX Runtime’s optimizer'),
  }),
  supports: () => supported,
  apply(p, target) {
    return {
      transform(_component, model) {
        if (p.fusions) fuse(model, target.provider ?? 'cpu');
        return model;
      },
      writeGraph: writeOptimized,
      touches: (_component, model) => {
        if (!p.fusions) return [];
        const rules = rulesFor(target.provider ?? 'cpu');
        return [...new Set(model.graph.nodeList().filter((n) => rules.some((r) => !(tryRule(r, n) instanceof NoMatch))).map(modulePath))];
      },
    };
  },
});
