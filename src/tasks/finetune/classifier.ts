/**
 * A fine-tuned text classifier, either method behind one face: the model
 * (BertForSequenceClassification for mlp-ft, BertForMaskedLM for mvp), how an
 * example becomes its sequences (one for mlp-ft; one per template for mvp),
 * and the class logits [B, C] of a batch. MVP's logits come from the label
 * words' MLM logits at each [MASK] (the label_words op: never the [M, V]
 * logits), the max over a class's words, and the mean over the templates.
 */
import { keep } from '../../autograd/mode.js';
import { ClozeError } from '../../errors.js';
import type { EncoderBatch } from '../../models/bert/batch.js';
import type { BertForSequenceClassification } from '../../models/bert/classification.js';
import type { BertForMaskedLM } from '../../models/bert/model.js';
import { reshape } from '../../ops/elementwise.js';
import { verbalizerPool } from '../../ops/label_words.js';
import { fromTypedArray, type Tensor } from '../../tensor.js';
import type { TextTokenizer } from '../../data/tokenizer.js';
import { batchOfExamples, buildSequence, type MvpTemplate, type VerbalizerIds } from './mvp-inputs.js';

/** An example's token ids (and its pair's), without special tokens. */
export type EncodedExample = [Int32Array, Int32Array | null];

export type Method = 'mlp-ft' | 'mvp';

export interface MvpPrompts {
  templates: MvpTemplate[];
  verbalizer: VerbalizerIds;
}

export type ClassifierModel = { method: 'mlp-ft'; model: BertForSequenceClassification } | { method: 'mvp'; model: BertForMaskedLM; prompts: MvpPrompts };

export class TextClassifier {
  readonly numClasses: number;
  private words: Tensor | null;
  private classOf: Tensor | null;

  constructor(
    readonly m: ClassifierModel,
    readonly labels: readonly string[],
    private readonly tok: Pick<TextTokenizer, 'clsId' | 'sepId' | 'padId' | 'maskId'>,
    readonly maxLength: number,
  ) {
    this.numClasses = labels.length;
    if (m.method === 'mvp') {
      // Kept for the model's lifetime, on the host whatever the model's device: every batch scores the same
      // words, and the label-word ops check host indices where they are and upload them without waiting for
      // the device (a device copy would be read back for the check at every call).
      this.words = keep(fromTypedArray(m.prompts.verbalizer.words, [m.prompts.verbalizer.words.length]));
      this.classOf = keep(fromTypedArray(m.prompts.verbalizer.classOf, [m.prompts.verbalizer.classOf.length]));
    } else {
      this.words = null;
      this.classOf = null;
    }
  }

  get module(): BertForSequenceClassification | BertForMaskedLM {
    return this.m.model;
  }

  /** Sequences per example: 1, or one per template. */
  get sequencesPerExample(): number {
    return this.m.method === 'mvp' ? this.m.prompts.templates.length : 1;
  }

  /**
   * The batch of these examples: sequence e·T + t for example e and template t (mvp), with each [MASK] row.
   * Packed (unpadded) unless `padded`: ASA's per-layer [B, L, L] attention bias needs the padded layout.
   */
  batchOf(examples: readonly EncodedExample[], opts: { padded?: boolean; padTo?: number } = {}): { batch: EncoderBatch; maskRows: Tensor | null } {
    if (examples.length === 0) throw new ClozeError('E_VALUE', 'Expected at least one example for a batch but received none');
    return batchOfExamples(this.tok, examples, this.m.method === 'mvp' ? this.m.prompts.templates : null, this.maxLength, !opts.padded, opts.padTo ?? 1);
  }

  /** Token counts of the sequences batchOf builds for these examples, in its order (e·T + t): no tensors. */
  sequenceLengths(examples: readonly EncodedExample[]): number[] {
    const templates = this.m.method === 'mvp' ? this.m.prompts.templates : [null];
    return examples.flatMap(([a, b]) => templates.map((t) => buildSequence(this.tok, a, b, t, this.maxLength).ids.length));
  }

  /** Class logits [B, C] of a batch built by batchOf. */
  classLogits(batch: EncoderBatch, maskRows: Tensor | null): Tensor {
    if (this.m.method === 'mlp-ft') return this.m.model.logits(batch);
    if (!maskRows) throw new ClozeError('E_VALUE', 'Expected the [MASK] rows of an mvp batch for maskRows but received none');
    const T = this.m.prompts.templates.length;
    const scores = this.m.model.labelWordLogits(batch, maskRows, this.words!);
    const B = scores.shape[0]! / T;
    return verbalizerPool(reshape(scores, [B, T, scores.shape[1]!]), this.classOf!, this.numClasses);
  }

  dispose(): void {
    this.words?.dispose();
    this.classOf?.dispose();
    this.m.model.dispose();
  }
}
