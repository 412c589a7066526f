/**
 * Building the classifier of a fine-tuning run from a checkpoint directory:
 * a pre-trained one (our MLM checkpoints or a Hugging Face BERT: the trunk,
 * and for mvp the MLM head, load; mlp-ft's pooler and head start as HF
 * initialises them) or a fine-tuned one (everything loads). MVP's templates
 * and verbalizer are tokenised with the run's tokenizer.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint, type LoadedCheckpoint } from '../../checkpoint/checkpoint.js';
import { loadTokenizer, type TextTokenizer } from '../../data/tokenizer.js';
import { ClozeError } from '../../errors.js';
import { BertForSequenceClassification } from '../../models/bert/classification.js';
import { bertConfigFromHf, HF_EXTRA_KEYS } from '../../models/bert/hf-config.js';
import { BertForMaskedLM, isDecoderKey } from '../../models/bert/model.js';
import { readMaskFile } from '../../checkpoint/mask-file.js';
import { TextClassifier, type Method } from './classifier.js';
import { applyMaskFile, attachWeightMasks, MASK_TUNE_DEFAULTS, type MaskTuneOptions } from './mask-tune.js';
import { tokenizeTemplates, verbalizerWordIds } from './mvp-inputs.js';

export interface ClassifierSpec {
  method: Method | 'mask-tune';
  /** mask-tune: the scores' threshold and initialisation (seeded by `seed`). */
  mask?: Omit<MaskTuneOptions, 'seed'>;
  /** A weight-mask file to put on the loaded weights (mlp-ft: W ⊙ mask; mask-tune: scores giving the mask). */
  maskFile?: string;
  labels: readonly string[];
  maxLength: number;
  seed: number;
  templates: readonly string[];
  verbalizer: Readonly<Record<string, readonly string[]>>;
  /** Names the verbalizer in errors (its file, or the built-in task's). */
  verbalizerSource?: string;
}

/** The tokenizer of a checkpoint directory (tokenizer.json, else vocab.txt). */
export async function checkpointTokenizer(dir: string): Promise<TextTokenizer> {
  const file = ['tokenizer.json', 'vocab.txt'].map((f) => join(dir, f)).find((f) => existsSync(f));
  if (!file) throw new ClozeError('E_IO', `Expected tokenizer.json or vocab.txt in ${dir} for the fine-tuned model's tokenizer but received neither`);
  return loadTokenizer(file);
}

/**
 * The BertForMaskedLM of a loaded checkpoint (ours, or a stock HF BERT, whose
 * pooler and next-sentence head an MLM does not use); `dir` names it in errors.
 */
export function maskedLMOf(ck: Pick<LoadedCheckpoint, 'config' | 'model'>, dir: string, seed: number): BertForMaskedLM {
  if (ck.config.model_type === 'electra') {
    throw new ClozeError('E_VALUE', `Expected a checkpoint with an MLM head in ${dir} for this method but received an ELECTRA one (its discriminator has no MLM head); fine-tune it with --method mlp-ft`);
  }
  const model = new BertForMaskedLM(bertConfigFromHf(ck.config, join(dir, 'config.json')), { seed });
  // asa.*: an ASA run's adversary, which only training uses; cls.drbert.*: a DrBERT run's pre-training decoder.
  const unused = (k: string): boolean => HF_EXTRA_KEYS.has(k) || k.startsWith('asa.') || k.startsWith('bert.pooler.') || k.startsWith('cls.seq_relationship.') || k.startsWith('classifier.') || isDecoderKey(k);
  try {
    model.loadStateDict(Object.fromEntries(Object.entries(ck.model).filter(([k]) => !unused(k))));
  } catch (e) {
    model.dispose();
    throw new ClozeError('E_VALUE', `${join(dir, 'model.safetensors')}: ${(e as Error).message}`);
  }
  return model;
}

/** The classifier, its weights loaded from `dir`; `warn` hears of verbalizer words dropped for not being one token. */
export async function openClassifier(dir: string, spec: ClassifierSpec, tok: TextTokenizer, warn: (message: string) => void): Promise<TextClassifier> {
  const ck = loadCheckpoint(dir);
  try {
    if (spec.method === 'mlp-ft' || spec.method === 'mask-tune') {
      const model = new BertForSequenceClassification(bertConfigFromHf(ck.config, join(dir, 'config.json')), { numLabels: spec.labels.length, seed: spec.seed });
      try {
        const mask = spec.method === 'mask-tune' ? { ...(spec.mask ?? MASK_TUNE_DEFAULTS), seed: spec.seed } : null;
        // A fine-tuned mask-tune checkpoint has the scores: they must exist before its state loads.
        const trained = Object.keys(ck.model).some((k) => k.endsWith('.weight_mask'));
        if (mask && trained) attachWeightMasks(model, mask, { init: false });
        model.loadPretrained(ck.model, join(dir, 'model.safetensors'));
        if (mask && !trained) attachWeightMasks(model, mask);
        if (spec.maskFile) applyMaskFile(model, readMaskFile(spec.maskFile), spec.maskFile, mask ?? undefined);
      } catch (e) {
        model.dispose();
        throw e;
      }
      return new TextClassifier({ method: 'mlp-ft', model }, spec.labels, tok, spec.maxLength);
    }
    const model = maskedLMOf(ck, dir, spec.seed);
    try {
      const templates = await tokenizeTemplates(tok, spec.templates);
      const verbalizer = await verbalizerWordIds(tok, spec.verbalizer, spec.labels, warn, spec.verbalizerSource ?? 'verbalizer');
      return new TextClassifier({ method: 'mvp', model, prompts: { templates, verbalizer } }, spec.labels, tok, spec.maxLength);
    } catch (e) {
      model.dispose();
      throw e;
    }
  } finally {
    ck.dispose();
  }
}
