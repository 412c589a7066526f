#!/usr/bin/env node
/**
 * npm's install (native) and prepare (ts) scripts. `npm ci` and `npm install` always build. `npx cloze …` run in
 * the checkout installs the checkout into npm's npx cache as a link to itself (libnpmexec does so for a package's
 * own bin) and runs these scripts again on the same directory: there (npm_command=exec) an existing build is kept,
 * so the documented `npm ci && npx cloze …` runs the build `npm ci` made instead of rebuilding it for a minute or two.
 * `npm run build:native` and `npm run build:ts` always rebuild.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const steps = {
  native: { output: join('build', 'Release', 'cloze_cpu.node'), command: 'node-gyp', args: ['rebuild'] },
  ts: { output: join('dist', 'src', 'cli.js'), command: 'tsc', args: ['-p', 'tsconfig.json'] },
};
const step = steps[process.argv[2]];
if (!step) {
  console.error(`Expected one of ${Object.keys(steps).join(', ')} for the build step but received ${JSON.stringify(process.argv[2])}`);
  process.exit(2);
}
if (process.env.npm_command === 'exec' && existsSync(join(root, step.output))) {
  console.error(`cloze: npx: using the existing ${step.output} (npm run build:${process.argv[2]} rebuilds it)`);
  process.exit(0);
}
// npm puts node_modules/.bin and its own node-gyp on PATH for lifecycle scripts.
const r = spawnSync(step.command, step.args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
if (r.error) {
  console.error(`cloze: could not run ${step.command}: ${r.error.message}`);
  process.exit(1);
}
process.exit(r.status ?? 1);
