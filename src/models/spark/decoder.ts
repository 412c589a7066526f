/**
 * Densify and SparK's light hierarchical decoder. Per densified scale: the
 * encoder feature is normalised (BatchNorm for ResNet, LayerNorm for ConvNeXt,
 * over active sites), its masked sites are filled with that scale's learned
 * mask token, and a conv (1×1 at the coarsest scale, 3×3 elsewhere) maps it to
 * the decoder width of that scale. The decoder starts at the coarsest scale;
 * each block adds the densified feature of its resolution, then upsamples:
 * ConvTranspose(k4, s2) → conv3×3-BN-ReLU → conv3×3-BN. A 1×1 conv gives pixels.
 * (SparK uses ReLU6 in the block; we use ReLU: the activation range is the only difference.)
 */
import { Module } from '../../nn/module.js';
import { ModuleList } from '../../nn/module-list.js';
import { constant, truncNormal } from '../../nn/init.js';
import type { Parameter } from '../../nn/parameter.js';
import { add, relu } from '../../ops/elementwise.js';
import { batchNorm2d } from '../../ops/batchnorm.js';
import { conv2d, convTranspose2d } from '../../ops/conv.js';
import { toDense, toSparse } from '../../ops/sparse_rulebook.js';
import { Rng } from '../../rng.js';
import { ones, zeros, type Tensor } from '../../tensor.js';
import type { SparkConfig } from './config.js';
import { SBatchNorm, SLayerNorm, type Feat } from './layers.js';
import type { MaskContext } from './mask-context.js';

function convWeight(cout: number, cin: number, k: number, rng: Rng): Parameter {
  return truncNormal([cout, cin, k, k], Math.sqrt(2 / (cout * k * k)) / 2, rng);
}

/** A dense BatchNorm (the decoder sees whole maps). */
class DenseBn extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  constructor(c: number) {
    super();
    this.weight = this.registerParameter('weight', constant([c], 1));
    this.bias = this.registerParameter('bias', constant([c], 0));
    this.runningMean = this.registerBuffer('running_mean', zeros([c]));
    this.runningVar = this.registerBuffer('running_var', ones([c]));
  }
  forward(x: Tensor): Tensor {
    return batchNorm2d(x, this.weight, this.bias, this.runningMean, this.runningVar, { training: this.training });
  }
}

class UpBlock extends Module {
  readonly up: Parameter;
  readonly upBias: Parameter;
  readonly conv1: Parameter;
  readonly bn1: DenseBn;
  readonly conv2: Parameter;
  readonly bn2: DenseBn;
  constructor(cin: number, cout: number, rng: Rng) {
    super();
    this.up = this.registerParameter('up.weight', truncNormal([cin, cout, 4, 4], Math.sqrt(2 / (cout * 16)) / 2, rng));
    this.upBias = this.registerParameter('up.bias', constant([cout], 0));
    this.conv1 = this.registerParameter('conv1.weight', convWeight(cout, cout, 3, rng));
    this.bn1 = this.registerModule('bn1', new DenseBn(cout));
    this.conv2 = this.registerParameter('conv2.weight', convWeight(cout, cout, 3, rng));
    this.bn2 = this.registerModule('bn2', new DenseBn(cout));
  }
  forward(x: Tensor): Tensor {
    const u = convTranspose2d(x, this.up, this.upBias, { stride: 2, padding: 1 });
    const h = relu(this.bn1.forward(conv2d(u, this.conv1, null, { padding: 1 })));
    return this.bn2.forward(conv2d(h, this.conv2, null, { padding: 1 }));
  }
}

class Densify extends Module {
  readonly norm: SBatchNorm | SLayerNorm;
  readonly maskToken: Parameter;
  readonly proj: Parameter;
  readonly projBias: Parameter;
  constructor(cin: number, cout: number, k: number, arch: SparkConfig['arch'], rng: Rng) {
    super();
    this.norm = this.registerModule('norm', arch === 'resnet' ? new SBatchNorm(cin) : new SLayerNorm(cin));
    this.maskToken = this.registerParameter('mask_token', truncNormal([cin], 0.02, rng, 'float32', false));
    this.proj = this.registerParameter('proj.weight', convWeight(cout, cin, k, rng));
    this.projBias = this.registerParameter('proj.bias', constant([cout], 0));
  }
  forward(f: Feat, ctx: MaskContext): Tensor {
    const n = this.norm.forward(f, ctx);
    const side = ctx.side(f.s);
    const { coords } = ctx.sites(f.s);
    // Masked sites get the mask token; sparse rows scatter straight in, dense maps go through their active rows.
    const rows = ctx.mode === 'sparse' ? n.t : toSparse(n.t, coords);
    const dense = toDense(rows, coords, ctx.B, side, side, this.maskToken);
    const k = this.proj.shape[2]!;
    return conv2d(dense, this.proj, this.projBias, { padding: (k - 1) / 2 });
  }
}

export class SparkDecoder extends Module {
  readonly densify: ModuleList<Densify>;
  readonly blocks: ModuleList<UpBlock>;
  readonly proj: Parameter;
  readonly projBias: Parameter;
  /** Scales densified, coarsest first: the last `blocks` stages. */
  readonly scales: number[];

  constructor(c: SparkConfig, seed: number) {
    super();
    const rng = new Rng(seed);
    const S = c.widths.length;
    const nBlocks = S - 1;
    // The coarsest nBlocks stages feed the decoder (SparK: the finest stage's feature is not densified).
    this.scales = Array.from({ length: nBlocks }, (_, i) => S - 1 - i);
    const width = (i: number): number => c.decoderWidth >> i;
    this.densify = this.registerModule('densify', new ModuleList(this.scales.map((s, i) => new Densify(c.widths[s]!, width(i), i === 0 ? 1 : 3, c.arch, rng))));
    this.blocks = this.registerModule('blocks', new ModuleList(Array.from({ length: nBlocks }, (_, i) => new UpBlock(width(i), width(i + 1), rng))));
    this.proj = this.registerParameter('proj.weight', convWeight(c.channels, width(nBlocks), 1, rng));
    this.projBias = this.registerParameter('proj.bias', constant([c.channels], 0));
  }

  /** feats: every encoder stage, finest first → pixels [B, C, H, W]. */
  forward(feats: Feat[], ctx: MaskContext): Tensor {
    let x: Tensor | null = null;
    this.scales.forEach((s, i) => {
      const d = this.densify.items[i]!.forward(feats[s]!, ctx);
      x = this.blocks.items[i]!.forward(x ? add(x, d) : d);
    });
    return conv2d(x!, this.proj, this.projBias, {});
  }
}
