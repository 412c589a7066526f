/**
 * `npm run bench:mask-serving`: what weight-mask tuning saves when one
 * machine serves several tasks. N tasks (default 3: 2, 8 and 2 classes, like
 * spam, wordnet-topics and wordnet-defs) are served two ways from the same
 * base (a `--preset` BERT, default bert-base):
 *   copies: N fine-tuned checkpoints, each a whole model (W ⊙ mask as plain
 *           weights, what `cloze export` writes of a mask-tune run);
 *   masks:  the base once plus N weight-mask files (`cloze export
 *           --mask-only`), loaded by loadMaskedClassifiers (the code of
 *           `cloze predict --mask`): the N models share the one base's
 *           storage and apply their packed bits per call.
 * It reports bytes on disk and the resident memory of a process that loads
 * all N tasks and classifies 32 texts with each (growth of VmRSS and of the
 * peak VmHWM over the same process before loading), and checks that both
 * ways give the same probabilities.
 *
 * The weights are the preset's random initialisation and the masks random at
 * the paper's 5% masked-out (no task is trained): bytes and memory depend on
 * the shapes, not on the values, and this keeps the run to a minute or two.
 * Options: `--help`.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { latestCheckpoint, saveCheckpoint } from '../src/checkpoint/checkpoint.js';
import { fileSha256, writeMaskFile } from '../src/checkpoint/mask-file.js';
import { trainWordPiece } from '../src/data/tokenizer.js';
import { BertForSequenceClassification } from '../src/models/bert/classification.js';
import { hfBertConfig } from '../src/models/bert/hf-config.js';
import { BertForMaskedLM } from '../src/models/bert/model.js';
import { bertPreset, BERT_PRESETS, type BertPresetName } from '../src/models/bert/presets.js';
import { attachWeightMasks, effectiveStateDict, HEAD_TENSOR, layerBits, maskedLayers } from '../src/tasks/finetune/mask-tune.js';
import { checkpointTokenizer } from '../src/tasks/finetune/model.js';
import { loadClassifier, loadMaskedClassifiers, type FinetunedClassifier } from '../src/tasks/finetune/predict.js';
import { native } from '../src/native/loader.js';
import { parseOrExit, printHeader, sourceState } from './lib/header.js';
import { fmtMiB, fmtRatio, printTable, section } from './lib/table.js';

const USAGE = `usage: npm run bench:mask-serving -- [--preset bert-base] [--tasks 3] [--out bench/results/mask-serving] [--keep]
  --keep leaves the generated base, copies and masks in --out (default: deleted at the end).`;

const CLASSES = [2, 8, 2, 4, 3, 5];
const TEXTS = Array.from({ length: 32 }, (_, i) => `sentence ${i}: the ${['cat', 'teacher', 'river', 'boat'][i % 4]} ${['sees', 'finds', 'reads', 'keeps'][(i >> 2) % 4]} a small thing near the old house .`);

interface Args {
  preset: BertPresetName;
  tasks: number;
  out: string;
  keep: boolean;
  child: null | { mode: 'copies' | 'masks' | 'none'; base: string; paths: string[] };
}

function parse(argv: readonly string[]): Args {
  const a: Args = { preset: 'bert-base', tasks: 3, out: join('bench', 'results', 'mask-serving'), keep: false, child: null };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]!;
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${f} needs a value`);
      return x;
    };
    if (f === '--preset') {
      const p = v();
      if (!(p in BERT_PRESETS)) throw new Error(`--preset: expected one of ${Object.keys(BERT_PRESETS).join(', ')} but received ${p}`);
      a.preset = p as BertPresetName;
    } else if (f === '--tasks') {
      a.tasks = Number(v());
      if (!Number.isInteger(a.tasks) || a.tasks < 1 || a.tasks > CLASSES.length) throw new Error(`--tasks: expected an integer in [1, ${CLASSES.length}] but received ${argv[i]}`);
    } else if (f === '--out') a.out = v();
    else if (f === '--keep') a.keep = true;
    else if (f === '--child') {
      const [mode, base, ...paths] = v().split(',');
      a.child = { mode: mode as 'copies', base: base!, paths };
    } else throw new Error(`unknown option ${f}\n${USAGE}`);
  }
  return a;
}

function statusKiB(field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/**
 * What a long-running server settles to: garbage collected (loading builds
 * each model with a random initialisation in JS arrays before its weights
 * load), the addon's block cache and the C heap's free pages handed back.
 */
async function settle(): Promise<void> {
  // Tensor memory behind a collected TypedArray view is released by a finalizer that runs on a later turn of the
  // event loop, not inside gc(): collect, let the finalizers run, then hand the freed blocks back.
  for (let i = 0; i < 3; i++) {
    (globalThis as { gc?: () => void }).gc?.();
    await new Promise<void>((r) => setImmediate(r));
  }
  native().releaseCache();
  native().releaseFreeMemory();
}

/** One serving process: load every task, classify the texts with each, print the memory and the probabilities. */
async function child(c: NonNullable<Args['child']>): Promise<void> {
  // The addon and the tokenizer package loaded, one classifier call made on nothing: the process before any model.
  writeFileSync('/proc/self/clear_refs', '5');
  const rss0 = statusKiB('VmRSS');
  const models: FinetunedClassifier[] = [];
  const probs: number[][][] = [];
  const toks: unknown[] = [];
  if (c.mode === 'none') {
    // The same tokenizers the serving processes load, and no model: what is not the models' memory.
    for (let i = 0; i < Number(c.paths[0]); i++) toks.push(await checkpointTokenizer(c.base));
  } else {
    if (c.mode === 'copies') for (const p of c.paths) models.push(await loadClassifier(p));
    else models.push(...(await loadMaskedClassifiers(c.base, c.paths)));
  }
  await settle();
  const rssLoaded = statusKiB('VmRSS');
  const liveLoaded = native().liveBytes();
  for (const m of models) probs.push((await m.predict(TEXTS)).map((x) => Object.values(x.probabilities)));
  await settle();
  const out = { rss0, rssLoaded, rssServed: statusKiB('VmRSS'), hwm: statusKiB('VmHWM'), live: liveLoaded, probs, tokenizers: toks.length };
  for (const m of models) m.dispose();
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

async function build(a: Args): Promise<{ base: string; copies: string[]; masks: string[] }> {
  rmSync(a.out, { recursive: true, force: true });
  mkdirSync(a.out, { recursive: true });
  const corpus = join(a.out, 'corpus.txt');
  writeFileSync(corpus, `${TEXTS.join('\n')}\n${readFileSync(join('data', 'corpus', 'default.txt'), 'utf8').slice(0, 2_000_000)}`);
  const tok = await trainWordPiece(corpus, { vocabSize: 8000 });
  const tokFile = join(a.out, 'tokenizer.json');
  tok.save(tokFile);
  const config = bertPreset(a.preset, { vocabSize: tok.vocabSize }).config;
  const mlm = new BertForMaskedLM(config, { seed: 1 });
  const hf = hfBertConfig(mlm.config);
  saveCheckpoint(join(a.out, 'base'), { step: 0, model: mlm.stateDict(), config: { ...hf, architectures: ['BertForMaskedLM'] }, tokenizerFiles: [tokFile] });
  const base = latestCheckpoint(join(a.out, 'base'))!;
  const sha = fileSha256(join(base, 'model.safetensors'));
  const copies: string[] = [];
  const masks: string[] = [];
  for (let t = 0; t < a.tasks; t++) {
    const labels = Array.from({ length: CLASSES[t]! }, (_, i) => `class-${i}`);
    const model = new BertForSequenceClassification(mlm.config, { numLabels: labels.length, seed: t + 2 });
    try {
      model.loadPretrained(mlm.stateDict());
      attachWeightMasks(model, { threshold: 0.01, initSparsity: 0.05, initScale: 0.02, seed: t });
      const record = { method: 'mlp-ft', labels, pair: false, max_length: 64 };
      const { tensors, made } = effectiveStateDict(model);
      const id2label = Object.fromEntries(labels.map((l, i) => [String(i), l]));
      saveCheckpoint(join(a.out, `copy-${t}`), {
        step: 0, model: tensors, tokenizerFiles: [tokFile],
        config: { ...hf, architectures: ['BertForSequenceClassification'], id2label, label2id: Object.fromEntries(labels.map((l, i) => [l, i])), num_labels: labels.length, cloze_finetune: record },
      });
      for (const m of made) m.dispose();
      copies.push(latestCheckpoint(join(a.out, `copy-${t}`))!);
      const layers = maskedLayers(model);
      const heads = model.namedParameters().filter(([n]) => HEAD_TENSOR.test(n) && !n.endsWith('weight_mask'));
      const file = join(a.out, `task-${t}.mask`);
      writeMaskFile(file, {
        base_sha256: sha, threshold: 0.01, labels, pair: false, max_length: 64,
        layers: layers.map(([n, l]) => ({ name: n, shape: l.weight.shape as [number, number] })),
        tensors: heads.map(([n, p]) => ({ name: n, shape: [...p.shape] })),
      }, new Map(layers.map(([n, l]) => [n, layerBits(l)])), new Map(heads.map(([n, p]) => [n, Float32Array.from(p.toArray())])));
      masks.push(file);
    } finally {
      model.dispose();
    }
  }
  mlm.dispose();
  return { base, copies, masks };
}

function run(mode: string, base: string, paths: string[]): { rss0: number; rssLoaded: number; rssServed: number; hwm: number; live: number; probs: number[][][] } {
  const script = new URL(import.meta.url).pathname;
  const out = execFileSync(process.execPath, ['--expose-gc', script, '--child', [mode, base, ...paths].join(',')], { encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out.trim().split('\n').pop()!);
}

async function main(): Promise<void> {
  const a = parseOrExit(parse);
  if (!a) return;
  if (a.child) return child(a.child);
  printHeader('mask-serving', `${a.preset}, ${a.tasks} tasks; random weights and 5%-masked-out random masks (bytes and memory depend on shapes only)`);
  console.log(sourceState());
  const t0 = Date.now();
  const { base, copies, masks } = await build(a);
  console.log(`built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  const size = (f: string): number => statSync(f).size;
  const baseBytes = size(join(base, 'model.safetensors'));
  const copyBytes = copies.map((c) => size(join(c, 'model.safetensors')));
  const maskBytes = masks.map(size);
  const none = run('none', base, [String(a.tasks)]);
  const copy = run('copies', base, copies);
  const mask = run('masks', base, masks);
  let maxDiff = 0;
  copy.probs.forEach((task, t) => task.forEach((row, i) => row.forEach((v, c) => (maxDiff = Math.max(maxDiff, Math.abs(v - mask.probs[t]![i]![c]!))))));
  const sum = (v: number[]): number => v.reduce((x, y) => x + y, 0);
  const grow = (r: typeof none, f: 'rssLoaded' | 'rssServed' | 'hwm'): number => r[f] - r.rss0;
  section(`${a.tasks} tasks over one ${a.preset} (${copies.length} copies against 1 base + ${masks.length} masks)`);
  printTable([{ header: 'MiB', align: 'l' }, { header: 'disk' }, { header: 'tensor memory' }, { header: 'resident after loading' }, { header: 'resident after serving' }, { header: 'peak resident' }], [
    ['copies', fmtMiB(sum(copyBytes)), fmtMiB(copy.live), fmtMiB(grow(copy, 'rssLoaded')), fmtMiB(grow(copy, 'rssServed')), fmtMiB(grow(copy, 'hwm'))],
    ['base + masks', fmtMiB(baseBytes + sum(maskBytes)), fmtMiB(mask.live), fmtMiB(grow(mask, 'rssLoaded')), fmtMiB(grow(mask, 'rssServed')), fmtMiB(grow(mask, 'hwm'))],
    ['copies / (base + masks)', fmtRatio(sum(copyBytes) / (baseBytes + sum(maskBytes))), fmtRatio(copy.live / mask.live), fmtRatio(grow(copy, 'rssLoaded') / grow(mask, 'rssLoaded')),
      fmtRatio(grow(copy, 'rssServed') / grow(mask, 'rssServed')), fmtRatio(grow(copy, 'hwm') / grow(mask, 'hwm'))],
    [`${a.tasks} tokenizers, no model`, '–', fmtMiB(none.live), fmtMiB(grow(none, 'rssLoaded')), fmtMiB(grow(none, 'rssServed')), fmtMiB(grow(none, 'hwm'))],
  ]);
  console.log(`per task: copy ${fmtMiB(copyBytes[0]!)} MiB on disk; mask file ${fmtMiB(maskBytes[0]!)} MiB (${(maskBytes[0]! / copyBytes[0]! * 100).toFixed(2)}% of a copy); base ${fmtMiB(baseBytes)} MiB`);
  console.log('tensor memory: the addon\'s live tensor bytes after loading. resident: growth of VmRSS over the same process before loading,');
  console.log('after a GC, its finalizers and handing cached blocks back (what a server settles to); peak: VmHWM, which includes loading');
  console.log(`agreement: largest |p(copies) − p(masks)| over ${a.tasks} × ${TEXTS.length} texts × classes = ${maxDiff.toExponential(2)}`);
  if (maxDiff > 1e-4) {
    console.error('the two ways of serving disagree');
    process.exitCode = 1;
  }
  if (!a.keep) rmSync(a.out, { recursive: true, force: true });
}

await main();
