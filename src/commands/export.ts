/**
 * `cloze export`: a checkpoint's Hugging Face files (model.safetensors,
 * config.json, tokenizer.json) copied into a directory of their own, without
 * the optimizer and trainer state. An ASA fine-tuning checkpoint's adversary
 * (`asa.*` tensors, which only its training uses) is left out, so the export
 * is a plain BertForSequenceClassification or BertForMaskedLM. A mask-tune
 * run exports as the plain classifier it computes (W ⊙ mask), or with
 * --mask-only as its task's weight-mask file over the base. An ELECTRA run
 * exports its discriminator (ElectraForPreTraining), or with --generator its
 * generator (ElectraForMaskedLM; see src/models/electra/generator-export.ts).
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ClozeError } from '../errors.js';
import { latestCheckpoint } from '../checkpoint/checkpoint.js';
import { loadSafetensors, readSafetensorsHeader, saveSafetensors } from '../checkpoint/safetensors.js';
import { isAdversaryKey } from '../tasks/finetune/asa.js';
import { effectiveCheckpointTensors, exportMaskFile } from '../tasks/finetune/mask-export.js';
import { finetuneRecord } from '../tasks/finetune/predict.js';
import { isDecoderKey } from '../models/bert/model.js';
import { electraConfigFromHf } from '../models/electra/hf-config.js';
import { generatorExportTensors, hfElectraGeneratorConfig } from '../models/electra/generator-export.js';

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

export interface ExportOptions {
  /** Write the task's weight-mask file at `to` instead (a mask-tune checkpoint only). */
  maskOnly?: boolean;
  /** An ELECTRA run: write its generator as an ElectraForMaskedLM directory instead of the discriminator. */
  generator?: boolean;
}

/** The generator of the ELECTRA checkpoint `dir` as an ElectraForMaskedLM directory `to`. */
function exportGenerator(dir: string, to: string): string[] {
  const configPath = join(dir, 'config.json');
  const config = JSON.parse(readFileSync(configPath, 'utf8')) as { [key: string]: unknown };
  if (config.model_type !== 'electra') {
    throw new ClozeError('E_VALUE', `Expected an ELECTRA checkpoint (model_type "electra") in ${dir} for --generator but received model_type ${JSON.stringify(config.model_type)}`);
  }
  const hf = hfElectraGeneratorConfig(electraConfigFromHf(config, configPath), dir);
  mkdirSync(to, { recursive: true });
  const all = loadSafetensors(join(dir, 'model.safetensors'));
  try {
    saveSafetensors(join(to, 'model.safetensors'), generatorExportTensors(all, join(dir, 'model.safetensors')), { format: 'pt' });
  } finally {
    for (const t of Object.values(all)) t.dispose();
  }
  writeFileSync(join(to, 'config.json'), `${JSON.stringify(hf, null, 2)}\n`);
  const files = [join(to, 'model.safetensors'), join(to, 'config.json')];
  if (existsSync(join(dir, 'tokenizer.json'))) {
    copyFileSync(join(dir, 'tokenizer.json'), join(to, 'tokenizer.json'));
    files.push(join(to, 'tokenizer.json'));
  }
  return files;
}

export function exportCheckpoint(from: string, to: string, opts: ExportOptions = {}): string[] {
  const dir = existsSync(join(from, 'model.safetensors')) ? from : latestCheckpoint(from);
  if (!dir) throw new ClozeError('E_IO', `Expected a checkpoint directory or a run directory with checkpoints for checkpoint but received ${from}`);
  const record = finetuneRecord(dir);
  if (opts.maskOnly && opts.generator) throw new ClozeError('E_VALUE', 'Expected one of maskOnly (a mask-tune run) or generator (an ELECTRA run) for export but received both');
  if (opts.maskOnly) {
    mkdirSync(dirname(to), { recursive: true });
    exportMaskFile(dir, record, to);
    return [to];
  }
  if (opts.generator) return exportGenerator(dir, to);
  mkdirSync(to, { recursive: true });
  const copied: string[] = [];
  const electra = existsSync(join(dir, 'config.json')) && (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { model_type?: unknown }).model_type === 'electra';
  for (const f of ['model.safetensors', 'config.json', 'tokenizer.json']) {
    if (!existsSync(join(dir, f))) {
      if (f === 'tokenizer.json') continue;
      throw new ClozeError('E_IO', `Expected ${f} in ${dir} for checkpoint but received none`);
    }
    if (record?.method === 'mask-tune' && f !== 'tokenizer.json') continue;
    // A DrBERT pre-training run's decoder blocks (cls.drbert.*) are dropped: the export is a plain BertForMaskedLM.
    // An ELECTRA run exports its discriminator alone (ElectraForPreTraining): the generator is pre-training only.
    if (f === 'model.safetensors') copyWeights(join(dir, f), join(to, f), electra ? (k) => isAdversaryKey(k) || k.startsWith('generator.') : (k) => isAdversaryKey(k) || isDecoderKey(k));
    else copyFileSync(join(dir, f), join(to, f));
    copied.push(join(to, f));
  }
  if (record?.method === 'mask-tune') {
    const sd = effectiveCheckpointTensors(dir, record);
    try {
      saveSafetensors(join(to, 'model.safetensors'), sd, { format: 'pt' });
    } finally {
      for (const t of Object.values(sd)) t.dispose();
    }
    // The export is a plain classifier: cloze loads it as mlp-ft, and the record says where it came from.
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { cloze_finetune: Record<string, unknown> };
    config.cloze_finetune = { ...config.cloze_finetune, method: 'mlp-ft', exported_from: 'mask-tune' };
    writeFileSync(join(to, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    copied.unshift(join(to, 'model.safetensors'), join(to, 'config.json'));
  }
  return copied;
}
