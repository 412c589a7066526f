/**
 * Scoring a fine-tuned classifier on labelled examples: the class
 * probabilities of every example (softmax of its class logits), then
 * accuracy, macro-F1 and the mean cross-entropy.
 */
import { noGrad, scope } from '../../autograd/mode.js';
import { classificationScores, type ClassificationScores } from '../../eval/classification.js';
import { argmax } from '../../ops/cross_entropy.js';
import { softmax } from '../../ops/softmax.js';
import type { EncodedExample, TextClassifier } from './classifier.js';

export interface FinetuneEval extends ClassificationScores {
  step: number;
  /** Fine-tuning epochs completed. */
  epoch: number;
  /** Mean cross-entropy of the true class. */
  loss: number;
}

/** Class probabilities [N, C] (row-major) and the most probable class (the first on ties) of the examples, in batches, in eval mode. */
export function classProbabilities(c: TextClassifier, examples: readonly EncodedExample[], batchSize: number): { probs: Float32Array; predicted: Int32Array } {
  const C = c.numClasses;
  const probs = new Float32Array(examples.length * C);
  const predicted = new Int32Array(examples.length);
  const wasTraining = c.module.training;
  c.module.eval();
  try {
    noGrad(() => {
      for (let i = 0; i < examples.length; i += batchSize) {
        scope(() => {
          const { batch, maskRows } = c.batchOf(examples.slice(i, i + batchSize));
          const logits = c.classLogits(batch, maskRows);
          probs.set(softmax(logits).to('cpu').toArray() as Float32Array, i * C);
          predicted.set(argmax(logits).to('cpu').toArray() as Int32Array, i);
        });
      }
    });
  } finally {
    c.module.train(wasTraining);
  }
  return { probs, predicted };
}

/** Accuracy, macro-F1 and the mean cross-entropy of the true class, from class probabilities [N, C] and predictions. */
export function scoresOf(probs: Float32Array, predicted: Int32Array, labels: Int32Array, numClasses: number): ClassificationScores & { loss: number } {
  let nll = 0;
  for (let i = 0; i < labels.length; i++) nll -= Math.log(Math.max(probs[i * numClasses + labels[i]!]!, 1e-30));
  return { ...classificationScores(predicted, labels, numClasses), loss: nll / Math.max(1, labels.length) };
}

export function evaluateClassifier(
  c: TextClassifier, examples: readonly EncodedExample[], labels: Int32Array, o: { batchSize: number; step: number; epoch: number },
): FinetuneEval {
  const { probs, predicted } = classProbabilities(c, examples, o.batchSize);
  return { step: o.step, epoch: o.epoch, ...scoresOf(probs, predicted, labels, c.numClasses) };
}
