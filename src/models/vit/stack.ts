/**
 * A stack of ViT blocks with a per-block attention plan: which blocks apply
 * MTO's exclusion (visible queries ignore masked keys) and report the
 * attention entropy of masked queries, and after which blocks the hidden
 * states are handed back (MTO's deeper data-singularity terms).
 */
import { ModuleList } from '../../nn/module-list.js';
import type { AttentionOptions } from '../../ops/attention.js';
import type { Tensor } from '../../tensor.js';
import type { VitBlock } from './block.js';

export interface BlockPlan {
  /** uint8 [B, L] over the stack's rows, 1 = mask token. Needed by the two flags below. */
  tokenMask?: Tensor;
  /** Blocks 0 … excludeBlocks−1 apply the exclusion. */
  excludeBlocks?: number;
  /** Blocks 0 … entropyBlocks−1 return masked queries' attention entropy. */
  entropyBlocks?: number;
  /** Hand back the hidden state after this many blocks (1 = after the first), each. */
  collect?: number[];
}

export interface StackOutput {
  out: Tensor;
  /** One [B, H, L] per block that measured it, in order. */
  entropies: Tensor[];
  /** Hidden states by block count, for `collect`. */
  hidden: Map<number, Tensor>;
}

export function runStack(blocks: ModuleList<VitBlock>, x: Tensor, plan: BlockPlan = {}): StackOutput {
  const entropies: Tensor[] = [];
  const hidden = new Map<number, Tensor>();
  const want = new Set(plan.collect ?? []);
  let h = x;
  blocks.items.forEach((b, i) => {
    const opts: AttentionOptions = {};
    const exclude = i < (plan.excludeBlocks ?? 0);
    const entropy = i < (plan.entropyBlocks ?? 0);
    if ((exclude || entropy) && plan.tokenMask) {
      opts.tokenMask = plan.tokenMask;
      opts.excludeMaskedKeys = exclude;
      opts.entropy = entropy;
    }
    const r = b.forward(h, opts);
    h = r.out;
    if (r.entropy) entropies.push(r.entropy);
    if (want.has(i + 1)) hidden.set(i + 1, h);
  });
  return { out: h, entropies, hidden };
}
