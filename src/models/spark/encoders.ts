/**
 * SparK's sparse encoders at small widths. Stage i works at scale i (stride
 * 2^i); every stage after the first starts by halving the resolution, so the
 * masks of consecutive stages are nested. Each encoder returns the feature of
 * every stage, finest first; the decoder densifies the coarse ones.
 * - ResNet: a 3×3 stem, then basic blocks (conv3×3-BN-ReLU-conv3×3-BN + shortcut, ReLU);
 *   a stage's first block strides 2 with a 1×1 stride-2 conv + BN shortcut.
 * - ConvNeXt-style: a 3×3 stem + LayerNorm, then blocks of depthwise 7×7 → LayerNorm → pointwise ×4 →
 *   GELU → pointwise back, plus the input; between stages LayerNorm and a 2×2 stride-2 conv.
 */
import { Module } from '../../nn/module.js';
import { ModuleList } from '../../nn/module-list.js';
import { add, gelu, relu } from '../../ops/elementwise.js';
import { Rng } from '../../rng.js';
import type { SparkConfig } from './config.js';
import type { MaskContext } from './mask-context.js';
import { SBatchNorm, SConv, SLayerNorm, SPointwise, type Feat } from './layers.js';

const act = (f: Feat, fn: (t: Feat['t']) => Feat['t']): Feat => ({ t: fn(f.t), s: f.s });

export abstract class SparkEncoder extends Module {
  abstract readonly config: SparkConfig;
  /** Features of every stage, finest first. */
  abstract forward(x: Feat, ctx: MaskContext): Feat[];
  /** Width of the last stage: the feature size of probes and fine-tuning. */
  get outDim(): number {
    return this.config.widths[this.config.widths.length - 1]!;
  }
}

class BasicBlock extends Module {
  readonly conv1: SConv;
  readonly bn1: SBatchNorm;
  readonly conv2: SConv;
  readonly bn2: SBatchNorm;
  readonly down: SConv | null;
  readonly downBn: SBatchNorm | null;
  constructor(cin: number, cout: number, stride: 1 | 2, rng: Rng) {
    super();
    this.conv1 = this.registerModule('conv1', new SConv(cin, cout, 3, stride, { rng }));
    this.bn1 = this.registerModule('bn1', new SBatchNorm(cout));
    this.conv2 = this.registerModule('conv2', new SConv(cout, cout, 3, 1, { rng }));
    this.bn2 = this.registerModule('bn2', new SBatchNorm(cout));
    const project = stride !== 1 || cin !== cout;
    this.down = project ? this.registerModule('downsample_conv', new SConv(cin, cout, 1, stride, { rng })) : null;
    this.downBn = project ? this.registerModule('downsample_bn', new SBatchNorm(cout)) : null;
  }
  forward(x: Feat, ctx: MaskContext): Feat {
    const h = act(this.bn1.forward(this.conv1.forward(x, ctx), ctx), relu);
    const y = this.bn2.forward(this.conv2.forward(h, ctx), ctx);
    const sc = this.down ? this.downBn!.forward(this.down.forward(x, ctx), ctx) : x;
    return act({ t: add(y.t, sc.t), s: y.s }, relu);
  }
}

export class SparkResNet extends SparkEncoder {
  readonly stemConv: SConv;
  readonly stemBn: SBatchNorm;
  readonly stages: ModuleList<ModuleList<BasicBlock>>;
  constructor(readonly config: SparkConfig, seed: number) {
    super();
    const rng = new Rng(seed);
    const w = config.widths;
    this.stemConv = this.registerModule('stem_conv', new SConv(config.channels, w[0]!, 3, 1, { rng }));
    this.stemBn = this.registerModule('stem_bn', new SBatchNorm(w[0]!));
    this.stages = this.registerModule('stages', new ModuleList(config.depths.map((d, i) =>
      new ModuleList(Array.from({ length: d }, (_, j) => new BasicBlock(j === 0 && i > 0 ? w[i - 1]! : w[i]!, w[i]!, j === 0 && i > 0 ? 2 : 1, rng))))));
  }
  forward(x: Feat, ctx: MaskContext): Feat[] {
    let h = act(this.stemBn.forward(this.stemConv.forward(x, ctx), ctx), relu);
    const outs: Feat[] = [];
    for (const stage of this.stages.items) {
      for (const b of stage.items) h = b.forward(h, ctx);
      outs.push(h);
    }
    return outs;
  }
}

class ConvNeXtBlock extends Module {
  readonly dwconv: SConv;
  readonly norm: SLayerNorm;
  readonly pw1: SPointwise;
  readonly pw2: SPointwise;
  constructor(c: number, rng: Rng) {
    super();
    this.dwconv = this.registerModule('dwconv', new SConv(c, c, 7, 1, { rng, bias: true, depthwise: true }));
    this.norm = this.registerModule('norm', new SLayerNorm(c));
    this.pw1 = this.registerModule('pwconv1', new SPointwise(c, 4 * c, { rng }));
    this.pw2 = this.registerModule('pwconv2', new SPointwise(4 * c, c, { rng }));
  }
  forward(x: Feat, ctx: MaskContext): Feat {
    const h = this.pw2.forward(act(this.pw1.forward(this.norm.forward(this.dwconv.forward(x, ctx), ctx), ctx), gelu), ctx);
    return { t: add(x.t, h.t), s: x.s };
  }
}

class Downsample extends Module {
  readonly norm: SLayerNorm;
  readonly conv: SConv;
  constructor(cin: number, cout: number, rng: Rng) {
    super();
    this.norm = this.registerModule('norm', new SLayerNorm(cin));
    this.conv = this.registerModule('conv', new SConv(cin, cout, 2, 2, { rng, bias: true }));
  }
  forward(x: Feat, ctx: MaskContext): Feat {
    return this.conv.forward(this.norm.forward(x, ctx), ctx);
  }
}

export class SparkConvNeXt extends SparkEncoder {
  readonly stemConv: SConv;
  readonly stemNorm: SLayerNorm;
  readonly downs: ModuleList<Downsample>;
  readonly stages: ModuleList<ModuleList<ConvNeXtBlock>>;
  constructor(readonly config: SparkConfig, seed: number) {
    super();
    const rng = new Rng(seed);
    const w = config.widths;
    this.stemConv = this.registerModule('stem_conv', new SConv(config.channels, w[0]!, 3, 1, { rng, bias: true }));
    this.stemNorm = this.registerModule('stem_norm', new SLayerNorm(w[0]!));
    this.downs = this.registerModule('downsample', new ModuleList(w.slice(1).map((c, i) => new Downsample(w[i]!, c, rng))));
    this.stages = this.registerModule('stages', new ModuleList(config.depths.map((d, i) => new ModuleList(Array.from({ length: d }, () => new ConvNeXtBlock(w[i]!, rng))))));
  }
  forward(x: Feat, ctx: MaskContext): Feat[] {
    let h = this.stemNorm.forward(this.stemConv.forward(x, ctx), ctx);
    const outs: Feat[] = [];
    this.stages.items.forEach((stage, i) => {
      if (i > 0) h = this.downs.items[i - 1]!.forward(h, ctx);
      for (const b of stage.items) h = b.forward(h, ctx);
      outs.push(h);
    });
    return outs;
  }
}

export function sparkEncoder(c: SparkConfig, seed: number): SparkEncoder {
  return c.arch === 'resnet' ? new SparkResNet(c, seed) : new SparkConvNeXt(c, seed);
}
