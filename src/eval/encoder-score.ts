/**
 * Scoring a pre-trained image encoder on labelled images, the same way for
 * every image task: a linear probe on the probe subset, or fine-tuning the
 * whole encoder with a linear head (MAE's recipe, FINETUNE_RECIPE) on a seeded subset of the training set;
 * top-1 on the test set.
 */
import type { ImageSet } from '../data/images/index.js';
import { limit } from '../data/images/open.js';
import { ClozeError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { finetuneEncoder, linearProbe, type ClassifierResult, type FeatureEncoder, type FinetuneRecipe, type Normalisation } from './probe.js';

/** An encoder with the images it is scored on; the task that built it owns its memory. */
export interface EncoderUnderTest {
  encoder: FeatureEncoder;
  /** The whole training set (fine-tuning draws its subset from it). */
  train: ImageSet;
  /** The probe's training subset. */
  probeTrain: ImageSet;
  test: ImageSet;
  norm: Normalisation;
  dispose(): void;
}

export interface ScoreOptions {
  probeEpochs: number;
  /** > 0: fine-tune for this many epochs instead of probing. */
  finetuneEpochs?: number;
  /** Training images for fine-tuning (0: all). */
  finetuneImages?: number;
  /** Fine-tuning recipe fields over FINETUNE_RECIPE (MAE's, scaled to our sizes). */
  finetune?: Partial<FinetuneRecipe>;
  /** The probe's lr, or fine-tuning's absolute peak lr (overriding the recipe's blr·batch/256). */
  lr?: number;
  seed: number;
  onEpoch?: (epoch: number, loss: number) => void;
  /** Fine-tuning: also score this held-out split (never trained on), e.g. to choose the lr. */
  validation?: ImageSet;
}

export interface EncoderScore extends ClassifierResult {
  /** Fine-tuning with a validation split: its top-1. */
  validationAccuracy?: number;
  mode: 'linear-probe' | 'finetune';
  trainImages: number;
  testImages: number;
}

export function scoreEncoder(e: EncoderUnderTest, o: ScoreOptions): EncoderScore {
  const ft = (o.finetuneEpochs ?? 0) > 0;
  const train = ft ? limit(e.train, o.finetuneImages ?? 0, o.seed + 2) : e.probeTrain;
  const r = ft
    ? finetuneEncoder(e.encoder, train, e.test, { ...o.finetune, epochs: o.finetuneEpochs!, lr: o.lr, seed: o.seed, norm: e.norm, onEpoch: o.onEpoch, validation: o.validation })
    : linearProbe(e.encoder, train, e.test, { epochs: o.probeEpochs, lr: o.lr, seed: o.seed, norm: e.norm });
  return { ...r, mode: ft ? 'finetune' : 'linear-probe', trainImages: train.n, testImages: e.test.n };
}

/** The encoder.* weights of a pre-training checkpoint, with the prefix dropped. */
export function encoderWeights(model: Record<string, Tensor>, dir: string): Record<string, Tensor> {
  const weights = Object.fromEntries(Object.entries(model).filter(([k]) => k.startsWith('encoder.')).map(([k, t]) => [k.slice('encoder.'.length), t]));
  if (Object.keys(weights).length === 0) throw new ClozeError('E_VALUE', `Expected encoder.* weights in ${dir}/model.safetensors but received none`);
  return weights;
}
