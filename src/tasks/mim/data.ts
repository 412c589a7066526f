/**
 * The data and model shape of a MIM run: the images (Fashion-MNIST by
 * default) with their channel statistics, the seeded subsets for training and
 * for the probe, and the ViT config (a checkpoint's own when resuming or
 * starting from one, else the preset's).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { channelStats } from '../../data/images/index.js';
import { limit, openImageData, type ImageData } from '../../data/images/open.js';
import { ClozeError } from '../../errors.js';
import type { Normalisation } from '../../eval/probe.js';
import { checkVitConfig, vitPreset, type VitConfig } from '../../models/vit/config.js';
import type { MimRunConfig } from './config.js';

function readModelConfig(dir: string): { vit: VitConfig } {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new ClozeError('E_IO', `Expected a config.json at ${path} but received no such file`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ClozeError('E_VALUE', `Expected JSON in ${path} but received text that does not parse (${(e as Error).message})`);
  }
  const p = parsed as { model_type?: unknown; vit?: VitConfig };
  if (p.model_type !== 'cloze-mim' || typeof p.vit !== 'object' || p.vit === null) {
    throw new ClozeError('E_VALUE', `Expected a cloze MIM checkpoint config (model_type "cloze-mim" with a vit object) in ${path} but received model_type ${JSON.stringify(p.model_type)}`);
  }
  checkVitConfig(p.vit, path);
  return { vit: p.vit };
}

/** The model config of a run: the checkpoint's own when resuming or starting from one, else the preset's. */
export function modelConfigFor(cfg: Pick<MimRunConfig, 'initFrom' | 'preset'>, resumeDir: string | null): VitConfig {
  const from = resumeDir ?? cfg.initFrom;
  return from ? readModelConfig(from).vit : vitPreset(cfg.preset).config;
}

export interface MimRunParts {
  config: VitConfig;
  data: ImageData;
  norm: Normalisation;
  probeTrain: ImageData['train'];
}

export async function loadMimData(cfg: Pick<MimRunConfig, 'data' | 'preset' | 'trainImages' | 'probeImages' | 'seed'>, config: VitConfig): Promise<MimRunParts> {
  const data = await openImageData(cfg.data, { size: config.imageSize, channels: config.channels });
  if (data.train.channels !== config.channels) {
    throw new ClozeError('E_SHAPE', `Expected images with ${config.channels} channel(s) for preset ${cfg.preset} but received ${data.train.channels} in ${data.source}`);
  }
  const stats = channelStats(data.train);
  const train = limit(data.train, cfg.trainImages, cfg.seed);
  return {
    config,
    data: { ...data, train },
    norm: { mean: stats.mean, std: stats.std },
    probeTrain: limit(data.train, cfg.probeImages, cfg.seed + 1),
  };
}
