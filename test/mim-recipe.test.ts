/**
 * The recipe each MIM method brings: SimMIM's own (microsoft/SimMIM config.py and its pre-training configs:
 * AdamW β (0.9, 0.999), eps 1e-8, wd 0.05, clip 5, lr = blr·batch/512, cosine to 0.05×) for method simmim,
 * with or without MTO, and MAE's (the preset's: β (0.9, 0.95), lr = blr·batch/256, cosine to 0, no clip)
 * for method mae; a caller's explicit options win over either.
 */
import { describe, expect, it } from 'vitest';
import { VIT_PRESETS } from '../src/models/vit/config.js';
import { SIMMIM_PRESET_RECIPES } from '../src/tasks/mim/config.js';
import { resolveRun } from '../src/tasks/pretrain.js';

describe('MIM recipes', () => {
  it('give SimMIM its own optimizer, lr scaling and schedule, with or without MTO', () => {
    for (const mto of [false, true]) {
      const s = resolveRun({ task: 'mim', method: 'simmim', mto });
      expect(s.betas).toEqual([0.9, 0.999]);
      expect(s.eps).toBe(1e-8);
      expect(s.weightDecay).toBe(0.05);
      expect(s.gradClip).toBe(5);
      expect(s.decay).toBe('cosine');
      expect(s.minLrRatio).toBe(0.05);
      const r = SIMMIM_PRESET_RECIPES['vit-micro-fmnist'];
      expect(s.batchSize).toBe(r.batchSize);
      expect(s.epochs).toBe(r.epochs);
      expect(s.lr).toBeCloseTo((r.blr * r.batchSize) / 512, 15);
      expect(s.warmupRatio).toBeCloseTo(r.warmupEpochs / r.epochs, 15);
      expect([s.maskRatio, s.imageMasking, s.maskPatch]).toEqual([0.6, 'block', 2]);
    }
  });

  it('keep MAE on the preset\'s recipe, so the resolved settings differ per method', () => {
    const mae = resolveRun({ task: 'mim', method: 'mae' });
    const simmim = resolveRun({ task: 'mim', method: 'simmim' });
    const r = VIT_PRESETS['vit-micro-fmnist'].recipe;
    expect(mae.betas).toEqual([...r.betas]);
    expect(mae.lr).toBeCloseTo((r.blr * r.batchSize) / 256, 15);
    expect([mae.gradClip, mae.minLrRatio, mae.maskRatio, mae.imageMasking]).toEqual([0, 0, 0.75, 'random']);
    expect(simmim.betas).not.toEqual(mae.betas);
    expect(simmim.lr).not.toBe(mae.lr);
    expect(simmim.gradClip).not.toBe(mae.gradClip);
  });

  it('scale SimMIM\'s lr by the effective batch over 512, and take ViT-B\'s config on vit-base-p16', () => {
    const r = SIMMIM_PRESET_RECIPES['vit-micro-fmnist'];
    expect(resolveRun({ task: 'mim', method: 'simmim', batchSize: 32, gradAccum: 4 }).lr).toBeCloseTo((r.blr * 128) / 512, 15);
    const b = resolveRun({ task: 'mim', method: 'simmim', preset: 'vit-base-p16' });
    // simmim_pretrain__vit_base__img224__800ep: BASE_LR 1e-4 at 2048 images → 4e-4; 10 of 800 epochs warm up.
    expect(b.lr).toBeCloseTo((1e-4 * 2048) / 512, 15);
    expect(b.warmupRatio).toBeCloseTo(10 / 800, 15);
    expect(b.epochs).toBe(800);
  });

  it('let explicit options win over the SimMIM recipe', () => {
    const s = resolveRun({ task: 'mim', method: 'simmim', lr: 3e-3, betas: [0.8, 0.9], gradClip: 0, minLrRatio: 0, maskRatio: 0.5, weightDecay: 0 });
    expect([s.lr, s.betas, s.gradClip, s.minLrRatio, s.maskRatio, s.weightDecay]).toEqual([3e-3, [0.8, 0.9], 0, 0, 0.5, 0]);
  });
});
