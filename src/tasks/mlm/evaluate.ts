/** Masked-token loss, accuracy and perplexity on the held-out split. */
import { scope } from '../../autograd/mode.js';
import type { PackedCorpus } from '../../data/packing.js';
import type { BertForMaskedLM } from '../../models/bert/model.js';
import type { MaskingPlan } from './masking-plan.js';

export interface EvalResult {
  step: number;
  loss: number;
  accuracy: number;
  perplexity: number;
  maskedTokens: number;
  /** The masking ratio evaluated at. */
  maskRatio: number;
}

/** Seed stream of evaluation masking: fixed, so evaluations compare across steps and runs. */
export const EVAL_SEED_OFFSET = 1_000_003;

export function evaluateMlm(
  model: BertForMaskedLM, corpus: PackedCorpus, plan: MaskingPlan,
  /** maskRatio: the evaluation's (evalMaskRatioOf), not necessarily the training one. */
  o: { seed: number; batchSize: number; maxBatches: number; step: number; maskRatio: number; split?: 'eval' | 'train' },
): EvalResult {
  const wasTraining = model.training;
  model.eval();
  let lossSum = 0;
  let correct = 0;
  let count = 0;
  let k = 0;
  for (const b of corpus.batches(o.split ?? 'eval', o.batchSize)) {
    if (k >= o.maxBatches) break;
    scope(() => {
      const mb = plan.build(b, o.seed + EVAL_SEED_OFFSET, k, o.maskRatio);
      if (mb.maskedCount > 0) {
        const acc = model.accuracy(mb.batch);
        lossSum += model.loss(mb.batch).item() * acc.count;
        correct += acc.correct;
        count += acc.count;
      }
    });
    k++;
  }
  model.train(wasTraining);
  const loss = count > 0 ? lossSum / count : NaN;
  return { step: o.step, loss, accuracy: count > 0 ? correct / count : NaN, perplexity: Math.exp(loss), maskedTokens: count, maskRatio: o.maskRatio };
}
