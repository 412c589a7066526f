/**
 * The MIM task of the shared training loop: images → augmentation → the
 * method's masking and loss → AdamW, with linear probes at fixed epoch
 * intervals as the evaluation. Checkpoints carry the ViT config and the
 * method settings in config.json, so `cloze eval` and resume rebuild the model
 * from the directory alone.
 */
import type { JsonValue } from '../../checkpoint/checkpoint.js';
import { ClozeError } from '../../errors.js';
import { scale } from '../../ops/elementwise.js';
import { linearProbe, type ProbeResult } from '../../eval/probe.js';
import type { TrainTask } from '../../train/loop.js';
import { partValues } from '../../train/loss-parts.js';
import { epochPlan } from '../../train/epochs.js';
import { setupImageTraining } from '../../train/image-setup.js';
import type { Progress } from '../../train/progress.js';
import type { MimRunConfig } from './config.js';
import { loadMimData, modelConfigFor, type MimRunParts } from './data.js';
import type { Communicator } from '../../distributed/index.js';
import { MimModel } from './model.js';
import { mimSettings } from './settings.js';

/** Settings that define the method: a resumed run must keep them. */
const METHOD_FIELDS = [
  'method', 'imageMasking', 'maskRatio', 'maskPatch', 'normPixLoss', 'mto', 'mtoExclusion', 'mtoBlocks', 'mtoSingularityWeight',
  'mtoSingularityBlocks', 'mtoEntropyWeight', 'sbamDelta', 'sbamThreshold', 'hpmWeight', 'hpmEmaStart', 'hpmEmaEnd', 'hpmEmaEpochs', 'seed',
] as const satisfies ReadonlyArray<keyof MimRunConfig>;

export async function buildMimTask(
  cfg: MimRunConfig, outDir: string, resumeDir: string | null, progress: Progress | null, comm: Communicator | null = null,
): Promise<TrainTask<ProbeResult> & { totalSteps: number; perEpoch: number; mim: MimModel; parts: MimRunParts }> {
  const ranks = comm && comm.size > 1 ? comm : null;
  const config = modelConfigFor(cfg, resumeDir);
  const settings = mimSettings(cfg, cfg.method === 'mae' ? config.decoderDepth : config.depth);
  const parts = await loadMimData(cfg, config);
  const { batcher, model, optimizer, placement } = setupImageTraining(cfg, resumeDir, parts.data.train, parts.norm, config.imageSize, {
    build: () => new MimModel(config, settings, cfg.seed),
    trained: (m) => m.trainableParameters(),
    // A checkpoint without HPM's teacher: start the teacher from the loaded student, not from random weights.
    afterInit: (m, init) => {
      if (!Object.keys(init.model).some((k) => k.startsWith('teacher.'))) m.syncTeacher();
    },
    ranks: ranks?.size ?? 1,
  });
  const perEpoch = batcher.perEpoch;
  const { totalSteps, totalEpochs, epochAt, shouldProbe } = epochPlan(cfg, perEpoch);
  progress?.note(
    `mim: ${cfg.method}${cfg.mto ? '+mto' : ''}, masking ${settings.masking} ${settings.maskRatio}, preset ${cfg.preset}, ` +
      `${parts.data.train.n} training images (${perEpoch} steps/epoch), ${model.trainableParameters().reduce((a, p) => a + p.size, 0)} trained parameters`,
  );
  const configJson: { [key: string]: JsonValue } = {
    model_type: 'cloze-mim',
    vit: JSON.parse(JSON.stringify(config)),
    method: cfg.method,
    mto: cfg.mto,
    image_masking: settings.masking,
    norm: { mean: parts.norm.mean, std: parts.norm.std },
  };

  return {
    model,
    mim: model,
    parts,
    optimizer,
    unit: 'img',
    name: 'MIM',
    totalSteps,
    perEpoch,
    microBatch(k) {
      const ctx = { k, epoch: k / perEpoch, epochs: totalEpochs };
      if (!ranks) {
        const b = batcher.batch(k);
        // The images go to the model's device (and dtype) once; the step runs there.
        const r = model.loss(placement.input(b.images), ctx);
        return { loss: r.loss, units: b.images.shape[0]!, parts: { ...r.parts, maskRatio: r.maskRatio } };
      }
      // Data parallel: this rank's rows of the global batch, with their crops and masks. Every image masks the same
      // number of patches, so the rank's mean over its masked patches times rows/batch is its share of the global
      // mean: the shares (and their gradients) SUM to the single process's. The parts are shares too (the loop sums them).
      const shard = { before: ranks.rank * cfg.batchSize, rows: cfg.batchSize, batch: batcher.batchSize };
      const b = batcher.batch(k, shard);
      const r = model.loss(placement.input(b.images), { ...ctx, shard, sumAcross: (xs) => ranks.sumNumbers(xs) });
      const w = shard.rows / shard.batch;
      const shares = Object.fromEntries(Object.entries({ ...partValues(r.parts), maskRatio: r.maskRatio }).map(([n, x]) => [n, x * w]));
      return { loss: scale(r.loss, w), units: b.images.shape[0]!, parts: shares };
    },
    afterStep: (step) => model.updateTeacher(epochAt(step)),
    shouldEvaluate: shouldProbe,
    evaluate(step) {
      const r = linearProbe(model.encoder, parts.probeTrain, parts.data.test, { epochs: cfg.probeEpochs, seed: cfg.seed, norm: parts.norm });
      return { step, epoch: Math.round(epochAt(step) * 1000) / 1000, accuracy: r.accuracy, loss: r.loss, trainAccuracy: r.trainAccuracy };
    },
    describe: (e) => `probe at epoch ${e.epoch} (step ${e.step}): top-1 ${(100 * e.accuracy).toFixed(2)}%  loss ${e.loss.toFixed(4)}  train top-1 ${(100 * e.trainAccuracy).toFixed(2)}%`,
    checkpoint: () => ({ config: configJson }),
    restore(ck) {
      // Exact resume needs the same method: refuse settings that differ from the run being resumed.
      const saved = (ck.extra.run ?? {}) as Record<string, unknown>;
      for (const f of METHOD_FIELDS) {
        if (f in saved && JSON.stringify(saved[f]) !== JSON.stringify(cfg[f])) {
          throw new ClozeError('E_VALUE', `Expected ${f} ${JSON.stringify(saved[f])} (the setting of the run in ${ck.dir}) for resume but received ${JSON.stringify(cfg[f])}`);
        }
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
