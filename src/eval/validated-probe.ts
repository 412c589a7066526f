/**
 * A linear probe scored on a validation split and on the test set by the same classifier, so that a
 * "best" point can be chosen on validation and reported on test (choosing on test overstates it).
 */
import type { ImageSet } from '../data/images/index.js';
import { extractFeatures, fitLinearClassifier, score, standardise, type ClassifierResult, type FeatureEncoder, type ProbeOptions } from './probe.js';

export interface ValidatedProbe {
  validation: ClassifierResult;
  test: ClassifierResult;
}

/** Probes `encoder` (frozen) on `train`, then scores the one fitted classifier on `validation` and `test`. */
export function validatedProbe(encoder: FeatureEncoder, train: ImageSet, validation: ImageSet, test: ImageSet, o: ProbeOptions): ValidatedProbe {
  const D = encoder.featureDim;
  const trainFeats = extractFeatures(encoder, train, o.norm, o.batchSize);
  const valFeats = extractFeatures(encoder, validation, o.norm, o.batchSize);
  const testFeats = extractFeatures(encoder, test, o.norm, o.batchSize);
  // One call standardises both held-out sets with the training statistics (a second call would restandardise train).
  const held = new Float32Array(valFeats.length + testFeats.length);
  held.set(valFeats);
  held.set(testFeats, valFeats.length);
  standardise(trainFeats, held, D);
  const classes = Math.max(train.classes.length, 1);
  const head = fitLinearClassifier(trainFeats, train.labels, D, classes, o);
  try {
    const tr = score(head, trainFeats, train.labels, D);
    const on = (feats: Float32Array, labels: Int32Array): ClassifierResult => {
      const r = score(head, feats, labels, D);
      return { accuracy: r.accuracy, loss: r.loss, trainAccuracy: tr.accuracy };
    };
    return { validation: on(held.slice(0, valFeats.length), validation.labels), test: on(held.slice(valFeats.length), test.labels) };
  } finally {
    head.dispose();
  }
}
