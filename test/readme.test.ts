// Issue 9, cases 11 and 15: every code block of the README runs (or says why it cannot), and the
// pictures the examples promise are the pictures they draw.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { readPng } from '../src/pipelines/image.js';
import { runCli } from './cli/run-cli.js';
import { tempDir } from './pipelines/fixtures.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const tmp = tempDir('readme');
const saved = process.env.SMASH_CACHE;
const cwd = process.cwd();
process.env.SMASH_CACHE = join(tmp.dir, 'cache');
// the examples name paths relative to the repository and write beside them: run them in a
// scratch folder that sees the repository's test/ folder
const work = join(tmp.dir, 'work');
mkdirSync(work);
symlinkSync(join(ROOT, 'test'), join(work, 'test'));
process.chdir(work);
after(() => {
  process.chdir(cwd);
  if (saved === undefined) delete process.env.SMASH_CACHE;
  else process.env.SMASH_CACHE = saved;
  tmp.cleanup();
});

interface Block { lang: string; code: string; line: number; skip?: string }

/** Fenced blocks, with the `<!-- readme-test: skip: reason -->` marker of the line before. */
export function readmeBlocks(text: string): Block[] {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    const marker = /<!-- readme-test: skip: (.+?) -->/.exec(lines[start - 1] ?? '');
    blocks.push({ lang: open[1]!, code: body.join('\n'), line: start + 1, skip: marker?.[1] });
  }
  return blocks;
}

/** Shell words: spaces separate, double quotes group, `\` + newline continues. */
function commands(code: string): string[][] {
  const joined = code.replace(/\\\n\s*/g, ' ');
  return joined.split('\n').map((l) => l.replace(/\s#.*$/, '').trim()).filter((l) => l && !l.startsWith('#')).map((l) => {
    const words: string[] = [];
    for (const m of l.matchAll(/"([^"]*)"|(\S+)/g)) words.push(m[1] ?? m[2]!);
    return words;
  });
}

/** Mean colour of a region of a [1,3,H,W] image in [0,1]. */
function mean(file: string, y0: number, y1: number, x0: number, x1: number): [number, number, number] {
  const { dims, data } = readPng(file);
  const [, , H, W] = dims as number[];
  const out: [number, number, number] = [0, 0, 0];
  for (let c = 0; c < 3; c++) {
    let s = 0;
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) s += data[(c * H! + y) * W! + x]!;
    out[c] = s / ((y1 - y0) * (x1 - x0));
  }
  return out;
}

/** Which hue dominates (the small trained pipelines draw soft colours: compare channels, not levels). */
const isColour = (rgb: number[], want: 'red' | 'green' | 'blue' | 'yellow' | 'black') => {
  const [r, g, b] = rgb as [number, number, number];
  return {
    red: r > g + 0.2 && r > b + 0.3,
    green: g > r + 0.2 && g > b + 0.2,
    blue: b > r + 0.05 && b > g + 0.05,
    yellow: r > b + 0.15 && g > b + 0.15 && Math.abs(r - g) < 0.2,
    black: r < 0.25 && g < 0.25 && b < 0.25,
  }[want];
};

/** What each runnable example promises to draw. */
const PICTURES: Record<string, () => void> = {
  'triangle.png': () => {
    assert.ok(isColour(mean('triangle.png', 26, 32, 0, 32), 'black'), `bottom is the black background: ${mean('triangle.png', 26, 32, 0, 32)}`);
    const top = mean('triangle.png', 0, 16, 0, 32);
    const bottom = mean('triangle.png', 16, 32, 0, 32);
    assert.ok(top[1] > bottom[1] + 0.05 && top[1] > top[0] && top[1] > top[2], `a green shape in the top half: top ${top}, bottom ${bottom}`);
  },
  'triangle-fast.png': () => {
    // the smashed pipeline draws the same picture
    const top = mean('triangle-fast.png', 0, 16, 0, 32);
    const bottom = mean('triangle-fast.png', 16, 32, 0, 32);
    assert.ok(isColour(mean('triangle-fast.png', 26, 32, 0, 32), 'black'), `bottom is the black background: ${bottom}`);
    assert.ok(top[1] > bottom[1] + 0.05 && top[1] > top[0] && top[1] > top[2], `a green shape in the top half: top ${top}, bottom ${bottom}`);
  },
  'square.png': () => {
    assert.ok(isColour(mean('square.png', 14, 18, 14, 18), 'yellow'), `yellow at the center: ${mean('square.png', 14, 18, 14, 18)}`);
    assert.ok(isColour(mean('square.png', 0, 3, 0, 3), 'blue'), `blue background: ${mean('square.png', 0, 3, 0, 3)}`);
  },
  'circle.png': () => {
    assert.ok(isColour(mean('circle.png', 14, 18, 14, 18), 'red'), `red at the center: ${mean('circle.png', 14, 18, 14, 18)}`);
    assert.ok(isColour(mean('circle.png', 0, 3, 0, 3), 'blue'), `blue background: ${mean('circle.png', 0, 3, 0, 3)}`);
  },
};

const blocks = readmeBlocks(readFileSync(join(ROOT, 'README.md'), 'utf8'));

test('every README code block is runnable or marked with the reason it is not', () => {
  assert.ok(blocks.length >= 6);
  for (const b of blocks) assert.ok(b.skip || b.lang === 'sh' || b.lang === 'ts', `README.md:${b.line}: a \`${b.lang || 'plain'}\` block needs a readme-test marker`);
  assert.ok(blocks.some((b) => b.lang === 'ts' && !b.skip && /loadPipeline\(/.test(b.code) && /\.generate\(/.test(b.code)), 'a runnable TypeScript example shows loadPipeline(...).generate(...)');
});

for (const b of blocks) {
  test(`README.md:${b.line} (${b.lang || 'text'})`, { skip: b.skip }, async () => {
    const made: string[] = [];
    if (b.lang === 'sh') {
      for (const words of commands(b.code)) {
        assert.deepEqual(words.slice(0, 2), ['npx', 'smash'], `README.md:${b.line}: runnable shell blocks hold smash commands: ${words.join(' ')}`);
        const r = await runCli(words.slice(2));
        assert.equal(r.code, 0, `${words.join(' ')}\n${r.stderr}`);
        const out = words[words.indexOf('--out') + 1];
        if (out) made.push(out);
      }
    } else {
      // the import names the package; here it is the sources
      const file = join(work, `example-${b.line}.mts`);
      writeFileSync(file, b.code.replace(/from 'smash-diffusion'/g, `from '${pathToFileURL(join(ROOT, 'src', 'index.ts')).href}'`));
      const log = console.log;
      console.log = () => undefined;
      try {
        await import(pathToFileURL(file).href);
      } finally {
        console.log = log;
      }
      for (const m of b.code.matchAll(/writePng\('([^']+)'/g)) made.push(m[1]!);
    }
    for (const f of made) {
      const check = PICTURES[f];
      assert.ok(check, `README.md:${b.line}: no check for what ${f} should show`);
      check();
    }
  });
}
