/** The MIM part of a run's settings, checked for combinations the field table cannot express. */
import { ClozeError } from '../../errors.js';
import type { MimRunConfig } from './config.js';

export interface MtoSettings {
  exclusion: boolean;
  /** Blocks (from the first) with exclusion and the entropy term. */
  blocks: number;
  singularityWeight: number;
  singularityBlocks: number;
  entropyWeight: number;
}

export interface MimSettings {
  method: 'mae' | 'simmim';
  masking: 'random' | 'block' | 'sbam' | 'hpm';
  maskRatio: number;
  maskPatch: number;
  normPixLoss: boolean;
  mto: MtoSettings | null;
  sbam: { delta: number; threshold: number };
  hpm: { weight: number; emaStart: number; emaEnd: number; emaEpochs: number };
  seed: number;
}

/** MTO acts in the blocks that see mask tokens: SimMIM's encoder, MAE's decoder. */
export function mtoBlocks(requested: number, depth: number): number {
  return requested < 0 ? Math.max(1, Math.floor(depth / 2)) : Math.min(requested, depth);
}

export function mimSettings(cfg: MimRunConfig, depthWithMaskTokens: number, where = 'run settings'): MimSettings {
  const bad = (field: string, what: string, got: unknown): never => {
    throw new ClozeError('E_VALUE', `${where}: Expected ${what} for ${field} but received ${JSON.stringify(got)}`);
  };
  const method = cfg.method as MimSettings['method'];
  const masking = cfg.imageMasking as MimSettings['masking'];
  if (method === 'simmim' && (masking === 'sbam' || masking === 'hpm')) bad('imageMasking', 'random or block with method simmim (SBAM and HPM are defined on MAE)', masking);
  if (method === 'mae' && masking === 'block') bad('imageMasking', 'random, sbam or hpm with method mae (block masks are SimMIM\'s)', masking);
  if (method === 'mae' && cfg.maskRatio >= 1) bad('maskRatio', 'a ratio below 1 with method mae (the encoder needs a visible patch)', cfg.maskRatio);
  if (cfg.hpmEmaEnd < cfg.hpmEmaStart) bad('hpmEmaEnd', `a decay ≥ hpmEmaStart (${cfg.hpmEmaStart})`, cfg.hpmEmaEnd);
  return {
    method,
    masking,
    maskRatio: cfg.maskRatio,
    maskPatch: cfg.maskPatch,
    normPixLoss: cfg.normPixLoss,
    mto: cfg.mto
      ? {
          exclusion: cfg.mtoExclusion,
          blocks: mtoBlocks(cfg.mtoBlocks, depthWithMaskTokens),
          singularityWeight: cfg.mtoSingularityWeight,
          singularityBlocks: Math.min(cfg.mtoSingularityBlocks, depthWithMaskTokens),
          entropyWeight: cfg.mtoEntropyWeight,
        }
      : null,
    sbam: { delta: cfg.sbamDelta, threshold: cfg.sbamThreshold },
    hpm: { weight: cfg.hpmWeight, emaStart: cfg.hpmEmaStart, emaEnd: cfg.hpmEmaEnd, emaEpochs: cfg.hpmEmaEpochs },
    seed: cfg.seed,
  };
}

/** HPM's teacher decay: a linear ramp from emaStart to emaEnd over emaEpochs. */
export function emaDecay(epoch: number, h: MimSettings['hpm']): number {
  if (h.emaEpochs <= 0) return h.emaEnd;
  return h.emaStart + (h.emaEnd - h.emaStart) * Math.min(1, epoch / h.emaEpochs);
}
