#!/usr/bin/env node
// Screenshots a `smash eval` report.html with headless Chromium (no network needed: the page is
// self-contained). Usage: node scripts/screenshot-report.mjs <report.html> <out.png> [width] [height]
// Exits 2 with a reason when no chromium binary is found (set CHROMIUM to its path).
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [html, png, width = '1200', height = '2000'] = process.argv.slice(2);
if (!html || !png) {
  console.error('usage: node scripts/screenshot-report.mjs <report.html> <out.png> [width] [height]');
  process.exit(1);
}
export function findChromium() {
  const candidates = [process.env.CHROMIUM, 'chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'].filter(Boolean);
  for (const c of candidates) {
    const r = spawnSync(c, ['--version'], { encoding: 'utf8' });
    if (r.status === 0) return c;
  }
  return undefined;
}
const chromium = findChromium();
if (!chromium) {
  console.error('no chromium binary found (apt-get install chromium, or set CHROMIUM)');
  process.exit(2);
}
const out = resolve(png);
const r = spawnSync(chromium, [
  '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--force-device-scale-factor=1',
  `--window-size=${width},${height}`, `--screenshot=${out}`, pathToFileURL(resolve(html)).href,
], { encoding: 'utf8', timeout: 60_000 });
if (r.status !== 0 || !existsSync(out) || statSync(out).size === 0) {
  console.error(`chromium failed (${r.status}): ${r.stderr}`);
  process.exit(1);
}
console.log(`wrote ${out}`);
