/** A SparK checkpoint's convnet encoder (or an untrained one) with the images it is scored on. */
import type { LoadedCheckpoint } from '../../checkpoint/checkpoint.js';
import { encoderWeights, type EncoderUnderTest } from '../../eval/encoder-score.js';
import type { SparkRunConfig } from './config.js';
import { loadSparkData, sparkConfigFor } from './data.js';
import { SparkFeatures } from './features.js';
import { SparkModel } from './model.js';

/** `ck` null: the preset's convnet at its seeded initialisation (the from-scratch baseline). */
export async function openSparkEncoder(
  cfg: Pick<SparkRunConfig, 'preset' | 'data' | 'seed' | 'probeImages'>, ck: LoadedCheckpoint | null,
): Promise<EncoderUnderTest> {
  // Only the encoder is read, so checkpoints of either decoder layout evaluate.
  const config = sparkConfigFor({ preset: cfg.preset, initFrom: ck?.dir ?? null }, null, { decoder: false });
  const data = await loadSparkData({ ...cfg, trainImages: 0 }, config);
  // Scoring runs the encoder on whole images: the mode and ratio only matter for pre-training.
  const model = new SparkModel(config, { mode: 'masked-dense', maskRatio: 0.6, seed: cfg.seed });
  try {
    if (ck) model.encoder.loadStateDict(encoderWeights(ck.model, ck.dir));
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { encoder: new SparkFeatures(model), train: data.train, probeTrain: data.probeTrain, test: data.test, norm: data.norm, dispose: () => model.dispose() };
}
