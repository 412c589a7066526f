/**
 * The SparK task of the shared training loop: images zero-padded to the
 * preset's size, SparK's masking, the sparse (or masked-dense) encoder,
 * densify, the light decoder and the masked per-patch MSE; linear probes of
 * the encoder (global-average-pooled last stage) as the evaluation.
 * Where we differ from the paper's recipe: AdamW instead of LAMB, a fixed
 * weight decay instead of the 0.04 → 0.2 cosine ramp, and a base lr of 2e-3
 * (not 2e-4) with one warmup epoch, for runs of a few epochs on small images.
 */
import type { JsonValue } from '../../checkpoint/checkpoint.js';
import { ClozeError } from '../../errors.js';
import { SPARK_DECODER_LAYOUT } from '../../models/spark/decoder.js';
import { linearProbe, type ProbeResult } from '../../eval/probe.js';
import type { TrainTask } from '../../train/loop.js';
import { partValues } from '../../train/loss-parts.js';
import { epochPlan } from '../../train/epochs.js';
import { setupImageTraining } from '../../train/image-setup.js';
import type { Progress } from '../../train/progress.js';
import type { SparkRunConfig } from './config.js';
import { loadSparkData, sparkConfigFor } from './data.js';
import { SparkFeatures } from './features.js';
import { SparkModel } from './model.js';
import type { Communicator } from '../../distributed/index.js';
import { setBatchNormSync } from '../../models/spark/layers.js';
import { scale } from '../../ops/elementwise.js';

export async function buildSparkTask(
  cfg: SparkRunConfig, outDir: string, resumeDir: string | null, progress: Progress | null, comm: Communicator | null = null,
): Promise<TrainTask<ProbeResult> & { totalSteps: number; perEpoch: number; spark: SparkModel }> {
  void outDir;
  const ranks = comm && comm.size > 1 ? comm : null;
  const config = sparkConfigFor(cfg, resumeDir, { decoder: true });
  const data = await loadSparkData(cfg, config);
  const { batcher, model, optimizer, placement } = setupImageTraining(cfg, resumeDir, data.train, data.norm, [config.imageSize, config.imageSize], {
    build: () => new SparkModel(config, { mode: cfg.sparkMode as 'sparse' | 'masked-dense', maskRatio: cfg.maskRatio, seed: cfg.seed }),
    trained: (m) => m.parameters(),
    ranks: ranks?.size ?? 1,
  });
  // Synchronized statistics make N ranks at batch b train as one process at N·b (test/distributed-spark.test.ts).
  // On cuda the statistics are summed over MPI on the host too (syncBatchNorm2d copies 2C + 1 numbers per layer).
  if (ranks && cfg.syncBn) setBatchNormSync(model, ranks);
  const feats = new SparkFeatures(model);
  const perEpoch = batcher.perEpoch;
  const { totalSteps, epochAt, shouldProbe } = epochPlan(cfg, perEpoch);
  progress?.note(`spark: ${config.arch} (${cfg.preset}), ${cfg.sparkMode}, ratio ${cfg.maskRatio}, ${data.train.n} training images (${perEpoch} steps/epoch), ${model.numParameters()} parameters`);
  const configJson: { [key: string]: JsonValue } = {
    model_type: 'cloze-spark', spark: JSON.parse(JSON.stringify(config)), decoder_layout: SPARK_DECODER_LAYOUT, mode: cfg.sparkMode, norm: { mean: data.norm.mean, std: data.norm.std },
  };
  return {
    model,
    spark: model,
    optimizer,
    unit: 'img',
    name: 'SparK',
    totalSteps,
    perEpoch,
    microBatch(k) {
      if (!ranks) {
        const b = batcher.batch(k);
        // The images go to the model's device (and dtype) once; the masks follow them there.
        const r = model.loss(placement.input(b.images), k);
        return { loss: r.loss, units: b.images.shape[0]!, parts: r.parts };
      }
      // Data parallel: this rank's rows of the global batch and of its masks. Every image masks the same number of
      // cells, so the rank's mean times rows/batch is its share of the global mean; the shares (and their gradients,
      // and the logged parts) sum over the ranks to the single process's.
      const shard = { before: ranks.rank * cfg.batchSize, rows: cfg.batchSize, batch: batcher.batchSize };
      const b = batcher.batch(k, shard);
      const r = model.loss(placement.input(b.images), k, undefined, shard);
      const w = shard.rows / shard.batch;
      return { loss: scale(r.loss, w), units: b.images.shape[0]!, parts: Object.fromEntries(Object.entries(partValues(r.parts)).map(([n, x]) => [n, x * w])) };
    },
    shouldEvaluate: shouldProbe,
    evaluate(step) {
      const r = linearProbe(feats, data.probeTrain, data.test, { epochs: cfg.probeEpochs, seed: cfg.seed, norm: data.norm });
      return { step, epoch: Math.round(epochAt(step) * 1000) / 1000, accuracy: r.accuracy, loss: r.loss, trainAccuracy: r.trainAccuracy };
    },
    describe: (e) => `probe at epoch ${e.epoch} (step ${e.step}): top-1 ${(100 * e.accuracy).toFixed(2)}%  loss ${e.loss.toFixed(4)}`,
    checkpoint: () => ({ config: configJson }),
    restore(ck) {
      const saved = (ck.extra.run ?? {}) as Record<string, unknown>;
      for (const f of ['maskRatio', 'seed'] as const) {
        if (f in saved && saved[f] !== cfg[f]) throw new ClozeError('E_VALUE', `Expected ${f} ${JSON.stringify(saved[f])} (the setting of the run in ${ck.dir}) for resume but received ${JSON.stringify(cfg[f])}`);
      }
    },
    dispose() {
      batcher.dispose();
      optimizer.dispose();
      model.dispose();
      placement.release();
    },
  };
}
