// `npm run demo`: text-to-image with the two small trained pipelines (test/fixtures/trained),
// through the built library in dist/ (npm ci / npm run build make it). Writes PNGs to out/demo/.
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const lib = join(root, 'dist', 'pipelines', 'index.js');
if (!existsSync(lib)) {
  console.error(`demo: ${relative(process.cwd(), lib)} is missing; build first (npm run build)`);
  process.exit(1);
}
const { loadPipeline, writePng } = await import(lib);

const outDir = join(root, 'out', 'demo');
mkdirSync(outDir, { recursive: true });

// Prompts in the training captions' grammar:
//   a {small|large} {colour} {circle|square|triangle} at the {left|right|top|bottom|center} on a {colour} background
const runs = [
  {
    name: 'shapes-sd',
    options: { steps: 25, guidanceScale: 7.5 },
    prompts: [
      'a large red circle at the center on a blue background',
      'a small yellow square at the left on a black background',
      'a large green triangle at the top on a white background',
      'a large purple circle at the right on a gray background',
    ],
  },
  {
    name: 'shapes-flux',
    options: { steps: 28, maxSequenceLength: 32 },
    prompts: [
      'a large red circle at the center on a black background',
      'a small white square at the right on a green background',
      'a large orange triangle at the bottom on a blue background',
      'a large blue circle at the left on a white background',
    ],
  },
];

/** Nearest-neighbour upscale of a list of [1,3,h,w] images into one row, for viewing. */
function sheet(images, scale) {
  const [, , h, w] = images[0].dims;
  const W = w * scale * images.length;
  const H = h * scale;
  const data = new Float32Array(3 * H * W);
  images.forEach((img, k) => {
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < H; y++)
        for (let x = 0; x < w * scale; x++) {
          data[(c * H + y) * W + k * w * scale + x] = img.data[(c * h + Math.floor(y / scale)) * w + Math.floor(x / scale)];
        }
  });
  return { dims: [1, 3, H, W], data };
}

const t0 = performance.now();
for (const run of runs) {
  const folder = join(root, 'test', 'fixtures', 'trained', run.name);
  const tl = performance.now();
  const pipe = await loadPipeline(folder, { onWarning: (m) => console.warn(`warning: ${m}`) });
  console.log(`${run.name}: ${pipe.className} loaded in ${((performance.now() - tl) / 1000).toFixed(2)} s (${pipe.source.cacheKey ? `ONNX cache ${pipe.source.onnxDir}` : pipe.source.onnxDir})`);
  const images = [];
  for (const [i, prompt] of run.prompts.entries()) {
    const r = await pipe.generate({ prompt, width: 32, height: 32, seed: 1000 + i, ...run.options });
    const file = join(outDir, `${run.name}-${i}.png`);
    writePng(file, r.images, 0);
    images.push(r.images);
    const steps = r.timings.stepsMs.length;
    const perStep = r.timings.denoiseMs / steps;
    console.log(`  ${relative(process.cwd(), file)}  "${prompt}"  ${steps} steps, ${perStep.toFixed(1)} ms/step, total ${r.timings.totalMs.toFixed(0)} ms`);
  }
  const sheetFile = join(outDir, `${run.name}-sheet.png`);
  writePng(sheetFile, sheet(images, 8), 0);
  console.log(`  ${relative(process.cwd(), sheetFile)}  (the four images above, 8× enlarged)`);
  await pipe.release();
}
console.log(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s; pictures in ${relative(process.cwd(), outDir) || '.'}/`);
