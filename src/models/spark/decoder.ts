/**
 * Densify and SparK's light hierarchical decoder, laid out and initialised as
 * the official code (keyu-tian/SparK, pretrain/spark.py and pretrain/decoder.py;
 * the initialisers are in ./init.ts). Per densified scale i (coarsest first):
 * the encoder feature is normalised (BatchNorm for ResNet, LayerNorm for
 * ConvNeXt, over active sites), its masked sites are filled with that scale's
 * learned mask token, and a conv (1×1 at the coarsest scale, 3×3 elsewhere; none
 * when the coarsest encoder width already equals the decoder width) maps it to
 * the decoder width W/2^i. The decoder starts at the coarsest scale; block i
 * adds the densified feature of its resolution, then upsamples as the official
 * `UNetBlock(cin = W/2^i, cout = W/2^(i+1))`:
 *   ConvTranspose(cin→cin, k4, s2, p1, bias) → conv3×3(cin→cin)-BN-ReLU6 → conv3×3(cin→cout)-BN,
 * so the width is kept through the upsampling and the first conv and halves
 * only in the last. A 1×1 conv with bias gives the pixels.
 * What remains different from the official code: the widths and block count
 * follow the same halving rule from our smaller `decoderWidth` and downsample;
 * the output has the dataset's channel count (1 for Fashion-MNIST) instead of 3;
 * and, as there, its BatchNorms are synchronized across data-parallel ranks
 * (statistics over the global batch; `--sync-bn false` keeps them per rank).
 */
import { Module } from '../../nn/module.js';
import { ModuleList } from '../../nn/module-list.js';
import { constant } from '../../nn/init.js';
import type { Parameter } from '../../nn/parameter.js';
import { add, relu6 } from '../../ops/elementwise.js';
import { conv2d, convTranspose2d } from '../../ops/conv.js';
import { toDense, toSparse } from '../../ops/sparse_rulebook.js';
import { Rng } from '../../rng.js';
import type { Tensor } from '../../tensor.js';
import type { SparkConfig } from './config.js';
import { normal, truncNormalAbs, uniform } from './init.js';
import { DenseBatchNorm, SBatchNorm, SLayerNorm, type Feat } from './layers.js';
import type { MaskContext } from './mask-context.js';

/**
 * Written into a SparK checkpoint's config.json: checkpoints without it hold the
 * earlier decoder (its ConvTranspose halved the width), whose weights do not fit
 * this layout, so resuming from or starting on one is refused with that reason.
 */
export const SPARK_DECODER_LAYOUT = 'official-unet';

/** The official decoder's Conv2d weights: timm trunc_normal_(std=.02) at its default absolute bounds ±2. */
function decoderConvWeight(cout: number, cin: number, k: number, rng: Rng): Parameter {
  return truncNormalAbs([cout, cin, k, k], 0.02, -2, 2, rng, true);
}

/** The official UNetBlock: 2× upsampling at the input width, which halves only in conv2. */
class UpBlock extends Module {
  readonly up: Parameter;
  readonly upBias: Parameter;
  readonly conv1: Parameter;
  readonly bn1: DenseBatchNorm;
  readonly conv2: Parameter;
  readonly bn2: DenseBatchNorm;
  constructor(cin: number, cout: number, rng: Rng) {
    super();
    // kaiming_normal_(fan_out, relu); torch's fan_out of a [cin, cin, 4, 4] transposed-conv weight is cin·16.
    this.up = this.registerParameter('up.weight', normal([cin, cin, 4, 4], Math.sqrt(2 / (cin * 16)), rng, true));
    this.upBias = this.registerParameter('up.bias', constant([cin], 0));
    this.conv1 = this.registerParameter('conv1.weight', decoderConvWeight(cin, cin, 3, rng));
    this.bn1 = this.registerModule('bn1', new DenseBatchNorm(cin));
    this.conv2 = this.registerParameter('conv2.weight', decoderConvWeight(cout, cin, 3, rng));
    this.bn2 = this.registerModule('bn2', new DenseBatchNorm(cout));
  }
  forward(x: Tensor): Tensor {
    const u = convTranspose2d(x, this.up, this.upBias, { stride: 2, padding: 1 });
    const h = relu6(this.bn1.forward(conv2d(u, this.conv1, null, { padding: 1 })));
    return this.bn2.forward(conv2d(h, this.conv2, null, { padding: 1 }));
  }
}

class Densify extends Module {
  readonly norm: SBatchNorm | SLayerNorm;
  readonly maskToken: Parameter;
  /** null: the identity (the official code's choice when the encoder width equals the decoder's at the coarsest scale). */
  readonly proj: Parameter | null;
  readonly projBias: Parameter | null;
  constructor(cin: number, cout: number, k: number, arch: SparkConfig['arch'], rng: Rng) {
    super();
    this.norm = this.registerModule('norm', arch === 'resnet' ? new SBatchNorm(cin) : new SLayerNorm(cin));
    this.maskToken = this.registerParameter('mask_token', truncNormalAbs([cin], 0.02, -0.02, 0.02, rng, false));
    const identity = k === 1 && cin === cout;
    const bound = 1 / Math.sqrt(cin * k * k);
    this.proj = identity ? null : this.registerParameter('proj.weight', uniform([cout, cin, k, k], bound, rng, true));
    this.projBias = identity ? null : this.registerParameter('proj.bias', uniform([cout], bound, rng, false));
  }
  forward(f: Feat, ctx: MaskContext): Tensor {
    const n = this.norm.forward(f, ctx);
    const side = ctx.side(f.s);
    const { coords } = ctx.sites(f.s);
    // Masked sites get the mask token; sparse rows scatter straight in, dense maps go through their active rows.
    const rows = ctx.mode === 'sparse' ? n.t : toSparse(n.t, coords);
    const dense = toDense(rows, coords, ctx.B, side, side, this.maskToken);
    if (!this.proj) return dense;
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
    this.proj = this.registerParameter('proj.weight', decoderConvWeight(c.channels, width(nBlocks), 1, rng));
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
