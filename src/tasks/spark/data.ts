/**
 * The data and model shape of a SparK run: the images zero-padded to the
 * preset's size, their channel statistics and seeded subsets, and the convnet
 * config (a checkpoint's own when resuming or starting from one, else the
 * preset's).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { channelStats, padImages } from '../../data/images/index.js';
import { limit, openImageData } from '../../data/images/open.js';
import { ClozeError } from '../../errors.js';
import { checkSparkConfig, sparkPreset, type SparkConfig } from '../../models/spark/config.js';
import { SPARK_DECODER_LAYOUT } from '../../models/spark/decoder.js';
import type { SparkRunConfig } from './config.js';

/** `use.decoder`: the run loads the checkpoint's decoder too (resume, init-from), not only its encoder (eval). */
export function sparkConfigFor(cfg: Pick<SparkRunConfig, 'initFrom' | 'preset'>, resumeDir: string | null, use: { decoder: boolean }): SparkConfig {
  const from = resumeDir ?? cfg.initFrom;
  if (!from) return sparkPreset(cfg.preset).config;
  const path = join(from, 'config.json');
  if (!existsSync(path)) throw new ClozeError('E_IO', `Expected a config.json at ${path} but received no such file`);
  const p = JSON.parse(readFileSync(path, 'utf8')) as { model_type?: unknown; spark?: SparkConfig; decoder_layout?: unknown };
  if (p.model_type !== 'cloze-spark' || !p.spark) {
    throw new ClozeError('E_VALUE', `Expected a cloze SparK checkpoint config (model_type "cloze-spark") in ${path} but received model_type ${JSON.stringify(p.model_type)}`);
  }
  if (use.decoder && p.decoder_layout !== SPARK_DECODER_LAYOUT) {
    throw new ClozeError(
      'E_VALUE',
      `Expected decoder_layout ${JSON.stringify(SPARK_DECODER_LAYOUT)} (the official UNetBlock decoder) in ${path} but received ${JSON.stringify(p.decoder_layout ?? 'none')}: ` +
        'the checkpoint holds the earlier SparK decoder, whose weights do not fit; pre-train anew (its encoder can still be evaluated with cloze eval)',
    );
  }
  checkSparkConfig(p.spark, path);
  return p.spark;
}

export async function loadSparkData(cfg: Pick<SparkRunConfig, 'data' | 'preset' | 'trainImages' | 'probeImages' | 'seed'>, config: SparkConfig) {
  const raw = await openImageData(cfg.data, { size: [config.imageSize, config.imageSize], channels: config.channels });
  if (raw.train.channels !== config.channels) {
    throw new ClozeError('E_SHAPE', `Expected images with ${config.channels} channel(s) for preset ${cfg.preset} but received ${raw.train.channels} in ${raw.source}`);
  }
  const full = padImages(raw.train, config.imageSize);
  const test = padImages(raw.test, config.imageSize);
  const stats = channelStats(full);
  return { train: limit(full, cfg.trainImages, cfg.seed), test, probeTrain: limit(full, cfg.probeImages, cfg.seed + 1), norm: { mean: stats.mean, std: stats.std }, source: raw.source };
}
