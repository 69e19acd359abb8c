import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { CompatibilityError, ConfigError } from '../../src/errors.js';
import { defineAlgorithm, supported, unsupported, type Algorithm } from '../../src/algorithms/algorithm.js';
import { ALGORITHMS, makeRegistry } from '../../src/algorithms/registry.js';
import { SmashConfig } from '../../src/smash/config.js';
import { tempDir } from '../helpers.js';

const noop = { apply: () => ({}) };
/** A registry of test algorithms standing in for the real ones, so the rules are tested in isolation. */
const cacheA = defineAlgorithm({ name: 'cacheA', kind: 'cacher', description: 'a', schema: z.object({ interval: z.number().int().min(1).max(5).default(2), startStep: z.number().int().min(0).default(2) }), supports: (t) => (t.denoiser === 'unet' ? unsupported('needs a transformer') : supported), ...noop });
const cacheB = defineAlgorithm({ name: 'cacheB', kind: 'cacher', description: 'b', schema: z.object({}), supports: () => supported, ...noop });
const quantA = defineAlgorithm({ name: 'quantA', kind: 'quantizer', description: 'q', schema: z.object({ mode: z.enum(['x', 'y']).default('x'), exclude: z.array(z.string()).optional() }), supports: () => supported, ...noop });
const quantB = defineAlgorithm({ name: 'quantB', kind: 'quantizer', description: 'q2', schema: z.object({}), supports: () => supported, ...noop });
const comp = defineAlgorithm({ name: 'comp', kind: 'compiler', description: 'c', schema: z.object({}), supports: () => supported, incompatibleWith: { cacheB: 'cacheB needs the graph unfused' }, ...noop });
const fact = defineAlgorithm({ name: 'fact', kind: 'factorizer', description: 'f', schema: z.object({}), supports: () => supported, ...noop });
const late = defineAlgorithm({ name: 'late', kind: 'factorizer', description: 'l', schema: z.object({}), supports: () => supported, runsAfter: ['quantA'], ...noop });
const R = makeRegistry([cacheA, cacheB, quantA, quantB, comp, fact, late] as Algorithm[]);

function throwsWith<E extends Error>(fn: () => unknown, type: new (...a: never[]) => E, code: string, ...mentions: string[]) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof type, `expected ${type.name}, got ${String(e)}`);
    assert.equal((e as unknown as { code: string }).code, code, (e as Error).message);
    for (const m of mentions) assert.ok((e as Error).message.includes(m), `'${m}' in: ${(e as Error).message}`);
    return true;
  });
}

test('defaults fill in; snake_case keys and names are accepted; order follows kinds', () => {
  const c = new SmashConfig({ comp: {}, cache_a: { start_step: 3 }, quantA: {}, fact: {} }, R);
  assert.deepEqual(c.steps.map((s) => s.algorithm.name), ['fact', 'quantA', 'cacheA', 'comp']);
  assert.deepEqual(c.toJSON().cacheA, { interval: 2, startStep: 3 });
  assert.deepEqual(c.toJSON().quantA, { mode: 'x' });
});

test('declared constraints order within a kind order: runsAfter can move a factorizer after a quantizer', () => {
  const c = new SmashConfig({ late: {}, quantA: {}, fact: {} }, R);
  assert.deepEqual(c.steps.map((s) => s.algorithm.name), ['fact', 'quantA', 'late']);
});

test('invalid configs name the key and the allowed values or range', () => {
  throwsWith(() => new SmashConfig({ foo: {} }, R), ConfigError, 'UNKNOWN_ALGORITHM', "'foo'", 'cacheA', 'quantA');
  throwsWith(() => new SmashConfig({ cacheA: { interval: 9 } }, R), ConfigError, 'BAD_HYPERPARAMETER', 'cacheA.interval', '<= 5', '9');
  throwsWith(() => new SmashConfig({ cacheA: { interval: 0 } }, R), ConfigError, 'BAD_HYPERPARAMETER', 'cacheA.interval', '>= 1');
  throwsWith(() => new SmashConfig({ cacheA: { intervall: 2 } }, R), ConfigError, 'BAD_HYPERPARAMETER', "'intervall'", 'interval, startStep');
  throwsWith(() => new SmashConfig({ quantA: { mode: 'z' } }, R), ConfigError, 'BAD_HYPERPARAMETER', 'quantA.mode', '"x", "y"');
  throwsWith(() => new SmashConfig({ cacheA: { interval: 'two' } }, R), ConfigError, 'BAD_HYPERPARAMETER', 'must be number');
  throwsWith(() => new SmashConfig({ cacheA: 3 }, R), ConfigError, 'BAD_HYPERPARAMETERS', 'cacheA');
});

test('two of a kind that cannot stack, or a declared incompatible pair, fail with CompatibilityError saying why', () => {
  throwsWith(() => new SmashConfig({ quantA: {}, quantB: {} }, R), CompatibilityError, 'INCOMPATIBLE', 'quantA and quantB', 'quantizer');
  throwsWith(() => new SmashConfig({ cacheA: {}, cacheB: {} }, R), CompatibilityError, 'INCOMPATIBLE', 'cacher');
  throwsWith(() => new SmashConfig({ cacheB: {}, comp: {} }, R), CompatibilityError, 'INCOMPATIBLE', 'comp cannot be combined with cacheB', 'unfused');
});

test('an algorithm that does not support the pipeline fails before any work', () => {
  const c = new SmashConfig({ cacheA: {} }, R);
  throwsWith(() => c.checkSupports({ className: 'StableDiffusionPipeline', denoiser: 'unet', components: ['unet'] }), CompatibilityError, 'UNSUPPORTED', 'cacheA', 'StableDiffusionPipeline', 'needs a transformer');
  c.checkSupports({ className: 'FluxPipeline', denoiser: 'flux', components: ['transformer'] });
});

test('from a JSON file and from CLI flags', () => {
  const dir = tempDir('smash-config-');
  const file = join(dir, 'smash.json');
  writeFileSync(file, JSON.stringify({ cache_a: { interval: 3, start_step: 1 }, quant_a: { exclude: ['*norm*'] } }));
  assert.deepEqual(SmashConfig.fromFile(file, R).toJSON(), { quantA: { mode: 'x', exclude: ['*norm*'] }, cacheA: { interval: 3, startStep: 1 } });
  assert.deepEqual(SmashConfig.fromFlags(['cacheA.interval=4', 'quantA.exclude=*norm*,proj_out', 'comp'], R).toJSON(), {
    quantA: { mode: 'x', exclude: ['*norm*', 'proj_out'] }, cacheA: { interval: 4, startStep: 2 }, comp: {},
  });
  throwsWith(() => SmashConfig.fromFlags(['cacheA.interval'], R), ConfigError, 'SMASH_FLAG');
  // flags over a file: a flag's key wins, the file's other keys stay, snake_case or not
  assert.deepEqual(SmashConfig.fromCli(file, ['cache_a.interval=5', 'comp'], R).toJSON(), {
    quantA: { mode: 'x', exclude: ['*norm*'] }, cacheA: { interval: 5, startStep: 1 }, comp: {},
  });
  writeFileSync(file, JSON.stringify({ cache_a: 3 }));
  throwsWith(() => SmashConfig.fromCli(file, ['cacheA.interval=5'], R), ConfigError, 'BAD_HYPERPARAMETERS');
  writeFileSync(file, JSON.stringify({ cache_a: { interval: 3, start_step: 1 }, quant_a: { exclude: ['*norm*'] } }));
  writeFileSync(file, '[1]');
  assert.throws(() => SmashConfig.fromFile(file, R), /not a JSON object/);
});

test('the real registry: every algorithm has a kind, a description and a schema whose defaults parse', () => {
  assert.ok(ALGORITHMS.size >= 2);
  for (const a of ALGORITHMS.values()) {
    assert.ok(a.description.length > 10, a.name);
    assert.doesNotThrow(() => new SmashConfig({ [a.name]: {} }));
  }
  assert.throws(() => makeRegistry([qa(), qa()]), /registered twice/);
});
function qa() {
  return quantA as unknown as Algorithm;
}
