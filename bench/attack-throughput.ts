/**
 * `npm run bench:attack -- [options]`: attack throughput in queries/s with every candidate of a word scored in one
 * batched forward pass (`--batch-size 64`, the attack's default) against one query per pass (`--batch-size 1`), on
 * the same fine-tuned models and examples, in one run. The two runs must find the same attacks (checked), so the
 * ratio is pure scoring speed. Also printed: where the time goes (model forward, tokenization, candidate generation:
 * WordNet lookups for PWWS, the MLM's pass for BERT-Attack) and the mean queries per forward pass the attack formed.
 *
 * Checkpoints default to the robustness suite's seed-0 models on wordnet-topics
 * (`npx cloze bench robust` first), or name your own fine-tuned runs with --checkpoints.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setNumThreads } from '../src/runtime.js';
import { attack, ATTACKS, type AttackName, type AttackReport } from '../src/tasks/finetune/attack.js';
import { parseOrExit, printHeader } from './lib/header.js';

const SUITE = join('bench', 'results', 'robust', 'runs', 'wordnet-topics');
const USAGE = `usage: npm run bench:attack -- [--checkpoints ${join(SUITE, 'mlp-ft-seed0')},${join(SUITE, 'mvp-seed0')}]
                           [--attacks pwws,bert-attack] [--examples 20] [--batch-size 64] [--threads 2] [--task-data F]`;

interface Args {
  checkpoints: string[];
  attacks: AttackName[];
  examples: number;
  batchSize: number;
  threads: number;
  /** A labelled file to attack instead of each run's test split. */
  taskData?: string;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { checkpoints: [join(SUITE, 'mlp-ft-seed0'), join(SUITE, 'mvp-seed0')], attacks: [...ATTACKS], examples: 20, batchSize: 64, threads: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (v === undefined) throw new Error(`Expected a value after ${k}\n${USAGE}`);
    if (k === '--checkpoints') a.checkpoints = v.split(',');
    else if (k === '--task-data') a.taskData = v;
    else if (k === '--attacks') a.attacks = v.split(',').map((x) => {
      if (!(ATTACKS as readonly string[]).includes(x)) throw new Error(`Expected ${ATTACKS.join(' or ')} in --attacks but received ${x}\n${USAGE}`);
      return x as AttackName;
    });
    else if (k === '--examples' || k === '--batch-size' || k === '--threads') {
      const n = Number(v);
      if (!Number.isInteger(n) || n < (k === '--threads' ? 0 : 1)) throw new Error(`Expected an integer for ${k} but received ${v}\n${USAGE}`);
      if (k === '--examples') a.examples = n;
      else if (k === '--batch-size') a.batchSize = n;
      else a.threads = n;
    } else throw new Error(`Unknown option ${k}\n${USAGE}`);
  }
  const missing = a.checkpoints.find((c) => !existsSync(c));
  if (missing) throw new Error(`Expected a fine-tuned run or checkpoint at ${missing} (run npx cloze bench robust first, or give --checkpoints)\n${USAGE}`);
  return a;
}

function row(r: AttackReport): string[] {
  const t = r.time;
  const share = (x: number): string => `${((100 * x) / t.total).toFixed(0)}%`;
  return [r.queriesPerSecond.toFixed(1), (r.queries / Math.max(1, r.forwardPasses)).toFixed(1), share(t.forward), share(t.tokenize), share(t.candidates), share(Math.max(0, t.total - t.forward - t.tokenize - t.candidates))];
}

async function main(): Promise<void> {
  const a = parseOrExit(parseArgs);
  if (!a) return;
  if (a.threads > 0) setNumThreads(a.threads);
  printHeader('bench:attack', `examples ${a.examples}, batch ${a.batchSize} against 1`);
  console.log('| model | attack | batching | queries/s | queries / pass | forward | tokenize | candidates | other | batched ÷ one a pass |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const checkpoint of a.checkpoints) {
    for (const name of a.attacks) {
      const batched = await attack({ checkpoint, attack: name, examples: a.examples, batchSize: a.batchSize, taskData: a.taskData });
      const single = await attack({ checkpoint, attack: name, examples: a.examples, batchSize: 1, taskData: a.taskData });
      if (JSON.stringify(batched.outcomes) !== JSON.stringify(single.outcomes)) throw new Error(`${checkpoint} ${name}: batched and one-a-pass runs found different attacks`);
      const ratio = batched.queriesPerSecond / single.queriesPerSecond;
      const model = `${batched.method} (${checkpoint})`;
      console.log(`| ${model} | ${name} | ${a.batchSize} | ${row(batched).join(' | ')} | ${ratio.toFixed(2)}× |`);
      console.log(`| ${model} | ${name} | 1 | ${row(single).join(' | ')} | |`);
    }
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
