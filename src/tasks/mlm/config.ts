/**
 * The mlm section of the run settings (text, tokenizer, masking, held-out
 * evaluation), and the recipe a BERT preset brings for the shared fields a
 * caller left unset.
 */
import { BERT_PRESETS, type BertPresetName } from '../../models/bert/presets.js';
import { ELECTRA_PRESETS, ELECTRA_RECIPE, isElectraPreset } from '../../models/electra/presets.js';
import { MAX_SEQUENCE_LENGTH, type ConfigOf, type ConfigSection, type Fields, type SharedConfig } from '../../train/config.js';

export const MLM_FIELDS = {
  objective: { kind: 'string', default: 'mlm', choices: ['mlm', 'electra'], describe: "Text objective: BERT's masked language modeling, or ELECTRA's replaced-token detection (a generator MLM and a discriminator; electra-* presets, default electra-mini)" },
  decoder: { kind: 'string', default: 'none', choices: ['none', 'emd', 'drbert'], describe: "Objective mlm: an enhanced MLM decoder before the head, pre-training only (export drops it): DeBERTa's enhanced mask decoder (emd; absolute-position presets) or DrBERT's gradual-unmasking blocks (drbert; padded presets)" },
  decoderLayers: { kind: 'integer', default: 2, min: 1, max: 12, describe: 'decoder drbert: extra transformer blocks (default 2, ours)' },
  unmaskFraction: { kind: 'number', default: 0.5, min: 0, max: 1, describe: 'decoder drbert: share of the masked positions attendable in the first block (default 0.5, ours); the last block sees them all' },
  decoderMix: { kind: 'number', default: 0.5, min: 0, max: 1, describe: "decoder drbert: probability that a masked position takes the decoder's output rather than the encoder's before the head (default 0.5, ours)" },
  textMode: { kind: 'string', default: 'line', choices: ['line', 'paragraph'], describe: 'Text files: one document per line, or blank-line-separated paragraphs' },
  jsonlField: { kind: 'string', default: 'text', describe: 'JSONL field holding the text' },
  encodingErrors: { kind: 'string', default: 'strict', choices: ['strict', 'replace', 'skip'], describe: 'Lines of invalid UTF-8: strict refuses the corpus naming the line; replace reads them with U+FFFD; skip drops them (the count is reported)' },
  recordSeparator: { kind: 'string?', default: null, describe: "Text files: a line equal to this string ends a document (e.g. '%' for fortune files); overrides textMode" },
  tokenizer: { kind: 'string?', default: null, describe: 'tokenizer.json or vocab.txt to load (default: train WordPiece on the corpus)' },
  vocabSize: { kind: 'integer', default: 8000, min: 6, max: 30000, describe: 'WordPiece vocabulary size when training one' },
  lowercase: { kind: 'boolean', default: true, describe: 'Lowercase text when training a tokenizer' },
  maxLength: { kind: 'integer', default: 128, min: 8, max: MAX_SEQUENCE_LENGTH, describe: 'Sequence length, [CLS] and [SEP] included (at most 8192; a run whose activations would not fit in memory is refused before it starts)' },
  evalFraction: { kind: 'number', default: 0.05, min: 0, max: 0.5, describe: 'Share of sequences held out for evaluation' },
  masking: { kind: 'string', default: 'token', choices: ['token', 'whole-word', 'span', 'ngram'], describe: 'Selection strategy' },
  evalMaskRatio: { kind: 'number?', default: null, min: 0, max: 1, exclusiveMin: true, exclusiveMax: true, describe: "Share of tokens masked in the held-out evaluation, in (0, 1) (default: the preset's recipe: 0.15 for mosaic-bert-* and electra-*, as MosaicBERT's eval loader, which trains at 0.3; else maskRatio)" },
  randomTokens: { kind: 'string', default: 'all', choices: ['all', 'non-special'], describe: "Objective mlm: the 10% random replacements draw from the whole vocabulary (all, as BERT's create_pretraining_data.py and Hugging Face's collator), or from it less the special tokens [PAD] [UNK] [CLS] [SEP] [MASK] (non-special, as fairseq's RoBERTa; needs them at the front of the vocabulary)", before: 'non-special' },
  evalEvery: { kind: 'integer', default: 200, min: 1, describe: 'Evaluate every N steps' },
  evalBatches: { kind: 'integer', default: 20, min: 1, describe: 'Batches per evaluation' },
} as const satisfies Fields;

export const MLM_SECTION: ConfigSection<typeof MLM_FIELDS> = { title: 'Text (task mlm)', tasks: ['mlm'], fields: MLM_FIELDS };

export type MlmRunConfig = SharedConfig & ConfigOf<typeof MLM_FIELDS>;

/** Recipe values of a BERT preset, used for the fields a caller left unset. */
export function withMlmRecipe(input: Record<string, unknown>): Record<string, unknown> {
  // ELECTRA: an electra-* preset, or objective electra (default preset electra-mini); its recipe fills the unset fields.
  if (input.objective === 'electra' || (input.objective === undefined && isElectraPreset(input.preset))) {
    const preset = input.preset ?? 'electra-mini';
    const recipe = isElectraPreset(preset) ? ELECTRA_PRESETS[preset].recipe : ELECTRA_RECIPE;
    return {
      objective: 'electra',
      preset,
      maskRatio: recipe.maskRatio,
      evalMaskRatio: recipe.evalMaskRatio,
      lr: recipe.optimizer.lr,
      betas: recipe.optimizer.betas,
      eps: recipe.optimizer.eps,
      weightDecay: recipe.optimizer.weightDecay,
      warmupRatio: recipe.warmupFraction,
      minLrRatio: recipe.finalLrFactor,
      decay: 'linear',
      ...('batchSize' in recipe && recipe.batchSize ? { batchSize: recipe.batchSize } : {}),
      ...Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)),
    };
  }
  const name = (input.preset ?? 'bert-tiny') as BertPresetName;
  const recipe = BERT_PRESETS[name]?.recipe;
  if (!recipe) return input;
  const fromRecipe: Record<string, unknown> = {
    maskRatio: recipe.maskRatio,
    // Whatever the training ratio: MosaicBERT's recipe evaluates at 15% "for consistent comparison" across runs.
    evalMaskRatio: recipe.evalMaskRatio,
    lr: recipe.optimizer.lr,
    betas: recipe.optimizer.betas,
    eps: recipe.optimizer.eps,
    weightDecay: recipe.optimizer.weightDecay,
    warmupRatio: recipe.warmupFraction,
    minLrRatio: recipe.finalLrFactor,
    decay: 'linear',
  };
  return { ...fromRecipe, ...Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) };
}

/** The masking ratio of held-out evaluation: evalMaskRatio when set, else the training one. */
export function evalMaskRatioOf(cfg: Pick<MlmRunConfig, 'maskRatio' | 'evalMaskRatio'>): number {
  return cfg.evalMaskRatio ?? cfg.maskRatio;
}
