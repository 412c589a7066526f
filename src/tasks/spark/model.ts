/**
 * SparK (the README's SparK section): a convnet encoder that sees only the visible cells
 * of a coarse mask — truly sparse (`sparse`, ours) or simulated with re-masked
 * dense ops (`masked-dense`, the official way) — then densify, the light
 * decoder, and the per-patch normalised MSE on masked cells, one patch per
 * coarse cell.
 */
import { Module } from '../../nn/module.js';
import { maskedPatchLoss } from '../../ops/mim_loss.js';
import { patchify } from '../../ops/mim_tokens.js';
import { applyMask, globalAvgPool } from '../../ops/pool.js';
import { toSparse } from '../../ops/sparse_rulebook.js';
import { tensor, type Tensor } from '../../tensor.js';
import { ClozeError, expected } from '../../errors.js';
import { checkSparkConfig, downsample, type SparkConfig } from '../../models/spark/config.js';
import { SparkDecoder } from '../../models/spark/decoder.js';
import { sparkEncoder, type SparkEncoder } from '../../models/spark/encoders.js';
import type { Feat } from '../../models/spark/layers.js';
import { MaskContext, sparkCoarseMask, type SparkMode } from '../../models/spark/mask-context.js';
import type { LossParts } from '../../train/loss-parts.js';

export interface SparkSettings {
  mode: SparkMode;
  maskRatio: number;
  seed: number;
}

/** A data-parallel rank's rows of the global batch. */
export interface SparkShard {
  before: number;
  rows: number;
  batch: number;
}

export interface SparkLoss {
  loss: Tensor;
  /** Tensor parts are read by the training loop after the step is queued (src/train/loss-parts.ts). */
  parts: LossParts;
  /** uint8 [B, g·g], 1 = visible cell. */
  visible: Uint8Array;
}

/** Runs the encoder on images under a mask context (null visible = whole images). */
export function encode(encoder: SparkEncoder, images: Tensor, ctx: MaskContext): Feat[] {
  const input: Feat = ctx.full
    ? { t: images, s: 0 }
    : ctx.mode === 'sparse'
      ? { t: toSparse(images, ctx.sites(0).coords), s: 0 }
      : { t: applyMask(images, ctx.mask(0)), s: 0 };
  return encoder.forward(input, ctx);
}

export class SparkModel extends Module {
  readonly encoder: SparkEncoder;
  readonly decoder: SparkDecoder;
  constructor(
    readonly config: SparkConfig,
    readonly settings: SparkSettings,
  ) {
    super();
    checkSparkConfig(config, 'SparK config');
    this.encoder = this.registerModule('encoder', sparkEncoder(config, settings.seed));
    this.decoder = this.registerModule('decoder', new SparkDecoder(config, settings.seed + 1));
  }

  get stages(): number {
    return this.config.widths.length;
  }

  private checkImages(images: Tensor): void {
    const c = this.config;
    if (images.shape.length !== 4 || images.shape[1] !== c.channels || images.shape[2] !== c.imageSize || images.shape[3] !== c.imageSize) {
      throw expected(`images of shape [B, ${c.channels}, ${c.imageSize}, ${c.imageSize}]`, 'images', images, 'E_SHAPE');
    }
  }

  /**
   * The masked per-patch loss of step k. `shard` (data parallel): the images are rows [before, before + rows) of a
   * global batch of `batch`; the masks are drawn for the global batch and this rank takes its rows, so the ranks
   * together mask what one process would.
   */
  loss(images: Tensor, k: number, mode: SparkMode = this.settings.mode, shard: SparkShard | null = null): SparkLoss {
    this.checkImages(images);
    const B = images.shape[0]!;
    const ds = downsample(this.config);
    const g = this.config.imageSize / ds;
    if (shard && !(Number.isInteger(shard.before) && shard.before >= 0 && shard.rows === B && shard.before + shard.rows <= shard.batch)) {
      throw new ClozeError('E_SHAPE', `Expected a shard of ${B} images (the batch) within a global batch of ${shard.batch} for shard but received rows ${shard.rows} after ${shard.before}`);
    }
    const visible = shard
      ? sparkCoarseMask(shard.batch, g, this.settings.maskRatio, this.settings.seed, k).slice(shard.before * g * g, (shard.before + B) * g * g)
      : sparkCoarseMask(B, g, this.settings.maskRatio, this.settings.seed, k);
    // The mask is drawn on the host; the context and the loss's mask are made on the images' device.
    const ctx = new MaskContext(mode, B, this.config.imageSize, this.stages, visible, images.device);
    const feats = encode(this.encoder, images, ctx);
    const pred = this.decoder.forward(feats, ctx);
    const masked = tensor(Uint8Array.from(visible, (v) => 1 - v), [B, g * g], 'uint8', images.device);
    const rec = maskedPatchLoss(patchify(pred, ds), patchify(images, ds), masked, { kind: 'mse', normPix: true });
    return { loss: rec.loss, parts: { reconstruction: rec.loss }, visible };
  }

  /** Whole-image features for probes and fine-tuning: the last stage, globally average-pooled. */
  features(images: Tensor): Tensor {
    this.checkImages(images);
    const ctx = new MaskContext('masked-dense', images.shape[0]!, this.config.imageSize, this.stages, null, images.device);
    const feats = encode(this.encoder, images, ctx);
    return globalAvgPool(feats[feats.length - 1]!.t);
  }
}
