// The tasks that accept --device cuda besides MLM (MIM, SparK, fine-tuning): a
// few steps on cuda against the same run on the CPU. fp32 on the device must
// follow the CPU's losses closely (float32 sums in another order); bf16 must
// give finite losses near them. Runs only where a GPU answers (npm run
// test:cuda); test/device-plumbing.test.ts checks the plumbing without one.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { pretrain } from '../../src/tasks/pretrain.js';
import { finetune } from '../../src/tasks/run-finetune.js';
import { describeCuda } from '../helpers/cuda-harness.js';
import { writeImageFixture } from '../helpers/image-fixture.js';
import { pretrainTinyEncoder } from '../helpers/tiny-encoder.js';

const STEPS = 3;

type Device = 'cpu' | 'cuda';
type Go = (device: Device, precision: 'fp32' | 'bf16', out: string, onStep: (s: { loss: number }) => void) => Promise<unknown>;

/** Losses of the run on the CPU (fp32), on cuda in fp32 and in bf16. */
async function runs(root: string, name: string, go: Go): Promise<{ cpu: number[]; fp32: number[]; bf16: number[] }> {
  const one = async (device: Device, precision: 'fp32' | 'bf16'): Promise<number[]> => {
    const losses: number[] = [];
    await go(device, precision, join(root, `${name}-${device}-${precision}`), (s) => losses.push(s.loss));
    return losses;
  };
  return { cpu: await one('cpu', 'fp32'), fp32: await one('cuda', 'fp32'), bf16: await one('cuda', 'bf16') };
}

function expectNear(r: { cpu: number[]; fp32: number[]; bf16: number[] }): void {
  expect(r.cpu).toHaveLength(STEPS);
  expect(r.fp32).toHaveLength(STEPS);
  expect(r.bf16).toHaveLength(STEPS);
  r.cpu.forEach((c, i) => {
    expect(Math.abs(r.fp32[i]! - c)).toBeLessThanOrEqual(2e-3 * Math.abs(c) + 1e-5);
    expect(Number.isFinite(r.bf16[i]!)).toBe(true);
  });
  // bf16 rounds every operand (and mask-tune's scores near the threshold may flip): the first loss, of the same
  // weights and masks, within 10%, which still tells a sound step from a broken one.
  expect(Math.abs(r.bf16[0]! - r.cpu[0]!)).toBeLessThanOrEqual(0.1 * Math.abs(r.cpu[0]!));
}

describeCuda('MIM, SparK and fine-tuning steps on cuda against the CPU', () => {
  const root = mkdtempSync(join(tmpdir(), 'cloze-cuda-tasks-'));
  let images = '';
  let pre = '';
  const textData = join(__dirname, '..', 'fixtures', 'finetune', 'who.jsonl');
  const verbalizer = join(root, 'verbalizer.json');
  beforeAll(async () => {
    images = writeImageFixture(join(root, 'images'), { train: 64, test: 32, classes: 4 });
    pre = await pretrainTinyEncoder(root);
    writeFileSync(verbalizer, JSON.stringify({ animal: ['cat', 'dog', 'bird'], person: ['friend', 'teacher', 'farmer'] }));
  }, 180_000);

  const mim: Array<[string, Record<string, unknown>]> = [
    ['mae+mto', { method: 'mae', mto: true }],
    ['simmim+mto', { method: 'simmim', mto: true }],
    ['mae+sbam', { method: 'mae', imageMasking: 'sbam' }],
    ['mae+hpm', { method: 'mae', imageMasking: 'hpm' }],
  ];
  for (const [name, o] of mim) {
    it(`mim ${name}: ${STEPS} steps in fp32 and bf16`, async () => {
      const r = await runs(root, `mim-${name}`, (device, precision, out, onStep) =>
        pretrain({ task: 'mim', preset: 'vit-micro-fmnist', data: images, batchSize: 16, trainImages: 64, augment: false, probeImages: 32, probeEpochs: 1, epochs: 0, maxSteps: STEPS, ...o, device, precision, out }, { output: null, onStep }));
      expectNear(r);
    }, 60_000);
  }

  for (const mode of ['sparse', 'masked-dense']) {
    it(`spark ${mode}: ${STEPS} steps in fp32 and bf16`, async () => {
      const r = await runs(root, `spark-${mode}`, (device, precision, out, onStep) =>
        pretrain({ task: 'spark', preset: 'spark-resnet-mini', sparkMode: mode, data: images, batchSize: 16, augment: false, probeImages: 32, probeEpochs: 1, epochs: 0, maxSteps: STEPS, device, precision, out }, { output: null, onStep }));
      expectNear(r);
    }, 60_000);
  }

  const ft: Array<[string, Record<string, unknown>]> = [
    ['mlp-ft --adv', { method: 'mlp-ft', adv: true }],
    ['mvp --asa', { method: 'mvp', asa: true, template: ['[MASK] :'], verbalizer }],
    ['mask-tune', { method: 'mask-tune' }],
  ];
  for (const [name, o] of ft) {
    it(`finetune ${name}: ${STEPS} steps in fp32 and bf16`, async () => {
      const r = await runs(root, `ft-${name.replace(/\W+/g, '-')}`, (device, precision, out, onStep) =>
        finetune({ taskData: textData, initFrom: pre, maxLength: 24, batchSize: 16, epochs: 0, maxSteps: STEPS, lr: 1e-3, seed: 3, ...o, device, precision, out }, { output: null, onStep }));
      expectNear(r);
    }, 60_000);
  }
});
