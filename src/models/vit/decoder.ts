/**
 * MAE's decoder: project the encoder's visible tokens to the decoder width,
 * put one learned mask token at every removed position and unshuffle (one
 * fused assembleTokens pass), add fixed sin-cos positions, run the blocks and
 * predict `outDim` values per patch (p²C pixels; 1 for HPM's loss predictor).
 */
import { LayerNorm, type InitOptions, type Linear } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import { ModuleList } from '../../nn/module-list.js';
import { normal } from '../../nn/init.js';
import type { Parameter } from '../../nn/parameter.js';
import { assembleTokens } from '../../ops/mim_tokens.js';
import { keep } from '../../autograd/mode.js';
import { tensor, type Tensor } from '../../tensor.js';
import type { Device } from '../../native/types.js';
import type { Rng } from '../../rng.js';
import { VitBlock, xavierLinear } from './block.js';
import { gridOf, type VitConfig } from './config.js';
import { addTable, positionTable } from './encoder.js';
import { runStack, type BlockPlan, type StackOutput } from './stack.js';

export interface DecoderOutput {
  /** [B, L, outDim], CLS dropped. */
  pred: Tensor;
  /** The assembled decoder input before positions [B, (1+)L, Dd]: MTO's data-singularity term reads it. */
  input: Tensor;
  stack: StackOutput;
}

/** [B, L] int32 on `device` picking rows 1 … L (drops a leading CLS row). */
export function dropClsIndex(B: number, L: number, device: Device = 'cpu'): Tensor {
  const idx = new Int32Array(B * L);
  for (let b = 0; b < B; b++) for (let j = 0; j < L; j++) idx[b * L + j] = j + 1;
  return tensor(idx, [B, L], 'int32', device);
}

export class MaeDecoder extends Module {
  readonly embed: Linear;
  readonly maskToken: Parameter;
  readonly blocks: ModuleList<VitBlock>;
  readonly norm: LayerNorm;
  readonly pred: Linear;
  readonly pos: Tensor;
  readonly cls: boolean;
  readonly numPatches: number;

  constructor(c: VitConfig, outDim: number, rng: Rng) {
    super();
    const init: InitOptions = { rng };
    const [gh, gw] = gridOf(c);
    this.numPatches = gh * gw;
    this.cls = c.cls;
    this.embed = this.registerModule('decoder_embed', xavierLinear(c.dim, c.decoderDim, init));
    // MAE: torch.nn.init.normal_(mask_token, std=.02), untruncated.
    this.maskToken = this.registerParameter('mask_token', normal([1, c.decoderDim], 0.02, rng, false));
    this.blocks = this.registerModule('decoder_blocks', new ModuleList(Array.from({ length: c.decoderDepth }, () => new VitBlock(c.decoderDim, c.decoderHeads, c.mlpRatio, c.lnEps, init))));
    this.norm = this.registerModule('decoder_norm', new LayerNorm(c.decoderDim, c.lnEps));
    this.pred = this.registerModule('decoder_pred', xavierLinear(c.decoderDim, outDim, init));
    this.pos = keep(positionTable(gh, gw, c.decoderDim, c.cls));
  }

  /**
   * latent [B, (1+)Lk, D] from the encoder; `index` [B, (1+)L] from restoreIndex (−1 = mask token);
   * `plan(inputRows)` gives the block plan once the assembled input exists.
   */
  forward(latent: Tensor, index: Tensor, plan: BlockPlan = {}): DecoderOutput {
    const input = assembleTokens(this.embed.forward(latent), index, this.maskToken);
    const stack = runStack(this.blocks, addTable(input, this.pos), plan);
    let pred = this.pred.forward(this.norm.forward(stack.out));
    if (this.cls) pred = assembleTokens(pred, dropClsIndex(pred.shape[0]!, this.numPatches, pred.device), null);
    return { pred, input, stack };
  }

  protected override releaseBuffers(): void {
    this.pos.dispose();
  }

  protected override moveFixed(move: (t: Tensor) => void): void {
    move(this.pos);
  }
}
