/**
 * Exports of a mask-tune checkpoint: its weights as a plain
 * BertForSequenceClassification (every masked weight W ⊙ 1[score > τ], no
 * scores), or the task alone as a weight-mask file over its base (one bit
 * per masked weight, plus the pooler and classifier tensors, which an MLM
 * base does not have; they are stored even when it has a pooler, as the few
 * bytes are not worth a second way to load).
 */
import { join } from 'node:path';
import { countKept, writeMaskFile, type MaskLayer } from '../../checkpoint/mask-file.js';
import { loadSafetensors } from '../../checkpoint/safetensors.js';
import { ClozeError } from '../../errors.js';
import { tensor, type Tensor } from '../../tensor.js';
import { HEAD_TENSOR, keptBits, maskedWeight } from './mask-tune.js';
import type { FinetuneRecord } from './predict.js';

const SCORES = '.weight_mask';

function maskRecord(dir: string, record: FinetuneRecord | null): NonNullable<FinetuneRecord['mask']> & { record: FinetuneRecord } {
  if (!record || record.method !== 'mask-tune' || !record.mask) {
    throw new ClozeError('E_VALUE', `Expected a mask-tune checkpoint (config.json's cloze_finetune with method mask-tune) in ${dir} but received ${record ? `method ${record.method}` : 'a checkpoint that is not a fine-tuned one'}`);
  }
  return { ...record.mask, record };
}

/** The masked layers of a checkpoint's tensors: each `<layer>.weight_mask` with its `<layer>.weight`. */
function layersOf(sd: Record<string, Tensor>, file: string): Array<{ name: string; weight: Tensor; scores: Tensor }> {
  const out: Array<{ name: string; weight: Tensor; scores: Tensor }> = [];
  for (const [k, scores] of Object.entries(sd)) {
    if (!k.endsWith(SCORES)) continue;
    const name = k.slice(0, -SCORES.length);
    const weight = sd[`${name}.weight`];
    if (!weight || weight.shape.join() !== scores.shape.join() || weight.shape.length !== 2) {
      throw new ClozeError('E_SHAPE', `${file}: Expected ${name}.weight of the scores' shape [${scores.shape.join(', ')}] but received ${weight ? `[${weight.shape.join(', ')}]` : 'none'}`);
    }
    out.push({ name, weight, scores });
  }
  if (out.length === 0) throw new ClozeError('E_VALUE', `${file}: Expected weight-mask scores (*.weight_mask) but received none`);
  return out;
}

/** model.safetensors of a plain classifier: masked weights as W ⊙ mask, scores dropped. The caller disposes the tensors. */
export function effectiveCheckpointTensors(dir: string, record: FinetuneRecord | null): Record<string, Tensor> {
  const { threshold } = maskRecord(dir, record);
  const file = join(dir, 'model.safetensors');
  const sd = loadSafetensors(file);
  for (const { name, weight, scores } of layersOf(sd, file)) {
    sd[`${name}.weight`] = tensor(maskedWeight(weight.toArray(), scores.toArray(), threshold), weight.shape, 'float32');
    weight.dispose();
    scores.dispose();
    delete sd[`${name}${SCORES}`];
  }
  return sd;
}

/** Writes the task of a mask-tune checkpoint as a weight-mask file; returns its kept fraction. */
export function exportMaskFile(dir: string, record: FinetuneRecord | null, out: string): { kept: number; layers: number; bits: number } {
  const m = maskRecord(dir, record);
  const file = join(dir, 'model.safetensors');
  const sd = loadSafetensors(file);
  try {
    const layers: MaskLayer[] = [];
    const bits = new Map<string, Uint8Array>();
    let kept = 0;
    let all = 0;
    for (const { name, weight, scores } of layersOf(sd, file)) {
      const b = keptBits(scores.toArray(), m.threshold);
      kept += countKept(b, scores.size);
      all += scores.size;
      layers.push({ name, shape: weight.shape as [number, number] });
      bits.set(name, b);
    }
    const tensors = new Map<string, Float32Array>();
    const heads = Object.keys(sd).filter((k) => HEAD_TENSOR.test(k) && !k.endsWith(SCORES)).sort();
    for (const k of heads) tensors.set(k, Float32Array.from(sd[k]!.toArray()));
    const r = m.record;
    writeMaskFile(out, {
      base_sha256: m.base_sha256, threshold: m.threshold, labels: r.labels, pair: r.pair, max_length: r.max_length, layers,
      tensors: heads.map((k) => ({ name: k, shape: [...sd[k]!.shape] })),
    }, bits, tensors);
    return { kept: kept / all, layers: layers.length, bits: all };
  } finally {
    for (const t of Object.values(sd)) t.dispose();
  }
}
