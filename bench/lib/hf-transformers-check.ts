/**
 * The body of `npm run check:hf-transformers`: real cloze runs, exported, then
 * loaded by the real Hugging Face `transformers` (bench/baselines/
 * check_hf_transformers.py) and compared with what cloze computes on the same
 * batch, and the reverse (an HF-saved BERT loaded and fine-tuned by cloze).
 *
 *   a  pretrain() bert-tiny, 3 steps → export → BertForMaskedLM: full-vocabulary MLM logits
 *   b  finetune() mlp-ft from (a), 3 labels → export → BertForSequenceClassification: class
 *      logits, num_labels, id2label, label2id; finetune() mvp → export → BertForMaskedLM
 *   c  pretrain() ELECTRA (electra-mini), 3 steps → export → ElectraForPreTraining:
 *      per-token discriminator logits; export --generator → ElectraForMaskedLM: MLM logits
 *   d  transformers makes a random BertForMaskedLM, save_pretrained → cloze loads it as
 *      finetune's --init-from does: MLM logits; then finetune() and pretrain() start from it
 *
 * Every comparison is on one right-padded batch with token type ids (a
 * padded single sentence, a padded pair, a full-length pair), at every real
 * position, within HF_ATOL (bench/lib/hf-report.ts).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { noGrad, scope } from '../../src/autograd/mode.js';
import { loadCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { exportCheckpoint } from '../../src/commands/export.js';
import { trainWordPiece, type TextTokenizer } from '../../src/data/tokenizer.js';
import type { EncoderBatch } from '../../src/models/bert/batch.js';
import { BertForSequenceClassification } from '../../src/models/bert/classification.js';
import { BertForMaskedLM } from '../../src/models/bert/model.js';
import { electraConfigFromHf } from '../../src/models/electra/hf-config.js';
import { ElectraForPreTraining } from '../../src/models/electra/model.js';
import { linear } from '../../src/ops/linalg.js';
import { maskedLMOf } from '../../src/tasks/finetune/model.js';
import { loadClassifier } from '../../src/tasks/finetune/predict.js';
import { pretrain } from '../../src/tasks/pretrain.js';
import { finetune } from '../../src/tasks/run-finetune.js';
import { fromTypedArray, type Tensor } from '../../src/tensor.js';
import {
  buildReport, compareValues, formatCheck, HF_ATOL, loadProblems, verdict, type CheckResult, type HfReport, type LoadInfo,
} from './hf-report.js';

/** The python side, found from this file whether it runs as source (bench/lib) or compiled (dist/bench/lib). */
function scriptPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++, dir = dirname(dir)) {
    const p = join(dir, 'bench', 'baselines', 'check_hf_transformers.py');
    if (existsSync(p)) return p;
  }
  throw new Error(`Expected bench/baselines/check_hf_transformers.py above ${fileURLToPath(import.meta.url)} but found none`);
}
const SCRIPT = scriptPath();

export interface HfCheckOptions {
  python: string;
  /** Leave the temp directory (runs, exports) in place. */
  keep?: boolean;
  /** Where each PASS/FAIL line goes; default console.log. */
  log?: (line: string) => void;
}

/** The padded batch every check runs on, as nested arrays (for python) and flat int32 (for us). */
interface CheckBatch {
  ids: number[][];
  attention_mask: number[][];
  token_type_ids: number[][];
  /** Every real (non-pad) position [b, l]. */
  positions: Array<[number, number]>;
}

const SENTENCES: Array<[string, string | null]> = [
  ['the cat sees the ball every morning .', 'a dog likes a red apple after school .'],
  ['my friend finds a small boat .', null],
  ['the teacher helps', 'near the lake .'],
];
const L = 20;

async function makeBatch(tok: TextTokenizer): Promise<CheckBatch> {
  const b: CheckBatch = { ids: [], attention_mask: [], token_type_ids: [], positions: [] };
  for (const [a, p] of SENTENCES) {
    const ids = [tok.clsId, ...(await tok.encode(a)), tok.sepId];
    const types = ids.map(() => 0);
    if (p !== null) {
      const second = [...(await tok.encode(p)), tok.sepId];
      ids.push(...second);
      types.push(...second.map(() => 1));
    }
    // The first row is cut to L: a full-length row (no padding) with a pair segment.
    ids.length = Math.min(ids.length, L);
    types.length = ids.length;
    const n = ids.length;
    b.positions.push(...Array.from({ length: n }, (_, l): [number, number] => [b.ids.length, l]));
    b.ids.push([...ids, ...Array<number>(L - n).fill(tok.padId)]);
    b.attention_mask.push(Array.from({ length: L }, (_, l) => (l < n ? 1 : 0)));
    b.token_type_ids.push([...types, ...Array<number>(L - n).fill(0)]);
  }
  if (b.attention_mask.every((r) => r.every((m) => m === 1))) throw new Error('Expected a batch with padded rows but every row is full');
  return b;
}

function encoderBatch(b: CheckBatch): EncoderBatch {
  const t = (a: number[][]): Tensor => fromTypedArray(Int32Array.from(a.flat()), [a.length, L]);
  return { ids: t(b.ids), attentionMask: t(b.attention_mask), tokenTypeIds: t(b.token_type_ids) } as EncoderBatch;
}

/** Flat row indices b·L + l of the real positions. */
function rowsOf(b: CheckBatch): Tensor {
  return fromTypedArray(Int32Array.from(b.positions.map(([r, l]) => r * L + l)), [b.positions.length]);
}

const floats = (t: Tensor): Float32Array => Float32Array.from(t.toArray() as ArrayLike<number>);

/** Our full-vocabulary MLM logits at every real position, [P·V], through the model's own head (labelWordLogits over every id). */
function mlmLogits(model: BertForMaskedLM, b: CheckBatch): Float32Array {
  model.eval();
  return noGrad(() => scope(() => {
    const V = model.config.vocabSize;
    const all = fromTypedArray(Int32Array.from({ length: V }, (_, i) => i), [V]);
    return floats(model.labelWordLogits(encoderBatch(b), rowsOf(b), all));
  }));
}

interface PyResult extends LoadInfo {
  name: string;
  arch: string;
  logits: number[] | number[][];
  config: { model_type: string; architectures: string[] | null; num_labels: number; id2label: Record<string, string>; label2id: Record<string, number>; hidden_size: number; embedding_size: number | null };
  attn_implementation: string | null;
}
interface PyReply { ok: boolean; error?: string; transformers?: string; torch?: string; results?: PyResult[] }

function callPython(python: string, request: object): PyReply {
  const r = spawnSync(python, [SCRIPT], { input: JSON.stringify(request), encoding: 'utf8', maxBuffer: 512 * 1024 * 1024, env: { ...process.env, TRANSFORMERS_VERBOSITY: 'error', HF_HUB_OFFLINE: '1' } });
  if (r.error) throw new Error(`Expected a python with transformers at ${python} but could not run it: ${r.error.message}`);
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  let reply: PyReply;
  try {
    reply = JSON.parse(last) as PyReply;
  } catch {
    throw new Error(`${python} ${SCRIPT} exited with status ${r.status} and no JSON:\n${r.stderr}${r.stdout}`);
  }
  if (!reply.ok) throw new Error(`${python} ${SCRIPT} failed: ${reply.error}`);
  return reply;
}

/** A check of `ours` against one python result: numbers and loading info, plus `extra` problems. */
function judge(res: PyResult, ours: ArrayLike<number>, extra: string[] = [], notes: string[] = []): CheckResult {
  const theirs = (res.logits as Array<number | number[]>).flat();
  let cmp = null;
  const problems = [...loadProblems(res.arch, res), ...extra];
  try {
    cmp = compareValues(ours, theirs);
  } catch (e) {
    problems.push((e as Error).message);
  }
  const info = `from_pretrained loading info: missing ${JSON.stringify(res.missing)}, unexpected ${JSON.stringify(res.unexpected)}, mismatched ${JSON.stringify(res.mismatched)}`;
  return verdict(res.name, res.arch, cmp, problems, [...notes, info, `transformers attention: ${res.attn_implementation ?? 'default'}`]);
}

const eqJson = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** Runs every check and returns the report; prints one line per check. */
export async function runHfTransformersCheck(opts: HfCheckOptions): Promise<HfReport> {
  const log = opts.log ?? ((s: string) => console.log(s));
  const root = mkdtempSync(join(tmpdir(), 'cloze-check-hf-transformers-'));
  try {
    // A small corpus and a 200-token WordPiece vocabulary: the tokenizer every run shares.
    const subjects = ['the cat', 'a dog', 'my friend', 'the teacher', 'a bird', 'the farmer'];
    const rest = ['sees the ball', 'likes a red apple', 'finds a small boat', 'helps near the lake', 'watches the old house', 'meets us after school'];
    const lines = Array.from({ length: 240 }, (_, i) => `${subjects[i % 6]} ${rest[(i * 7) % 6]} every morning .`);
    const corpus = join(root, 'corpus.txt');
    writeFileSync(corpus, `${lines.join('\n')}\n`);
    const tok = await trainWordPiece(corpus, { vocabSize: 200 });
    const tokenizer = join(root, 'tokenizer.json');
    tok.save(tokenizer);
    const batch = await makeBatch(tok);
    const runBase = { data: corpus, maxLength: 32, batchSize: 4, maxSteps: 3, evalEvery: 3, saveEvery: 3, evalBatches: 1, threads: 0, seed: 1 };
    const common = { ...runBase, tokenizer };
    const quiet = { output: null };

    // a: an MLM pre-training run.
    const mlm = await pretrain({ ...common, preset: 'bert-tiny', out: join(root, 'mlm') }, quiet);
    const mlmExport = join(root, 'export-mlm');
    exportCheckpoint(mlm.outDir, mlmExport);
    const mlmCk = loadCheckpoint(mlm.checkpoint!);
    const ourMlm = maskedLMOf(mlmCk, mlm.checkpoint!, 0);
    mlmCk.dispose();
    const oursA = mlmLogits(ourMlm, batch);
    ourMlm.dispose();

    // b: fine-tuning from (a): mlp-ft with 3 labels, and mvp.
    const labels = ['animal', 'person', 'thing'];
    const examples = [
      ['the cat sees the ball .', 'animal'], ['a dog likes a red apple .', 'animal'], ['a bird watches the old house .', 'animal'], ['the cat helps near the lake .', 'animal'],
      ['my friend finds a small boat .', 'person'], ['the teacher sees the ball .', 'person'], ['the farmer meets us after school .', 'person'], ['my friend likes a red apple .', 'person'],
      ['the ball .', 'thing'], ['a small boat .', 'thing'], ['the old house .', 'thing'], ['a red apple .', 'thing'],
    ];
    const taskData = join(root, 'task.jsonl');
    writeFileSync(taskData, `${examples.map(([text, label]) => JSON.stringify({ text, label })).join('\n')}\n`);
    const ft = { taskData, initFrom: mlm.outDir, maxLength: 24, batchSize: 4, epochs: 0, maxSteps: 2, lr: 1e-3, threads: 0, seed: 2 };
    const mlp = await finetune({ ...ft, method: 'mlp-ft', out: join(root, 'mlp') }, quiet);
    const mlpExport = join(root, 'export-mlp');
    exportCheckpoint(mlp.outDir, mlpExport);
    const clf = await loadClassifier(mlpExport);
    const clfModel = clf.classifier.module as BertForSequenceClassification;
    clfModel.eval();
    const oursB = noGrad(() => scope(() => floats(clfModel.logits(encoderBatch(batch)))));
    clf.dispose();
    const verbalizer = join(root, 'verbalizer.json');
    writeFileSync(verbalizer, JSON.stringify({ animal: ['cat', 'dog'], person: ['friend', 'teacher'], thing: ['ball', 'boat'] }));
    const mvp = await finetune({ ...ft, method: 'mvp', template: ['[MASK] :'], verbalizer, out: join(root, 'mvp') }, quiet);
    const mvpExport = join(root, 'export-mvp');
    exportCheckpoint(mvp.outDir, mvpExport);
    const mvpClf = await loadClassifier(mvpExport);
    const oursMvp = mlmLogits(mvpClf.classifier.module as BertForMaskedLM, batch);
    mvpClf.dispose();

    // c: an ELECTRA run (electra-mini: 128 wide, its generator 32 wide over the 128-wide shared embeddings).
    const el = await pretrain({ ...common, objective: 'electra', preset: 'electra-mini', out: join(root, 'electra') }, quiet);
    const discExport = join(root, 'export-electra');
    const genExport = join(root, 'export-electra-generator');
    exportCheckpoint(el.outDir, discExport);
    exportCheckpoint(el.outDir, genExport, { generator: true });
    const elCk = loadCheckpoint(el.checkpoint!);
    const electra = new ElectraForPreTraining(electraConfigFromHf(elCk.config, join(el.checkpoint!, 'config.json')));
    electra.loadStateDict(elCk.model);
    elCk.dispose();
    electra.eval();
    const { disc: oursDisc, gen: oursGen } = noGrad(() => scope(() => {
      const eb = encoderBatch(batch);
      const z = electra.discriminatorLogits(eb).toArray() as Float32Array;
      const disc = Float32Array.from(batch.positions.map(([r, l]) => z[r * L + l]!));
      const gen = floats(linear(electra.generatorHidden(eb, rowsOf(batch)), electra.decoderWeight, electra.generator.generator_lm_head.bias));
      return { disc, gen };
    }));
    electra.dispose();

    const pos = { ids: batch.ids, attention_mask: batch.attention_mask, token_type_ids: batch.token_type_ids, positions: batch.positions };
    const reply = callPython(opts.python, {
      mode: 'check',
      checks: [
        { name: 'a mlm-pretrain', arch: 'BertForMaskedLM', dir: mlmExport, ...pos },
        { name: 'b mlp-ft', arch: 'BertForSequenceClassification', dir: mlpExport, ...pos },
        { name: 'b mvp', arch: 'BertForMaskedLM', dir: mvpExport, ...pos },
        { name: 'c electra-discriminator', arch: 'ElectraForPreTraining', dir: discExport, ...pos },
        { name: 'c electra-generator', arch: 'ElectraForMaskedLM', dir: genExport, ...pos },
      ],
    });
    const [ra, rb, rmvp, rdisc, rgen] = reply.results!;
    const checks: CheckResult[] = [];
    const add = (c: CheckResult): void => {
      checks.push(c);
      log(formatCheck(c));
    };
    const P = batch.positions.length;
    add(judge(ra!, oursA, [], [`MLM logits at ${P} real positions × vocab ${tok.vocabSize}; ours from the run's checkpoint, theirs from the export`]));
    const wantId2label = Object.fromEntries(labels.map((l, i) => [String(i), l]));
    const wantLabel2id = Object.fromEntries(labels.map((l, i) => [l, i]));
    const cfgProblems: string[] = [];
    if (rb!.config.num_labels !== labels.length) cfgProblems.push(`num_labels ${rb!.config.num_labels}, expected ${labels.length}`);
    if (!eqJson(rb!.config.id2label, wantId2label)) cfgProblems.push(`id2label ${JSON.stringify(rb!.config.id2label)}, expected ${JSON.stringify(wantId2label)}`);
    if (!eqJson(rb!.config.label2id, wantLabel2id)) cfgProblems.push(`label2id ${JSON.stringify(rb!.config.label2id)}, expected ${JSON.stringify(wantLabel2id)}`);
    add(judge(rb!, oursB, cfgProblems, [`class logits [${batch.ids.length}, ${labels.length}] from loadClassifier(export).classifier.module.logits; num_labels, id2label, label2id checked`]));
    add(judge(rmvp!, oursMvp, [], [`MLM logits at ${P} positions of an mvp run's export (loadClassifier's BertForMaskedLM)`]));
    add(judge(rdisc!, oursDisc, [], [`discriminator logit at ${P} real positions; ours from the run's checkpoint`]));
    const genProblems = rgen!.config.embedding_size === rgen!.config.hidden_size ? ['the generator export has no embeddings_project (embedding_size = hidden_size)'] : [];
    add(judge(rgen!, oursGen, genProblems, [`generator MLM logits at ${P} positions (hidden ${rgen!.config.hidden_size}, embedding_size ${rgen!.config.embedding_size})`]));

    // d: the reverse, an HF-saved BertForMaskedLM loaded and trained by cloze.
    const hfDir = join(root, 'hf-random-bert');
    mkdirSync(hfDir, { recursive: true });
    const rd = callPython(opts.python, { mode: 'make-bert', name: 'd hf-saved-bert', dir: hfDir, vocab_size: tok.vocabSize, seed: 5, ...pos }).results![0]!;
    copyFileSync(tokenizer, join(hfDir, 'tokenizer.json'));
    const dProblems: string[] = [];
    let oursD: Float32Array = new Float32Array(0);
    try {
      const hfCk = loadCheckpoint(hfDir);
      try {
        const m = maskedLMOf(hfCk, hfDir, 0);
        oursD = mlmLogits(m, batch);
        m.dispose();
      } finally {
        hfCk.dispose();
      }
      const f = await finetune({ ...ft, initFrom: hfDir, method: 'mlp-ft', maxSteps: 1, out: join(root, 'ft-from-hf') }, quiet);
      if (f.step !== 1 || !Number.isFinite(f.lastLoss)) dProblems.push(`finetune from it ran ${f.step} steps, last loss ${f.lastLoss}`);
      // The tokenizer comes from the directory, as --init-from takes it.
      const p = await pretrain({ ...runBase, initFrom: hfDir, maxSteps: 1, evalEvery: 1, saveEvery: 1, out: join(root, 'pre-from-hf') }, quiet);
      if (p.step !== 1 || !Number.isFinite(p.lastLoss)) dProblems.push(`pretrain --init-from it ran ${p.step} steps, last loss ${p.lastLoss}`);
    } catch (e) {
      dProblems.push(`cloze could not use it: ${(e as Error).message}`);
    }
    add(judge(rd, oursD, dProblems, [`transformers ${reply.transformers} save_pretrained(safe_serialization=True); MLM logits at ${P} positions; then 1 step of finetune (mlp-ft) and of pretrain from it`]));

    const notChecked = [
      'Image models (ViT/MAE, SparK): cloze has no Hugging Face export for them (their checkpoints are model_type cloze-mim / cloze-spark, not HF ViT configs; `cloze export` writes HF classes for BERT and ELECTRA only), so there is nothing for transformers to load.',
      `Only transformers ${reply.transformers} with torch ${reply.torch} was run here; 4.x is not verified by this run.`,
      'Exports of cloze-only variants (ALiBi, GeGLU, pre-LN; cloze_* config keys) are not loadable by stock transformers and are not checked.',
    ];
    return buildReport({ transformers: reply.transformers!, torch: reply.torch!, python: opts.python }, checks, notChecked, HF_ATOL);
  } finally {
    if (opts.keep) log(`kept ${root}`);
    else rmSync(root, { recursive: true, force: true });
  }
}
