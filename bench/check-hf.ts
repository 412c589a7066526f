/**
 * `npm run check:hf`: does a cloze checkpoint load and compute as Hugging
 * Face's BertForMaskedLM would? Trains nothing: builds a random bert-tiny
 * (vocab 500, seed 3), saves it with saveCheckpoint + hfBertConfig into a temp
 * directory, computes our MLM logits (eval mode) at some positions of a padded
 * batch with token types, then runs bench/baselines/check_hf_checkpoint.py
 * (a plain-torch re-implementation of HF's BertForMaskedLM that loads the
 * directory with HF's names, strict except for the tied decoder keys) on the
 * same inputs and compares the full-vocabulary logits with the tests' rule
 * (test/helpers/tolerance.ts): |ours − ref| ≤ atol + rtol·|ref|, float32
 * tolerances. Not `transformers` itself, which is not installed here.
 *
 * Options: --python PATH (default $CLOZE_PYTHON or /usr/bin/python3), --keep
 * (leave the temp directory and print its path).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BertForMaskedLM, bertPreset, embedding, fromTypedArray, linear, noGrad, reshape, saveCheckpoint, scope,
} from '../src/index.js';
import { hfBertConfig } from '../src/models/bert/hf-config.js';

/** test/helpers/tolerance.ts tolFor('float32'). */
const TOL = { atol: 2e-6, rtol: 2e-4 };

const argv = process.argv.slice(2);
const pyIdx = argv.indexOf('--python');
const python = pyIdx >= 0 ? argv[pyIdx + 1]! : (process.env.CLOZE_PYTHON ?? '/usr/bin/python3');
const keepDir = argv.includes('--keep');
const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'baselines', 'check_hf_checkpoint.py');

// The batch: 3 right-padded rows of L = 12 (lengths 12, 7, 4), token types 0/1, fixed ids.
const B = 3;
const L = 12;
const V = 500;
const lengths = [12, 7, 4];
const ids: number[][] = [];
const mask: number[][] = [];
const types: number[][] = [];
for (let b = 0; b < B; b++) {
  ids.push(Array.from({ length: L }, (_, l) => (l < lengths[b]! ? (b * 131 + l * 37 + 5) % V : 0)));
  mask.push(Array.from({ length: L }, (_, l) => (l < lengths[b]! ? 1 : 0)));
  types.push(Array.from({ length: L }, (_, l) => (l < lengths[b]! && l >= Math.floor(lengths[b]! / 2) ? 1 : 0)));
}
// Positions [b, l] at real tokens (first, middle, last of each row).
const positions: Array<[number, number]> = [[0, 0], [0, 5], [0, 11], [1, 0], [1, 3], [1, 6], [2, 1], [2, 3]];

const preset = bertPreset('bert-tiny', { vocabSize: V });
const model = new BertForMaskedLM(preset.config, { seed: 3 });
model.eval();

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cloze-check-hf-'));
let code = 1;
try {
  const ckpt = saveCheckpoint(dir, { step: 0, model: model.stateDict(), config: hfBertConfig(model.config) });

  const ours = noGrad(() =>
    scope(() => {
      const flatInt = (a: number[][]): Int32Array => Int32Array.from(a.flat());
      const batch = {
        ids: fromTypedArray(flatInt(ids), [B, L]),
        attentionMask: fromTypedArray(flatInt(mask), [B, L]),
        tokenTypeIds: fromTypedArray(flatInt(types), [B, L]),
      };
      const h = reshape(model.encode(batch), [-1, model.config.hidden]);
      const rows = fromTypedArray(Int32Array.from(positions.map(([b, l]) => b * L + l)), [positions.length]);
      // As accuracy() in src/models/bert/model.ts: gather rows → transform → tied decoder + bias.
      const t = model.cls.predictions.transform.forward(embedding(h, rows));
      const logits = linear(t, model.bert.embeddings.word_embeddings.weight, model.cls.predictions.bias);
      return Float32Array.from(logits.toArray() as ArrayLike<number>);
    }),
  );

  const r = spawnSync(python, [script], {
    input: JSON.stringify({ dir: ckpt, ids, attention_mask: mask, token_type_ids: types, positions }),
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  if (r.error) throw new Error(`could not run ${python}: ${r.error.message}`);
  const lastLine = r.stdout.trim().split('\n').at(-1) ?? '';
  let ref: { ok: boolean; error?: string; torch?: string; logits?: number[][]; missing?: string[]; unexpected_ignored?: string[]; loaded?: number };
  try {
    ref = JSON.parse(lastLine);
  } catch {
    throw new Error(`${python} ${script} exited with status ${r.status} and no JSON:\n${r.stderr}${r.stdout}`);
  }
  if (!ref.ok) {
    console.log(`reference refused the checkpoint: ${ref.error}`);
    console.log('FAIL');
  } else {
    const want = Float32Array.from(ref.logits!.flat());
    let maxAbs = 0;
    let bad = 0;
    const shown: string[] = [];
    if (want.length !== ours.length) throw new Error(`logit counts differ: ours ${ours.length}, reference ${want.length}`);
    for (let i = 0; i < want.length; i++) {
      const d = Math.abs(ours[i]! - want[i]!);
      maxAbs = Number.isNaN(d) ? Infinity : Math.max(maxAbs, d);
      if (!(d <= TOL.atol + TOL.rtol * Math.abs(want[i]!))) {
        bad++;
        if (shown.length < 8) shown.push(`  [pos ${positions[Math.floor(i / V)]!.join(',')} token ${i % V}] ours ${ours[i]} ref ${want[i]}`);
      }
    }
    let maxRef = 0;
    for (const x of want) maxRef = Math.max(maxRef, Math.abs(x));
    console.log(`checkpoint   ${ckpt}`);
    console.log(`reference    ${script} (torch ${ref.torch}, ${ref.loaded} tensors loaded, missing only ${JSON.stringify(ref.missing)}, ignored ${JSON.stringify(ref.unexpected_ignored)})`);
    console.log(`compared     ${want.length} logits (${positions.length} positions × vocab ${V}), max |ref| ${maxRef.toPrecision(4)}`);
    console.log(`tolerance    |ours − ref| ≤ ${TOL.atol} + ${TOL.rtol}·|ref|`);
    console.log(`max abs diff ${maxAbs.toExponential(3)}; ${bad} outside tolerance`);
    for (const s of shown) console.log(s);
    console.log(bad === 0 ? 'PASS' : 'FAIL');
    if (bad === 0) code = 0;
  }
  if (r.stderr.trim()) console.error(r.stderr.trim());
} finally {
  if (keepDir) console.log(`kept ${dir}`);
  else fs.rmSync(dir, { recursive: true, force: true });
}
process.exitCode = code;
