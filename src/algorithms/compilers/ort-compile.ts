/**
 * ortCompile: our fusions where ONNX Runtime's own optimizer does not reach (attention to
 * MultiHeadAttention, RMSNorm written as Mul(x, x), GELU's tanh form, Flux's rotary embedding, adaLN modulation), restricted to what the
 * target provider runs, then ONNX Runtime's optimizer at its highest level when the session is
 * created; and the sessions' tuning: static shapes (static-shapes.ts), threads, spinning.
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
import { inferDtypes } from '../../ir/type-inference.js';
import { profileRuns, type ProfileName } from '../../runtime/profiles.js';
import { defineAlgorithm, supported, type SessionTuning } from '../algorithm.js';
import { attentionFusion } from '../../runtime/attention.js';
import { fastGeluFusion } from './fusions/fast-gelu.js';
import { rmsNormFusion } from './fusions/rms-norm.js';
import { rotaryEmbeddingFusion } from './fusions/rotary-embedding.js';
import { modulatedLayerNormFusion } from './fusions/modulated-layer-norm.js';
import { LAYER_NORM_BROADCAST_AFFINE } from '../../runtime/profiles.js';

/** Each fusion with the op it emits, so a profile can refuse it. */
export const FUSIONS: readonly { rule: Rule<any>; emits: string }[] = [
  { rule: attentionFusion, emits: 'com.microsoft.MultiHeadAttention' },
  { rule: rmsNormFusion, emits: 'SimplifiedLayerNormalization' },
  { rule: fastGeluFusion, emits: 'com.microsoft.FastGelu' },
  { rule: rotaryEmbeddingFusion, emits: 'com.microsoft.RotaryEmbedding' },
  { rule: modulatedLayerNormFusion, emits: LAYER_NORM_BROADCAST_AFFINE },
];

function rulesFor(profile: ProfileName): Rule<any>[] {
  return FUSIONS.filter((f) => profileRuns(profile, f.emits)).map((f) => f.rule);
}

/** Applies the fusions the profile can run; returns how often each fired. */
export function fuse(model: Model, profile: ProfileName): Map<string, number> {
  // the ranks and shapes the rules read, where the builder or the file left none (a quantizer's
  // contrib ops, a cacher's If outputs): once, before any rule matches
  inferDtypes(model.graph);
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

/** The session settings ortCompile's hyperparameters give every component (static shapes apart). */
function tuning(p: { intraOpThreads?: number; interOpThreads?: number; executionMode: 'sequential' | 'parallel'; intraOpSpinning?: boolean; interOpSpinning?: boolean; denormalAsZero: boolean }): SessionTuning {
  const entries: Record<string, string> = {};
  if (p.intraOpSpinning !== undefined) entries['session.intra_op.allow_spinning'] = p.intraOpSpinning ? '1' : '0';
  if (p.interOpSpinning !== undefined) entries['session.inter_op.allow_spinning'] = p.interOpSpinning ? '1' : '0';
  if (p.denormalAsZero) entries['session.set_denormal_as_zero'] = '1';
  return {
    ...(p.intraOpThreads !== undefined ? { threads: p.intraOpThreads } : {}),
    ...(p.interOpThreads !== undefined ? { interOpThreads: p.interOpThreads } : {}),
    ...(p.executionMode !== 'sequential' ? { executionMode: p.executionMode } : {}),
    ...(Object.keys(entries).length ? { configEntries: entries } : {}),
  };
}

export const ortCompile = defineAlgorithm({
  name: 'ortCompile',
  kind: 'compiler',
  description: 'fuses attention, RMSNorm, tanh-GELU, Flux’s rotary embedding and adaLN modulation into ONNX Runtime kernels, runs ORT’s optimizer at its highest level, and tunes the sessions (static shapes, threads)',
  schema: z.object({
    fusions: z.boolean().default(true).describe('apply our fusions before ONNX Runtime’s optimizer'),
    staticShapes: z.boolean().default(false).describe('fix the graphs’ symbolic dims to the sizes of a generate() at width × height; another size re-creates the session once. Off: on CPU it measured 0–5% slower (ORT then rewrites MatMul + Add into Reshape, Gemm, Reshape)'),
    width: z.number().int().positive().optional().describe('the image width static shapes are for (default: the pipeline’s)'),
    height: z.number().int().positive().optional().describe('the image height static shapes are for (default: the pipeline’s)'),
    maxSequenceLength: z.number().int().positive().optional().describe('the T5 tokens static shapes are for (Flux, SD3; default: the pipeline’s)'),
    intraOpThreads: z.number().int().min(1).max(1024).optional().describe('threads per operator (default: onnxruntime’s, one per physical core)'),
    interOpThreads: z.number().int().min(1).max(1024).optional().describe('threads running independent operators at once (parallel execution mode only)'),
    executionMode: z.enum(['sequential', 'parallel']).default('sequential').describe('run one operator at a time, or independent ones in parallel'),
    intraOpSpinning: z.boolean().optional().describe('intra-op threads spin while waiting for work (onnxruntime’s default: on)'),
    interOpSpinning: z.boolean().optional().describe('inter-op threads spin while waiting for work (onnxruntime’s default: on)'),
    denormalAsZero: z.boolean().default(false).describe('flush float32 denormals to zero (session.set_denormal_as_zero)'),
  }),
  supports: () => supported,
  apply(p, target) {
    const shapes = p.staticShapes ? target.shapes?.({ width: p.width, height: p.height, maxSequenceLength: p.maxSequenceLength }) : undefined;
    const common = tuning(p);
    return {
      transform(_component, model) {
        if (p.fusions) fuse(model, target.provider ?? 'cpu');
        return model;
      },
      sessionOptions: (component) => ({ ...common, ...(shapes?.[component] ? { staticShapes: shapes[component] } : {}) }),
      writeGraph: writeOptimized,
      touches: (_component, model) => {
        if (!p.fusions) return [];
        const rules = rulesFor(target.provider ?? 'cpu');
        inferDtypes(model.graph);
        return [...new Set(model.graph.nodeList().filter((n) => rules.some((r) => !(tryRule(r, n) instanceof NoMatch))).map(modulePath))];
      },
    };
  },
});
