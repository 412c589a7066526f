/** A MIM checkpoint's ViT encoder (or an untrained one) with the images it is scored on. */
import type { LoadedCheckpoint } from '../../checkpoint/checkpoint.js';
import { encoderWeights, type EncoderUnderTest } from '../../eval/encoder-score.js';
import { VitEncoder } from '../../models/vit/encoder.js';
import type { MimRunConfig } from './config.js';
import { loadMimData, modelConfigFor } from './data.js';

/** `ck` null: the preset's encoder at its seeded initialisation (the no-pre-training baseline). */
export async function openMimEncoder(
  cfg: Pick<MimRunConfig, 'preset' | 'data' | 'seed' | 'probeImages'>, ck: LoadedCheckpoint | null,
): Promise<EncoderUnderTest> {
  const config = modelConfigFor({ preset: cfg.preset, initFrom: ck?.dir ?? null }, null);
  const parts = await loadMimData({ ...cfg, trainImages: 0 }, config);
  const encoder = new VitEncoder(config, { seed: cfg.seed });
  try {
    if (ck) encoder.loadStateDict(encoderWeights(ck.model, ck.dir));
  } catch (e) {
    encoder.dispose();
    throw e;
  }
  return { encoder, train: parts.data.train, probeTrain: parts.probeTrain, test: parts.data.test, norm: parts.norm, dispose: () => encoder.dispose() };
}
