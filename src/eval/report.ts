/**
 * The results of an evaluation as JSON, and as one self-contained HTML page (no network: the
 * script is inline, pictures are PNG data URIs, the plot is inline SVG): a table of the metrics,
 * base and smashed pictures side by side, and speed against fidelity across the configurations
 * with the Pareto front marked.
 */
import type { EvaluationResult } from './agent.js';
import { paretoFront } from './pareto.js';
import { ALL_METRICS, HIGHER_IS_BETTER, type MetricName, type Task } from './task.js';

export interface ReportInput {
  model: string;
  task: Task;
  /** the base first, then one per configuration */
  results: readonly EvaluationResult[];
  /** each smashed result's SmashConfig, by name */
  configs?: Record<string, unknown>;
  createdAt?: string;
}

/** JSON can hold no Infinity: identical pictures (PSNR ∞) are written as the string "Infinity". */
function jsonNumber(v: number): number | string {
  return Number.isFinite(v) ? v : String(v);
}

export function reportJson(r: ReportInput): Record<string, unknown> {
  return {
    model: r.model,
    createdAt: r.createdAt ?? new Date().toISOString(),
    task: { prompts: r.task.prompts, seeds: r.task.seeds, metrics: r.task.metrics, generation: r.task.generation, warmup: r.task.warmup },
    results: r.results.map((res) => ({
      name: res.name,
      base: res.isBase,
      config: r.configs?.[res.name] ?? null,
      metrics: Object.fromEntries(Object.entries(res.metrics).map(([k, v]) => [k, jsonNumber(v)])),
      samples: res.samples.map(({ png: _png, ...s }) => Object.fromEntries(Object.entries(s).map(([k, v]) => [k, typeof v === 'number' ? jsonNumber(v) : v]))),
    })),
  };
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const LABELS: Record<MetricName, string> = {
  latencyMs: 'latency / image (ms, median)', stepMs: 'time / step (ms, median)', throughputImagesPerS: 'throughput (images/s)',
  coldLoadMs: 'cold load (ms)', smashMs: 'smash cost (ms)', peakRssMiB: 'peak RSS (MiB)', modelBytes: 'on disk (MB)',
  psnrDb: 'PSNR (dB)', ssim: 'SSIM', latentRelL2: 'latent rel. L2', clipScore: 'CLIP score', cmmd: 'CMMD', lpips: 'LPIPS',
};

function fmt(m: MetricName, v: number | undefined): string {
  if (v === undefined) return '—';
  if (v === Infinity) return '∞ (identical)';
  if (m === 'modelBytes') return (v / 1e6).toFixed(2);
  if (m === 'ssim' || m === 'latentRelL2' || m === 'lpips') return v.toPrecision(4);
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2);
}

/** The fidelity axis of the plot: the first fidelity metric measured. */
function fidelityMetric(results: readonly EvaluationResult[]): MetricName | undefined {
  return (['psnrDb', 'ssim', 'clipScore', 'lpips', 'cmmd', 'latentRelL2'] as const).find((m) => results.some((r) => !r.isBase && r.metrics[m] !== undefined));
}

/** Inline SVG: latency (x) against fidelity (y) per configuration, the Pareto front joined. */
export function tradeOffSvg(results: readonly EvaluationResult[]): string {
  const W = 560, H = 340, L = 64, R = 20, T = 24, B = 48;
  const fm = fidelityMetric(results);
  const smashed = results.filter((r) => !r.isBase && r.metrics.latencyMs !== undefined);
  const base = results.find((r) => r.isBase);
  if (!fm || !smashed.length) return '<svg xmlns="http://www.w3.org/2000/svg" width="560" height="60"><text x="10" y="30">no fidelity figures to plot</text></svg>';
  const sign = HIGHER_IS_BETTER[fm] ? 1 : -1;
  const raw = smashed.map((r) => r.metrics[fm]!);
  const finite = raw.filter(Number.isFinite);
  const top = finite.length ? Math.max(...finite) : 1;
  // an identical picture (PSNR ∞) is drawn above the highest finite value, labelled
  const capped = raw.map((v) => (Number.isFinite(v) ? v : top + Math.max(1, Math.abs(top) * 0.15)));
  const xs = smashed.map((r) => r.metrics.latencyMs!).concat(base?.metrics.latencyMs !== undefined ? [base.metrics.latencyMs] : []);
  const pad = (lo: number, hi: number) => (hi - lo || Math.abs(hi) || 1) * 0.12;
  const x0 = Math.min(...xs) - pad(Math.min(...xs), Math.max(...xs)), x1 = Math.max(...xs) + pad(Math.min(...xs), Math.max(...xs));
  const y0 = Math.min(...capped) - pad(Math.min(...capped), Math.max(...capped)), y1 = Math.max(...capped) + pad(Math.min(...capped), Math.max(...capped));
  const X = (v: number) => L + ((v - x0) / (x1 - x0)) * (W - L - R);
  const Y = (v: number) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
  const front = paretoFront(smashed.map((r, i) => ({ cost: r.metrics.latencyMs!, quality: sign * capped[i]! })));
  const parts: string[] = [];
  parts.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="#fafafa" stroke="#999"/>`);
  for (let k = 0; k <= 4; k++) {
    const xv = x0 + ((x1 - x0) * k) / 4, yv = y0 + ((y1 - y0) * k) / 4;
    parts.push(`<text x="${X(xv).toFixed(1)}" y="${H - B + 16}" text-anchor="middle" font-size="11">${xv.toPrecision(3)}</text>`);
    parts.push(`<text x="${L - 6}" y="${(Y(yv) + 4).toFixed(1)}" text-anchor="end" font-size="11">${yv.toPrecision(3)}</text>`);
  }
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle" font-size="12">latency per image (ms, lower is faster)</text>`);
  parts.push(`<text x="14" y="${(T + H - B) / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 14 ${(T + H - B) / 2})">${esc(LABELS[fm])} ${HIGHER_IS_BETTER[fm] ? '↑' : '↓'}</text>`);
  if (base?.metrics.latencyMs !== undefined) {
    const bx = X(base.metrics.latencyMs).toFixed(1);
    parts.push(`<line x1="${bx}" y1="${T}" x2="${bx}" y2="${H - B}" stroke="#888" stroke-dasharray="4 3"/><text x="${bx}" y="${T - 6}" text-anchor="middle" font-size="11" fill="#555">base</text>`);
  }
  if (front.length > 1) parts.push(`<polyline class="pareto" fill="none" stroke="#d9480f" stroke-width="2" points="${front.map((i) => `${X(smashed[i]!.metrics.latencyMs!).toFixed(1)},${Y(capped[i]!).toFixed(1)}`).join(' ')}"/>`);
  smashed.forEach((r, i) => {
    const onFront = front.includes(i);
    const cx = X(r.metrics.latencyMs!).toFixed(1), cy = Y(capped[i]!).toFixed(1);
    parts.push(`<circle cx="${cx}" cy="${cy}" r="6" fill="${onFront ? '#d9480f' : '#fff'}" stroke="#d9480f" stroke-width="2"><title>${esc(r.name)}: ${fmt('latencyMs', r.metrics.latencyMs)} ms, ${fmt(fm, raw[i])}</title></circle>`);
    parts.push(`<text x="${cx}" y="${(Number(cy) - 10).toFixed(1)}" text-anchor="middle" font-size="11">${esc(r.name)}${Number.isFinite(raw[i]!) ? '' : ' (∞)'}</text>`);
  });
  parts.push(`<g font-size="11"><circle cx="${W - R - 110}" cy="${H - B - 14}" r="5" fill="#d9480f"/><text x="${W - R - 100}" y="${H - B - 10}">Pareto front</text></g>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" id="tradeoff" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">${parts.join('')}</svg>`;
}

export function reportHtml(r: ReportInput, maxSamples = 8): string {
  const metrics = ALL_METRICS.filter((m) => r.results.some((res) => res.metrics[m] !== undefined));
  const head = `<tr><th>configuration</th>${metrics.map((m) => `<th title="${HIGHER_IS_BETTER[m] ? 'higher' : 'lower'} is better">${esc(LABELS[m])}</th>`).join('')}</tr>`;
  const rows = r.results.map((res) => `<tr><td>${esc(res.name)}${res.isBase && res.name !== 'base' ? ' (base)' : ''}</td>${metrics.map((m) => `<td data-v="${res.metrics[m] ?? ''}">${fmt(m, res.metrics[m])}</td>`).join('')}</tr>`).join('\n');
  const base = r.results[0]!;
  const n = Math.min(maxSamples, base.samples.length);
  const pics: string[] = [];
  for (let i = 0; i < n; i++) {
    const cells = r.results.map((res) => {
      const s = res.samples[i]!;
      const cap = res.isBase ? 'base' : `${esc(res.name)}<br>PSNR ${fmt('psnrDb', s.psnrDb)}${s.ssim !== undefined ? ` · SSIM ${fmt('ssim', s.ssim)}` : ''}`;
      return `<figure><img alt="${esc(res.name)}" src="data:image/png;base64,${s.png.toString('base64')}"><figcaption>${cap}</figcaption></figure>`;
    });
    pics.push(`<div class="sample"><p>${esc(base.samples[i]!.prompt)} <span class="seed">seed ${base.samples[i]!.seed}</span></p><div class="row">${cells.join('')}</div></div>`);
  }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>smash eval — ${esc(r.model)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:12px 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;font-size:13px}
th{background:#f0f0f0;cursor:pointer}td:first-child{text-align:left;font-weight:600}
.row{display:flex;gap:12px;flex-wrap:wrap}figure{margin:0;text-align:center;font-size:12px}
img{width:128px;height:128px;image-rendering:pixelated;border:1px solid #ccc}
.sample p{margin:14px 0 4px;font-size:13px}.seed{color:#888}
</style></head><body>
<h1>smash eval</h1>
<p>model <code>${esc(r.model)}</code> · ${r.task.prompts.length} prompts × ${r.task.seeds.length} seeds · ${r.task.warmup} warm-up run(s) excluded · ${esc(JSON.stringify(r.task.generation))}</p>
<h2>Metrics</h2>
<table id="metrics"><thead>${head}</thead><tbody>
${rows}
</tbody></table>
<h2>Speed against fidelity</h2>
${tradeOffSvg(r.results)}
<h2>Pictures: base and smashed, same prompt, seed and initial latents</h2>
${pics.join('\n')}
<script>
// click a header to sort the configurations by that column
document.querySelectorAll('#metrics th').forEach((th, c) => th.addEventListener('click', () => {
  const body = document.querySelector('#metrics tbody');
  const rows = [...body.rows];
  const key = (r) => c === 0 ? r.cells[0].textContent : parseFloat(r.cells[c].dataset.v);
  rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0));
  rows.forEach((r) => body.appendChild(r));
}));
</script>
</body></html>
`;
}
