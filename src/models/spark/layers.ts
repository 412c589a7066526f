/**
 * SparK's layers, each with two executions of the same weights:
 * - sparse: features are rows [N_s, C] of scale s's active sites; convs gather through the
 *   scale's rulebook, norms take statistics over active rows only, nothing is computed at masked sites;
 * - masked-dense (the official code's way): features are maps [B, C, H, W]; every op runs on the
 *   whole map and is re-masked, and BatchNorm takes masked statistics. Same results at active sites.
 * With whole images (no mask) the dense path runs unmasked: that is how probes and fine-tuning use the encoder.
 */
import { LayerNorm, Linear, type InitOptions } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import { constant } from '../../nn/init.js';
import type { Parameter } from '../../nn/parameter.js';
import { linear } from '../../ops/linalg.js';
import { reshape } from '../../ops/elementwise.js';
import { layerNorm } from '../../ops/layernorm.js';
import { batchNorm2d, syncBatchNorm2d, type BatchNormSync } from '../../ops/batchnorm.js';
import { conv2d } from '../../ops/conv.js';
import { applyMask } from '../../ops/pool.js';
import { toChannelsFirst, toChannelsLast } from '../../ops/layout.js';
import { sparseConv, sparseDepthwiseConv } from '../../ops/sparse_conv.js';
import { sparseBatchNorm } from '../../ops/sparse_norm_pool.js';
import { ones, zeros, type Tensor } from '../../tensor.js';
import type { Rng } from '../../rng.js';
import { convPadding, type MaskContext } from './mask-context.js';

/** A feature map and its scale: rows [N_s, C] (sparse) or a map [B, C, H_s, W_s] (dense). */
export interface Feat {
  t: Tensor;
  s: number;
}

function remask(ctx: MaskContext, t: Tensor, s: number): Tensor {
  return ctx.full ? t : applyMask(t, ctx.mask(s));
}

/** Kaiming-normal (fan-out, ReLU gain), as timm/torchvision initialise conv weights. */
function kaiming(shape: number[], fanOut: number, rng: Rng): Parameter {
  const std = Math.sqrt(2 / fanOut);
  const n = shape.reduce((a, b) => a * b, 1);
  const w = constant(shape, 0, 'float32', true);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = rng.normal() * std;
  w.native.write(v);
  return w;
}

export class SConv extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  constructor(
    readonly cin: number,
    readonly cout: number,
    readonly kernel: number,
    readonly stride: 1 | 2,
    init: { rng: Rng; bias?: boolean; depthwise?: boolean },
  ) {
    super();
    const dw = init.depthwise ?? false;
    this.weight = this.registerParameter('weight', kaiming([cout, dw ? 1 : cin, kernel, kernel], (cout * kernel * kernel) / (dw ? cout : 1), init.rng));
    this.bias = init.bias ? this.registerParameter('bias', constant([cout], 0)) : null;
    this.depthwise = dw;
  }
  readonly depthwise: boolean;

  private padding(): number {
    return convPadding(this.kernel, this.stride);
  }

  forward(f: Feat, ctx: MaskContext): Feat {
    const s = this.stride === 1 ? f.s : f.s + 1;
    if (ctx.mode === 'sparse' && !ctx.full) {
      if (this.kernel === 1 && this.stride === 1 && !this.depthwise) {
        // Pointwise: no rulebook, one GEMM over the active rows.
        return { t: linear(f.t, reshape(this.weight, [this.cout, this.cin]), this.bias), s };
      }
      const table = ctx.table(f.s, this.kernel, this.stride);
      const t = this.depthwise ? sparseDepthwiseConv(f.t, this.weight, this.bias, table) : sparseConv(f.t, this.weight, this.bias, table);
      return { t, s };
    }
    const out = conv2d(f.t, this.weight, this.bias, { stride: this.stride, padding: this.padding(), groups: this.depthwise ? this.cin : 1 });
    return { t: remask(ctx, out, s), s };
  }
}

/** The BatchNorm state both of SparK's norms hold: weight 1 and bias 0 (the official init), PyTorch's running buffers. */
abstract class SparkBatchNorm extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  /**
   * Data-parallel ranks to take the batch statistics over (SyncBatchNorm, the official SparK's default `sbn`):
   * set by setBatchNormSync. Null: this process's batch only (PyTorch's plain BatchNorm under DDP).
   */
  sync: BatchNormSync | null = null;
  constructor(readonly channels: number) {
    super();
    this.weight = this.registerParameter('weight', constant([channels], 1));
    this.bias = this.registerParameter('bias', constant([channels], 0));
    this.runningMean = this.registerBuffer('running_mean', zeros([channels]));
    this.runningVar = this.registerBuffer('running_var', ones([channels]));
  }
  /** BatchNorm2d over a map [B, C, H, W], optionally over a mask's active positions, synchronized when set. */
  protected dense(x: Tensor, mask: Tensor | null): Tensor {
    const o = { training: this.training, mask };
    return this.sync && this.training
      ? syncBatchNorm2d(x, this.weight, this.bias, this.runningMean, this.runningVar, { ...o, sync: this.sync })
      : batchNorm2d(x, this.weight, this.bias, this.runningMean, this.runningVar, o);
  }
}

export class SBatchNorm extends SparkBatchNorm {
  forward(f: Feat, ctx: MaskContext): Feat {
    if (ctx.mode === 'sparse' && !ctx.full) {
      if (this.sync && this.training && this.sync.size > 1) {
        // Rows [N, C] are the map [N, C, 1, 1] to BatchNorm2d: the same per-channel statistics over the rows.
        const [N, C] = f.t.shape as [number, number];
        return { t: reshape(this.dense(reshape(f.t, [N, C, 1, 1]), null), [N, C]), s: f.s };
      }
      return { t: sparseBatchNorm(f.t, this.weight, this.bias, this.runningMean, this.runningVar, { training: this.training }), s: f.s };
    }
    return { t: this.dense(f.t, ctx.full ? null : ctx.mask(f.s)), s: f.s };
  }
}

/** A BatchNorm over whole maps (the decoder's). */
export class DenseBatchNorm extends SparkBatchNorm {
  forward(x: Tensor): Tensor {
    return this.dense(x, null);
  }
}

/** Points every SparK BatchNorm under `root` at `sync` (null: per-process statistics again). */
export function setBatchNormSync(root: Module, sync: BatchNormSync | null): void {
  for (const [, m] of root.namedModules()) if (m instanceof SparkBatchNorm) m.sync = sync;
}

/** LayerNorm over channels at every site (ConvNeXt's channels-last norm). */
export class SLayerNorm extends Module {
  readonly norm: LayerNorm;
  constructor(channels: number) {
    super();
    this.norm = this.registerModule('norm', new LayerNorm(channels, 1e-6));
  }
  forward(f: Feat, ctx: MaskContext): Feat {
    if (ctx.mode === 'sparse' && !ctx.full) return { t: this.norm.forward(f.t), s: f.s };
    const y = toChannelsFirst(layerNorm(toChannelsLast(f.t), this.norm.weight, this.norm.bias, this.norm.eps));
    return { t: remask(ctx, y, f.s), s: f.s };
  }
}

/** A per-site Linear (ConvNeXt's pointwise MLP layers). */
export class SPointwise extends Module {
  readonly fc: Linear;
  constructor(cin: number, cout: number, init: InitOptions) {
    super();
    this.fc = this.registerModule('fc', new Linear(cin, cout, init));
  }
  forward(f: Feat, ctx: MaskContext): Feat {
    if (ctx.mode === 'sparse' && !ctx.full) return { t: this.fc.forward(f.t), s: f.s };
    const w = reshape(this.fc.weight, [this.fc.weight.shape[0]!, this.fc.weight.shape[1]!, 1, 1]);
    return { t: remask(ctx, conv2d(f.t, w, this.fc.bias, {}), f.s), s: f.s };
  }
}
