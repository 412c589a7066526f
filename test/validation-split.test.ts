/** The validation split held out of the training images, and the probe scored on it and on test by one classifier. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { holdOut, subset, type ImageSet } from '../src/data/images/dataset.js';
import { limit } from '../src/data/images/open.js';
import { linearProbe } from '../src/eval/probe.js';
import { validatedProbe } from '../src/eval/validated-probe.js';
import { resolveRun } from '../src/tasks/pretrain.js';
import { TASKS } from '../src/tasks/registry.js';
import { writeImageFixture } from './helpers/image-fixture.js';

function toySet(n: number, classes: number): ImageSet {
  // Image i is one pixel of value i % 256 plus a second of value i >> 8: every image is distinct and names its index.
  const images = new Uint8Array(n * 2);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    images[2 * i] = i % 256;
    images[2 * i + 1] = i >> 8;
    labels[i] = (i * 7) % classes;
  }
  return { images, labels, n, channels: 1, height: 1, width: 2, classes: Array.from({ length: classes }, (_, c) => `c${c}`), source: 'toy' };
}
const idOf = (s: ImageSet, j: number): number => s.images[2 * j]! + 256 * s.images[2 * j + 1]!;

describe('holdOut', () => {
  const set = toySet(1000, 10);

  it('holds out a class-stratified seeded split disjoint from the rest, the two covering the set', () => {
    const { held, rest, heldIndices, restIndices } = holdOut(set, 100, 5);
    expect(held.n).toBe(100);
    expect(rest.n).toBe(900);
    const ids = (s: ImageSet): number[] => Array.from({ length: s.n }, (_, j) => idOf(s, j));
    expect(ids(held)).toEqual(heldIndices);
    expect(ids(rest)).toEqual(restIndices);
    const heldSet = new Set(ids(held));
    expect(ids(rest).filter((i) => heldSet.has(i))).toEqual([]);
    expect([...ids(held), ...ids(rest)].sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    // 100 images per class: 10 of each held out.
    for (let c = 0; c < 10; c++) expect(held.labels.filter((l) => l === c).length).toBe(10);
    for (let j = 0; j < held.n; j++) expect(held.labels[j]).toBe(set.labels[idOf(held, j)]);
    // Seeded: the same split again, another with another seed; subset draws the same images.
    expect(holdOut(set, 100, 5).heldIndices).toEqual(heldIndices);
    expect(holdOut(set, 100, 6).heldIndices).not.toEqual(heldIndices);
    expect(ids(subset(set, 100, 5))).toEqual(heldIndices);
  });

  it('keeps the training subsets drawn from the rest off the validation images', () => {
    const { held, rest } = holdOut(set, 100, 5);
    const heldIds = new Set(Array.from({ length: held.n }, (_, j) => idOf(held, j)));
    const probeTrain = limit(rest, 300, 1);
    for (let j = 0; j < probeTrain.n; j++) expect(heldIds.has(idOf(probeTrain, j))).toBe(false);
  });

  it('refuses a split that leaves nothing to train on, naming it', () => {
    expect(() => holdOut(set, 1000, 0)).toThrow(/validation images/);
    expect(() => holdOut(set, 0, 0)).toThrow(/validation images/);
  });
});

describe('validatedProbe', () => {
  let data = '';
  beforeAll(() => {
    data = writeImageFixture(join(mkdtempSync(join(tmpdir(), 'cloze-val-')), 'images'), { train: 256, test: 64, classes: 4 });
  });

  it('scores one classifier on validation and on test: each figure equals linearProbe\'s on that set', async () => {
    const e = await TASKS.mim.openEncoder!(resolveRun({ task: 'mim', preset: 'vit-micro-fmnist', data, probeImages: 64 }), null);
    try {
      const { held, rest } = holdOut(e.train, 48, 3);
      const train = limit(rest, 128, 1);
      const o = { epochs: 15, seed: 4, norm: e.norm };
      const v = validatedProbe(e.encoder, train, held, e.test, o);
      // linearProbe standardises with the same training statistics and trains the same seeded classifier.
      const onTest = linearProbe(e.encoder, train, e.test, o);
      const onVal = linearProbe(e.encoder, train, held, o);
      expect(v.test.accuracy).toBe(onTest.accuracy);
      expect(v.test.loss).toBeCloseTo(onTest.loss, 5);
      expect(v.validation.accuracy).toBe(onVal.accuracy);
      expect(v.validation.loss).toBeCloseTo(onVal.loss, 5);
      expect(v.validation.trainAccuracy).toBe(v.test.trainAccuracy);
    } finally {
      e.dispose();
    }
  }, 60_000);
});
