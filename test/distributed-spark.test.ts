/**
 * Data-parallel SparK over MPI (issue 18): 2 ranks at per-rank batch 8 against 1 process at 16, sparse and
 * masked-dense, augmentation on. With synchronized BatchNorm (the default, as the official SparK's `sbn`) the
 * forward statistics, the loss and the first step's gradients are the single process's; with per-rank statistics
 * (--sync-bn false, PyTorch DDP's plain BatchNorm) the gradients are not, which is what makes the first check a test
 * of the synchronization. Skipped, with the reason in the name, where mpirun or an MPI build of the addon is missing.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { pretrain, type StepInfo } from '../src/tasks/pretrain.js';
import { writeImageFixture } from './helpers/image-fixture.js';
import { mpirun2, mpiSkipReason, params } from './helpers/mpi-run.js';

const skipReason = mpiSkipReason(join('src', 'tasks', 'pretrain.js'));
const root = mkdtempSync(join(tmpdir(), 'cloze-mpi-spark-'));
let data = '';
beforeAll(() => {
  data = writeImageFixture(join(root, 'images'), { train: 256, test: 64, classes: 4 });
});

/**
 * One step at lr 1 with AdamW's eps 10 and no weight decay: the update is g/(|g| + 10) ≈ g/10, so each parameter's
 * update is its gradient to 1e-3 (|g| ≤ 1e-2 here), where at a usual eps it would be lr·sign(g).
 */
const base = () => ({ task: 'spark', preset: 'spark-resnet-mini', data, epochs: 0, maxSteps: 1, saveEvery: 1, logEvery: 1, threads: 1, lr: 1, eps: 10, weightDecay: 0, warmupRatio: 0, probeImages: 64, probeEpochs: 1 });

/** Per parameter: max |update₁ − update₂| / max |update₁| (the running statistics: max |a − b|). */
function gradientGaps(init: Map<string, Float32Array>, a: Map<string, Float32Array>, b: Map<string, Float32Array>): Map<string, number> {
  const gaps = new Map<string, number>();
  for (const [k, w] of init) {
    const x = a.get(k)!;
    const y = b.get(k)!;
    let size = 0;
    let gap = 0;
    for (let i = 0; i < w.length; i++) {
      size = Math.max(size, Math.abs(x[i]! - w[i]!));
      gap = Math.max(gap, Math.abs(x[i]! - y[i]!));
    }
    gaps.set(k, k.includes('running_') ? gap : gap / (size || 1));
  }
  return gaps;
}

describe.skipIf(skipReason !== '')(`data-parallel SparK, 2 MPI ranks ${skipReason}`, () => {
  const runs = async (name: string, extra: Record<string, unknown>) => {
    const one: StepInfo[] = [];
    const r1 = await pretrain({ ...base(), ...extra, batchSize: 16, out: join(root, `${name}-one`) }, { output: null, onStep: (s) => one.push(s) });
    const r0 = await pretrain({ ...base(), ...extra, lr: 0, batchSize: 16, out: join(root, `${name}-init`) }, { output: null });
    const res = join(root, `${name}-two.result.json`);
    const run = await mpirun2(root, `${name}-two`, { config: { ...base(), ...extra, batchSize: 8, out: join(root, `${name}-two`) }, result: res }, 240);
    expect(run.stderr).not.toMatch(/failed/);
    expect(run.code).toBe(0);
    const two = JSON.parse(readFileSync(res, 'utf8')) as { steps: Array<{ step: number; loss: number }>; checkpoint: string };
    return { lossGap: Math.abs(one[0]!.loss - two.steps[0]!.loss), gaps: gradientGaps(params(r0.checkpoint!), params(r1.checkpoint!), params(two.checkpoint)) };
  };

  for (const mode of ['sparse', 'masked-dense'] as const) {
    it(`${mode}: 2 ranks at batch 8 with synchronized BatchNorm give 1 process at batch 16: loss, statistics, gradients`, async () => {
      const { lossGap, gaps } = await runs(mode, { sparkMode: mode });
      // The forward is the single process's to float32 round-off: the same images and masks, statistics summed in
      // float64 in another order (measured 3e-8 on the loss, 1.2e-7 on the running variances).
      expect(lossGap).toBeLessThanOrEqual(1e-6);
      const stats = [...gaps].filter(([k]) => k.includes('running_'));
      expect(stats.length).toBeGreaterThan(20);
      for (const [k, g] of stats) expect(g, k).toBeLessThanOrEqual(1e-6);
      // The gradients: ReLU and ReLU6 are not differentiable at their kinks, so an activation that round-off puts on
      // the other side of one switches its whole gradient. Measured (sparse): of decoder.blocks.2.bn1's biases one
      // channel differs, its weights not at all (Σdy differs, Σdy·x̂ does not: the element sits at x̂ ≈ 0, the
      // kink of ReLU6 at initialisation); what lies upstream of that layer (the rest of the decoder, the encoder)
      // then differs by up to 6.4e-3 of each parameter's largest update, what lies downstream (its second conv,
      // the output projection) by under 3e-6. Per-rank statistics differ by up to 2.3 (the next test).
      for (const [k, g] of gaps) if (!k.includes('running_')) expect(g, k).toBeLessThanOrEqual(2e-2);
    }, 300_000);
  }

  it('with --sync-bn false, each rank normalises by its own batch: the gradients are not the single process\'s', async () => {
    const { gaps } = await runs('own', { syncBn: false });
    expect(Math.max(...[...gaps].filter(([k]) => !k.includes('running_')).map(([, g]) => g))).toBeGreaterThan(0.3);
    expect(Math.max(...[...gaps].filter(([k]) => k.includes('running_')).map(([, g]) => g))).toBeGreaterThan(1e-4);
  }, 300_000);
});
