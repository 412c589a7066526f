/**
 * `npm run bench:mlm-decoders`: the step cost of the enhanced MLM decoders
 * (pretrain --decoder emd|drbert) against plain MLM in the same process: one
 * full training step (loss through the fused head, backward, clip 1.0, AdamW)
 * of BertForMaskedLM per decoder, the decoders' steps interleaved rep by rep
 * so that load from other processes hits each alike. Reports the median wall
 * time and the median process CPU time (user + system) per step, and each
 * against plain MLM. Options: `--help`.
 */
import { AdamW, backward, BertForMaskedLM, bertPreset, runtimeInfo, scope, setNumThreads, type BertPresetName } from '../src/index.js';
import type { MlmDecoder } from '../src/models/bert/model.js';
import { mlmBatch } from './lib/mlm_batch.js';
import { median, nowMs } from './lib/timing.js';

const USAGE = 'usage: npm run bench:mlm-decoders -- [--preset bert-tiny,bert-mini] [--batch 16] [--length 128] [--warmup 2] [--reps 7] [--threads N]';

function parse(argv: readonly string[]): { presets: BertPresetName[]; B: number; L: number; warmup: number; reps: number; threads: number } {
  const a = { presets: ['bert-tiny', 'bert-mini'] as BertPresetName[], B: 16, L: 128, warmup: 2, reps: 7, threads: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i]!, argv[i + 1] ?? ''];
    const n = Number(v);
    if (k === '--help' || k === '-h') { console.log(USAGE); process.exit(0); }
    if (k === '--preset') a.presets = v.split(',') as BertPresetName[];
    else if (!(Number.isInteger(n) && n > 0)) throw new Error(`Expected a positive integer for ${k} but received ${v}\n${USAGE}`);
    else if (k === '--batch') a.B = n;
    else if (k === '--length') a.L = n;
    else if (k === '--warmup') a.warmup = n;
    else if (k === '--reps') a.reps = n;
    else if (k === '--threads') a.threads = n;
    else throw new Error(`Expected an option but received ${k}\n${USAGE}`);
  }
  return a;
}

const DECODERS: Array<[string, MlmDecoder | null]> = [
  ['none', null],
  ['emd', { kind: 'emd' }],
  ['drbert', { kind: 'drbert', layers: 2, unmaskFraction: 0.5, mixProb: 0.5 }],
];

function main(): void {
  const a = parse(process.argv.slice(2));
  if (a.threads > 0) setNumThreads(a.threads);
  console.log(`bench:mlm-decoders  B=${a.B} L=${a.L} mask 15%  warmup ${a.warmup}  reps ${a.reps}  threads ${runtimeInfo().threads}`);
  for (const name of a.presets) {
    const cfg = bertPreset(name).config;
    const runs = DECODERS.map(([label, decoder]) => {
      const model = new BertForMaskedLM(cfg, { seed: 0, decoder });
      model.train();
      const opt = new AdamW(model.parameters(), { lr: 1e-4, weightDecay: 0.01 });
      return { label, model, opt, wall: [] as number[], cpu: [] as number[], k: 0 };
    });
    const batch = mlmBatch(a.B, a.L, runs[0]!.model.config.vocabSize, 0.15, 1234);
    const step = (r: (typeof runs)[number]): void => {
      r.opt.zeroGrad();
      scope(() => backward(r.model.loss(batch, { drawSeed: r.k++ })));
      r.opt.clipGradNorm(1.0);
      r.opt.step();
    };
    for (let w = 0; w < a.warmup; w++) for (const r of runs) step(r);
    for (let rep = 0; rep < a.reps; rep++)
      for (const r of runs) {
        const c0 = process.cpuUsage();
        const t0 = nowMs();
        step(r);
        r.wall.push(nowMs() - t0);
        const c = process.cpuUsage(c0);
        r.cpu.push((c.user + c.system) / 1e3);
      }
    const base = runs[0]!;
    console.log(`\n${name}  (${runs.map((r) => `${r.label}: ${r.model.parameters().reduce((s, p) => s + p.size, 0)} params`).join(', ')})`);
    console.log('decoder   wall ms/step  ×plain   cpu ms/step  ×plain');
    for (const r of runs) {
      const w = median(r.wall), c = median(r.cpu);
      console.log(`${r.label.padEnd(8)}  ${w.toFixed(1).padStart(12)}  ${(w / median(base.wall)).toFixed(2).padStart(6)}  ${c.toFixed(1).padStart(11)}  ${(c / median(base.cpu)).toFixed(2).padStart(6)}`);
    }
    for (const r of runs) { r.opt.dispose(); r.model.dispose(); }
  }
}

main();
