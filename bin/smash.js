#!/usr/bin/env node
// Thin launcher: the CLI lives in dist/ (built by `npm ci` through the `prepare` script).
// Under --low-memory (or SMASH_MALLOC_ENV=1), commands that run sessions start again under glibc
// settings that return freed memory (src/cli/relaunch.ts); the CLI itself is imported only in
// the process that runs it.
import { fileURLToPath } from 'node:url';
import { relaunchWithAllocatorEnv } from '../dist/cli/relaunch.js';

const args = process.argv.slice(2);
const relaunched = relaunchWithAllocatorEnv(fileURLToPath(import.meta.url), args);
if (relaunched) process.exitCode = await relaunched;
else {
  const { main } = await import('../dist/cli/main.js');
  process.exitCode = await main(args);
}
