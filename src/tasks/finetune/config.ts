/**
 * The settings of `cloze finetune`: what to fine-tune and how (the data, the
 * method, its prompts), then the run (schedule, optimizer, checkpoints,
 * device), whose fields mean what they mean for `cloze pretrain` but default
 * to a fine-tuning recipe. `--task` here names a downstream dataset.
 */
import { ClozeError } from '../../errors.js';
import { isKnownField, MAX_SEQUENCE_LENGTH, readSettingsFile, resolveSection, SHARED_FIELDS, type ConfigOf, type ConfigSection, type FieldSpec, type Fields } from '../../train/config.js';

/** mask-tune's default learning rate (of the scores). */
export const MASK_TUNE_LR = 5e-3;

export const BUILTIN_TASK_NAMES = ['spam', 'wordnet-topics', 'wordnet-defs'] as const;

export const FINETUNE_FIELDS = {
  task: { kind: 'string?', default: null, choices: BUILTIN_TASK_NAMES, describe: 'A built-in downstream task (prepared once from its package and cached in the run directory); or give --task-data' },
  taskData: { kind: 'string?', default: null, describe: 'Training examples: .jsonl rows {"text", "label", "text_pair"?} or a .csv/.tsv file with a header naming text, label and optionally text_pair' },
  testData: { kind: 'string?', default: null, describe: 'Test examples in the same format (default: a seeded class-stratified 20% of --task-data)' },
  method: { kind: 'string', default: 'mlp-ft', choices: ['mlp-ft', 'mvp', 'asa', 'mask-tune'], describe: 'mlp-ft: a pooled [CLS] and a linear head (BertForSequenceClassification); mvp: prompt templates scored by the MLM head at [MASK], no new head; asa: mlp-ft trained with adversarial self-attention (see --asa); mask-tune: mlp-ft\'s model with frozen weights, learning a binary mask over every linear layer (default lr 5e-3, no weight decay)' },
  asa: { kind: 'boolean', default: false, describe: 'mvp: train with adversarial self-attention (ASA): a per-layer adversary masks attention pairs, the loss adds the symmetric KL to the masked pass and τ²·(kept pairs)/B; dropped at inference and export (--method asa is mlp-ft with ASA)' },
  asaTau: { kind: 'number', default: 0.5, min: 0, exclusiveMin: true, describe: 'ASA: τ, the weight (as τ²) of the adversary\'s kept-pairs term (> 0; the official default 0.5)' },
  adv: { kind: 'boolean', default: false, describe: 'Train on one-step L2 PGD perturbations of the word embeddings (ε = 1, random start): mlp-ft --adv is adversarial training, mvp --adv is MVP+Adv' },
  template: { kind: 'string[]', default: [], describe: 'mvp: a prompt template with one [MASK] (repeatable; a template starting with [SEP] goes after the input, any other right after [CLS]); default: the built-in task\'s' },
  verbalizer: { kind: 'string?', default: null, describe: 'mvp: labels.json mapping each label to its words, {"label": ["word", …]}; default: the built-in task\'s' },
  maskThreshold: { kind: 'number', default: 0.01, describe: 'mask-tune: τ, a weight is kept where its score is above it' },
  maskInitSparsity: { kind: 'number', default: 0.05, min: 1e-6, max: 0.999999, describe: 'mask-tune: the fraction of weights masked out at the start' },
  maskInitScale: { kind: 'number', default: 0.02, min: 1e-9, describe: 'mask-tune: α, scores start uniform in [−α, (α + τ)/p − α] for the initial sparsity p' },
  applyMask: { kind: 'string?', default: null, describe: 'A task\'s weight-mask file (cloze export --mask-only) over the --init-from base: its mask and head are the starting point (mlp-ft: the weights W ⊙ mask; mask-tune: scores that give the mask)' },
  maxLength: { kind: 'integer', default: 128, min: 8, max: MAX_SEQUENCE_LENGTH, describe: 'Tokens per input, [CLS], [SEP] and the template included; inputs are truncated, never templates (at most 8192)' },
  initFrom: { kind: 'string?', default: null, describe: 'A pre-trained run or checkpoint directory (ours or a Hugging Face BERT); default: runs/bert-tiny, pre-trained first when absent' },
} as const satisfies Fields;

function runField<K extends keyof typeof SHARED_FIELDS>(name: K, overrides: Partial<FieldSpec> = {}): FieldSpec {
  return { ...SHARED_FIELDS[name], ...overrides } as FieldSpec;
}

/** The run's schedule, optimizer, checkpoints and device, at fine-tuning defaults (Hugging Face Trainer's where it has one). */
export const FINETUNE_RUN_FIELDS = {
  out: runField('out', { describe: 'Run directory (default: runs/finetune-<task or data file>-<method>)' }),
  epochs: runField('epochs', { default: 3, describe: 'Epochs over the training examples; 0: run maxSteps steps' }),
  maxSteps: runField('maxSteps'),
  batchSize: runField('batchSize', { describe: 'Examples per micro-batch' }),
  gradAccum: runField('gradAccum'),
  lr: runField('lr', { default: 1e-4 }),
  warmupRatio: runField('warmupRatio', { default: 0.1 }),
  decay: runField('decay'),
  minLrRatio: runField('minLrRatio'),
  weightDecay: runField('weightDecay'),
  betas: runField('betas'),
  eps: runField('eps', { default: 1e-8 }),
  gradClip: runField('gradClip'),
  saveEvery: runField('saveEvery'),
  keepLast: runField('keepLast', { default: 2 }),
  logEvery: runField('logEvery'),
  seed: runField('seed'),
  threads: runField('threads'),
  device: runField('device'),
  precision: runField('precision'),
  resume: runField('resume'),
  overwrite: runField('overwrite'),
  distributed: runField('distributed'),
  distributedTimeout: runField('distributedTimeout'),
  distributedBackend: runField('distributedBackend'),
  bucketMb: runField('bucketMb'),
} as const satisfies Fields;

export const FINETUNE_SECTIONS: readonly ConfigSection[] = [
  { title: 'Fine-tuning', tasks: ['finetune'], fields: FINETUNE_FIELDS },
  { title: 'Run', tasks: ['finetune'], fields: FINETUNE_RUN_FIELDS },
];

type FinetuneFields = typeof FINETUNE_FIELDS & { [K in keyof typeof FINETUNE_RUN_FIELDS]: (typeof SHARED_FIELDS)[K] };
export type FinetuneConfig = ConfigOf<FinetuneFields>;

const ALL = { ...FINETUNE_FIELDS, ...FINETUNE_RUN_FIELDS } as Fields;

/** Fills defaults and validates; `where` names the source in errors. */
export function resolveFinetuneConfig(partial: Record<string, unknown>, where = 'options'): FinetuneConfig {
  if (partial === null || typeof partial !== 'object' || Array.isArray(partial)) {
    throw new ClozeError('E_VALUE', `${where}: Expected an object of fine-tuning settings but received ${JSON.stringify(partial)}`);
  }
  // Mask scores move by about lr per Adam step and start ~0.3 above τ: they need a larger lr than weights,
  // and no decay (the official code's default Adam lr 5e-3 and weight decay 0 when lr_for_mask is unset).
  if (partial.method === 'mask-tune') partial = { lr: MASK_TUNE_LR, weightDecay: 0, ...partial };
  for (const key of Object.keys(partial)) {
    if (!isKnownField(ALL, key)) throw new ClozeError('E_VALUE', `${where}: Expected a known setting for ${key} but received an unknown field (known: ${Object.keys(ALL).join(', ')})`);
  }
  const c = resolveSection(ALL, partial, where) as FinetuneConfig;
  if ((c.task === null) === (c.taskData === null)) {
    throw new ClozeError('E_VALUE', `${where}: Expected one of task (${BUILTIN_TASK_NAMES.join(', ')}) or taskData for the data to fine-tune on but received ${c.task === null ? 'neither' : 'both'}`);
  }
  if (c.testData !== null && c.taskData === null) throw new ClozeError('E_VALUE', `${where}: Expected testData only with taskData (a built-in task has its own test split) but received testData ${JSON.stringify(c.testData)}`);
  for (const t of c.template) {
    if ((t.match(/\[MASK\]/g) ?? []).length !== 1) throw new ClozeError('E_VALUE', `${where}: Expected a template with exactly one [MASK] for template but received ${JSON.stringify(t)}`);
  }
  if (c.applyMask !== null && c.method !== 'mlp-ft' && c.method !== 'mask-tune') {
    throw new ClozeError('E_VALUE', `${where}: Expected applyMask only with method mlp-ft or mask-tune (a mask file holds a classification head) but received method ${c.method}`);
  }
  if (c.method !== 'mvp' && (c.template.length > 0 || c.verbalizer !== null)) {
    throw new ClozeError('E_VALUE', `${where}: Expected template and verbalizer only with method mvp but received method ${c.method}`);
  }
  if (c.asa && c.method !== 'mvp') {
    throw new ClozeError('E_VALUE', `${where}: Expected asa only with method mvp (method asa is mlp-ft with ASA) but received asa with method ${c.method}`);
  }
  if (c.adv && usesAsa(c)) {
    throw new ClozeError('E_VALUE', `${where}: Expected adv off with ASA (PGD and ASA are two adversarial methods; pick one) but received adv with ${c.method === 'asa' ? 'method asa' : 'asa'}`);
  }
  return c;
}

/** Whether the run trains with ASA: --method asa, or mvp with --asa. */
export function usesAsa(c: Pick<FinetuneConfig, 'method' | 'asa'>): boolean {
  return c.method === 'asa' || c.asa;
}

/** The classifier a method trains and serves: asa is mlp-ft's (the adversary lives only in training). */
export function classifierMethod(method: string): 'mlp-ft' | 'mvp' {
  return method === 'mvp' ? 'mvp' : 'mlp-ft';
}

/** Reads a settings file for `cloze finetune --config`, each field checked. */
export function readFinetuneFile(path: string): Record<string, unknown> {
  const parsed = readSettingsFile(path);
  for (const key of Object.keys(parsed ?? {})) {
    if (!isKnownField(ALL, key)) throw new ClozeError('E_VALUE', `${path}: Expected a known setting for ${key} but received an unknown field (known: ${Object.keys(ALL).join(', ')})`);
  }
  resolveSection(ALL, parsed, path);
  return parsed;
}
