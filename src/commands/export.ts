/**
 * `cloze export`: a checkpoint's Hugging Face files (model.safetensors,
 * config.json, tokenizer.json) copied into a directory of their own, without
 * the optimizer and trainer state. An ASA fine-tuning checkpoint's adversary
 * (`asa.*` tensors, which only its training uses) is left out, so the export
 * is a plain BertForSequenceClassification or BertForMaskedLM.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ClozeError } from '../errors.js';
import { latestCheckpoint } from '../checkpoint/checkpoint.js';
import { loadSafetensors, readSafetensorsHeader, saveSafetensors } from '../checkpoint/safetensors.js';
import { isAdversaryKey } from '../tasks/finetune/asa.js';

/** Copies model.safetensors, or rewrites it without the tensors `drop` names. */
function copyWeights(from: string, to: string, drop: (name: string) => boolean): void {
  const { tensors, metadata } = readSafetensorsHeader(from);
  if (!tensors.some((t) => drop(t.name))) {
    copyFileSync(from, to);
    return;
  }
  const all = loadSafetensors(from);
  try {
    saveSafetensors(to, Object.fromEntries(Object.entries(all).filter(([k]) => !drop(k))), Object.keys(metadata).length ? metadata : undefined);
  } finally {
    for (const t of Object.values(all)) t.dispose();
  }
}

export function exportCheckpoint(from: string, to: string): string[] {
  const dir = existsSync(join(from, 'model.safetensors')) ? from : latestCheckpoint(from);
  if (!dir) throw new ClozeError('E_IO', `Expected a checkpoint directory or a run directory with checkpoints for checkpoint but received ${from}`);
  mkdirSync(to, { recursive: true });
  const copied: string[] = [];
  for (const f of ['model.safetensors', 'config.json', 'tokenizer.json']) {
    if (!existsSync(join(dir, f))) {
      if (f === 'tokenizer.json') continue;
      throw new ClozeError('E_IO', `Expected ${f} in ${dir} for checkpoint but received none`);
    }
    if (f === 'model.safetensors') copyWeights(join(dir, f), join(to, f), isAdversaryKey);
    else copyFileSync(join(dir, f), join(to, f));
    copied.push(join(to, f));
  }
  return copied;
}
