/**
 * `cloze export`: a checkpoint's Hugging Face files (model.safetensors,
 * config.json, tokenizer.json) copied into a directory of their own, without
 * the optimizer and trainer state.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ClozeError } from '../errors.js';
import { latestCheckpoint } from '../checkpoint/checkpoint.js';

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
    copyFileSync(join(dir, f), join(to, f));
    copied.push(join(to, f));
  }
  return copied;
}
