/**
 * The ViT encoder: patch embedding (a Linear on patchified pixels, the same map
 * as MAE's stride-p convolution), fixed 2D sin-cos positions, an optional CLS
 * token, pre-LN blocks and a final LayerNorm. The methods compose its steps
 * themselves (MAE gathers visible tokens between embedding and blocks; SimMIM
 * swaps in the mask token), so the steps are public.
 */
import { LayerNorm, Linear, type InitOptions } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import { ModuleList } from '../../nn/module-list.js';
import { normal } from '../../nn/init.js';
import type { Parameter } from '../../nn/parameter.js';
import { biasAdd, reshape } from '../../ops/elementwise.js';
import { assembleTokens, patchify, tokenMean } from '../../ops/mim_tokens.js';
import { tensor, type Tensor } from '../../tensor.js';
import type { Device } from '../../native/types.js';
import { Rng } from '../../rng.js';
import { expected } from '../../errors.js';
import { keep } from '../../autograd/mode.js';
import { VitBlock, xavierLinear } from './block.js';
import { checkVitConfig, gridOf, type VitConfig } from './config.js';
import { sincos2d } from './pos-embed.js';
import { vitLayerId, type LayeredParams } from '../../optim/layer-decay.js';
import { runStack, type BlockPlan, type StackOutput } from './stack.js';

/** pos [L·D] flat with an optional zero row in front for CLS, as MAE does. */
export function positionTable(gh: number, gw: number, dim: number, cls: boolean): Tensor {
  const p = sincos2d(gh, gw, dim);
  if (!cls) return tensor(p, [gh * gw * dim]);
  const withCls = new Float64Array((gh * gw + 1) * dim);
  withCls.set(p, dim);
  return tensor(withCls, [withCls.length]);
}

/** Adds a flat [n·D] table to every row of x [B, n, D]. */
export function addTable(x: Tensor, table: Tensor): Tensor {
  const [B, n, D] = x.shape as [number, number, number];
  if (table.size !== n * D) throw expected(`a position table of ${n}×${D} values`, 'position table', table, 'E_SHAPE');
  return reshape(biasAdd(reshape(x, [B, n * D]), table), [B, n, D]);
}

/** index [B, 1 + n] on `device`: the CLS token (code −1) and then rows 0 … n−1 of x. */
export function clsIndex(B: number, n: number, device: Device = 'cpu'): Tensor {
  const idx = new Int32Array(B * (n + 1));
  for (let b = 0; b < B; b++) {
    idx[b * (n + 1)] = -1;
    for (let j = 0; j < n; j++) idx[b * (n + 1) + 1 + j] = j;
  }
  return tensor(idx, [B, n + 1], 'int32', device);
}

export class VitEncoder extends Module {
  readonly config: VitConfig;
  readonly patchEmbed: Linear;
  readonly clsToken: Parameter | null;
  readonly blocks: ModuleList<VitBlock>;
  readonly norm: LayerNorm;
  /** [(cls +) L · D], fixed. */
  readonly pos: Tensor;
  readonly numPatches: number;

  get featureDim(): number {
    return this.config.dim;
  }

  get inputSize(): [number, number] {
    return this.config.imageSize;
  }

  constructor(c: VitConfig, opts: { seed: number; rng?: Rng }) {
    super();
    checkVitConfig(c, 'ViT config');
    this.config = c;
    const rng = opts.rng ?? new Rng(opts.seed);
    const init: InitOptions = { rng };
    const [gh, gw] = gridOf(c);
    this.numPatches = gh * gw;
    this.patchEmbed = this.registerModule('patch_embed', xavierLinear(c.patch * c.patch * c.channels, c.dim, init));
    // MAE: torch.nn.init.normal_(cls_token, std=.02), untruncated.
    this.clsToken = c.cls ? this.registerParameter('cls_token', normal([1, c.dim], 0.02, rng, false)) : null;
    this.blocks = this.registerModule('blocks', new ModuleList(Array.from({ length: c.depth }, () => new VitBlock(c.dim, c.heads, c.mlpRatio, c.lnEps, init))));
    this.norm = this.registerModule('norm', new LayerNorm(c.dim, c.lnEps));
    // Positions are added before any CLS token is prepended, so the table has no CLS row.
    this.pos = keep(positionTable(gh, gw, c.dim, false));
  }

  /** images [B, C, H, W] → patches [B, L, p²C] (the pixel targets) and their embeddings with positions [B, L, D]. */
  embed(images: Tensor): { patches: Tensor; x: Tensor } {
    const c = this.config;
    if (images.shape.length !== 4 || images.shape[1] !== c.channels || images.shape[2] !== c.imageSize[0] || images.shape[3] !== c.imageSize[1]) {
      throw expected(`images of shape [B, ${c.channels}, ${c.imageSize[0]}, ${c.imageSize[1]}]`, 'images', images, 'E_SHAPE');
    }
    const patches = patchify(images, c.patch);
    return { patches, x: this.patchEmbed.forward(patches) };
  }

  withPos(x: Tensor): Tensor {
    return addTable(x, this.pos);
  }

  /** Prepends the CLS token when the config has one. */
  withCls(x: Tensor): Tensor {
    if (!this.clsToken) return x;
    const [B, n] = x.shape as [number, number];
    return assembleTokens(x, clsIndex(B, n, x.device), this.clsToken);
  }

  /** Blocks and the final norm over x [B, n, D] (CLS included if any). */
  encode(x: Tensor, plan: BlockPlan = {}): StackOutput {
    const r = runStack(this.blocks, x, plan);
    return { ...r, out: this.norm.forward(r.out) };
  }

  /** The image's feature for probes and fine-tuning: CLS if present, else the mean over patches. */
  features(images: Tensor): Tensor {
    const h = this.encode(this.withCls(this.withPos(this.embed(images).x))).out;
    if (!this.clsToken) return tokenMean(h);
    const B = h.shape[0]!;
    return reshape(assembleTokens(h, tensor(new Int32Array(B), [B, 1], 'int32', h.device), null), [B, this.config.dim]);
  }

  /**
   * MAE's fine-tuning feature (models_vit.py, global_pool): the mean over the patch tokens (a CLS token left out) of
   * the last block's output *before* the final norm, which MAE's fine-tuned model drops for an fc_norm on the
   * pooled vector (the fine-tuning head's LayerNorm, FINETUNE_RECIPE.fcNorm).
   */
  globalPoolFeatures(images: Tensor): Tensor {
    const x = runStack(this.blocks, this.withCls(this.withPos(this.embed(images).x)), {}).out;
    if (!this.clsToken) return tokenMean(x);
    const [B, L1] = x.shape as [number, number, number];
    const idx = new Int32Array(B * (L1 - 1));
    for (let b = 0; b < B; b++) for (let j = 1; j < L1; j++) idx[b * (L1 - 1) + j - 1] = j;
    return tokenMean(assembleTokens(x, tensor(idx, [B, L1 - 1], 'int32', x.device), null));
  }

  /** MAE's layer ids (util/lr_decay.py) for layer-wise lr decay: embedding 0, block i → i + 1, the final norm depth + 1. */
  layerIds(): LayeredParams {
    const depth = this.config.depth;
    return { layers: depth + 1, ids: this.namedParameters().map(([n, p]) => [p, vitLayerId(n, depth)]) };
  }

  /**
   * Drop path for fine-tuning: block i drops with rate·i/(depth − 1) (timm's
   * linspace(0, rate, depth), as MAE's fine-tuned ViT builds it); 0 turns it off.
   */
  setDropPath(rate: number, seed: number): void {
    const n = this.blocks.items.length;
    const rng = new Rng(seed);
    this.blocks.items.forEach((b, i) => {
      b.dropPath = n > 1 ? (rate * i) / (n - 1) : rate;
      b.dropRng = rng;
    });
  }

  protected override releaseBuffers(): void {
    this.pos.dispose();
  }

  protected override moveFixed(move: (t: Tensor) => void): void {
    move(this.pos);
  }
}
