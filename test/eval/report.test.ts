import { test } from 'node:test';
import assert from 'node:assert/strict';
import { paretoFront } from '../../src/eval/pareto.js';
import { reportHtml, reportJson, tradeOffSvg } from '../../src/eval/report.js';
import type { EvaluationResult } from '../../src/eval/agent.js';
import { defineTask } from '../../src/eval/task.js';

test('Pareto front: faster-and-better points survive, dominated ones do not', () => {
  // b is beaten by a (faster, better); d ties c on cost but is worse
  const pts = [{ cost: 10, quality: 30 }, { cost: 12, quality: 25 }, { cost: 20, quality: 40 }, { cost: 20, quality: 35 }, { cost: 5, quality: 10 }];
  assert.deepEqual(paretoFront(pts), [4, 0, 2]);
  assert.deepEqual(paretoFront([{ cost: 1, quality: 1 }, { cost: 1, quality: 1 }]), [0, 1]);
});

const PNG = Buffer.from('89504e470d0a1a0a', 'hex');
const res = (name: string, isBase: boolean, metrics: EvaluationResult['metrics']): EvaluationResult => ({ name, isBase, metrics, samples: [{ prompt: 'a <b>cat</b>', seed: 0, png: PNG, latencyMs: 1, psnrDb: metrics.psnrDb }] });

test('the report is self-contained: inline PNGs, inline SVG with the front, no external URL; JSON keeps ∞ as a string', () => {
  const results = [res('base', true, { latencyMs: 100 }), res('fast', false, { latencyMs: 50, psnrDb: 30 }), res('slow', false, { latencyMs: 90, psnrDb: 20 }), res('exact', false, { latencyMs: 95, psnrDb: Infinity })];
  const task = defineTask({ prompts: ['a <b>cat</b>'] });
  const html = reportHtml({ model: 'm', task, results });
  assert.equal((html.match(/src="data:image\/png;base64,/g) ?? []).length, 4);
  assert.ok(!/(src|href)="(https?:)?\/\//.test(html), 'no network resources');
  assert.ok(html.includes('a &#60;b&#62;cat&#60;/b&#62;'), 'prompts are escaped');
  assert.ok(html.includes('<script>') && html.includes('<svg'));
  const svg = tradeOffSvg(results);
  // the front: fast (50 ms, 30 dB) and exact (95 ms, ∞); slow is dominated by fast
  assert.equal((svg.match(/<circle [^>]*fill="#d9480f"/g) ?? []).length, 2 + 1 /* legend */);
  assert.ok(svg.includes('class="pareto"'));
  const json = reportJson({ model: 'm', task, results }) as { results: { metrics: Record<string, unknown>; samples: Record<string, unknown>[] }[] };
  assert.equal(json.results[3]!.metrics.psnrDb, 'Infinity');
  assert.equal(json.results[1]!.samples[0]!.png, undefined);
  assert.doesNotThrow(() => JSON.parse(JSON.stringify(json)));
});
