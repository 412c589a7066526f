/**
 * `npm run check:hf-transformers`: does the real Hugging Face `transformers`
 * load cloze's exports and compute what cloze computes, and does cloze load
 * what transformers saves? See bench/lib/hf-transformers-check.ts for the
 * checks and bench/lib/hf-report.ts for the rules (1e-4 absolute, float32;
 * no missing keys but the tied output embeddings).
 *
 * Options: --python PATH (a python with torch and transformers; default
 * $CLOZE_HF_PYTHON, else python3), --keep (leave the runs and exports and
 * print where), --out DIR (write DIR/hf-transformers-report.json).
 * Exits 1 when any check fails.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runHfTransformersCheck } from './lib/hf-transformers-check.js';

const USAGE = 'usage: npm run check:hf-transformers -- [--python PATH] [--keep] [--out DIR]';

function flagValue(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  if (i < 0) return undefined;
  const v = argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`Expected a value after ${name} but received ${v ?? 'nothing'}\n${USAGE}`);
  return v;
}

const argv = process.argv.slice(2);
for (const a of argv) {
  if (a.startsWith('--') && !['--python', '--keep', '--out'].includes(a)) throw new Error(`Expected one of --python, --keep, --out but received ${a}\n${USAGE}`);
}
const python = flagValue(argv, '--python') ?? process.env.CLOZE_HF_PYTHON ?? 'python3';
const out = flagValue(argv, '--out');
const report = await runHfTransformersCheck({ python, keep: argv.includes('--keep') });
console.log(`transformers ${report.transformers}, torch ${report.torch} (${python}); |ours − transformers| ≤ ${report.atol}, float32`);
for (const n of report.notChecked) console.log(`not checked: ${n}`);
if (out) {
  mkdirSync(out, { recursive: true });
  const file = join(out, 'hf-transformers-report.json');
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`report ${file}`);
}
console.log(report.pass ? 'PASS' : 'FAIL');
process.exitCode = report.pass ? 0 : 1;
