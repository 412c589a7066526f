/**
 * The MIM model: a ViT encoder plus the method's head, and the loss of one
 * micro-batch with its parts.
 * - MAE: encoder on visible patches, MaeDecoder to pixels, normalised-pixel MSE on masked patches.
 * - SimMIM: the mask token replaces masked embeddings at the encoder input, a linear head, L1 on masked pixels.
 * - MTO (ours, the README's image pre-training section), in the blocks that see mask tokens: exclusion through the fused
 *   attention's flags, the data-singularity loss (maskedCosine) and the masked queries' attention entropy.
 * - SBAM and HPM only change MAE's selection; HPM adds a loss-predicting decoder, its ranking loss
 *   and an EMA teacher, which lives in this module (so checkpoints carry it) but not in the optimizer.
 * Device: a step runs where its images are (the task puts them on the model's device). Index tensors and
 * masks drawn on the host are built there and moved once; what is read back is what the method needs on
 * the host (the loss parts for logs, SBAM's column sums, HPM's predicted losses, MAE's mask for CLS rows).
 */
import { noGrad } from '../../autograd/mode.js';
import { ClozeError } from '../../errors.js';
import { Linear } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import { truncNormalAbs } from '../../nn/init.js';
import type { Parameter } from '../../nn/parameter.js';
import { add, reshape, scale, sum } from '../../ops/elementwise.js';
import { maskedCosine, maskedPatchLoss, rankingLoss } from '../../ops/mim_loss.js';
import { assembleTokens, maskFromScores, restoreIndex } from '../../ops/mim_tokens.js';
import { emaUpdate } from '../../optim/ema.js';
import { Rng } from '../../rng.js';
import { tensor, type Tensor } from '../../tensor.js';
import type { Device } from '../../native/types.js';
import { xavierLinear } from '../../models/vit/block.js';
import { gridOf, type VitConfig } from '../../models/vit/config.js';
import { dropClsIndex, MaeDecoder } from '../../models/vit/decoder.js';
import { VitEncoder } from '../../models/vit/encoder.js';
import type { BlockPlan, StackOutput } from '../../models/vit/stack.js';
import { blockMask, hpmScores, keepCount, randomScores, sbamScores } from './masking.js';
import { emaDecay, type MimSettings } from './settings.js';
import type { LossParts } from '../../train/loss-parts.js';

export interface MimStepContext {
  /** Global micro-batch index: the seed of every draw. */
  k: number;
  /** Current epoch (fractional allowed) and the run's total, for HPM's schedule. */
  epoch: number;
  epochs: number;
  /**
   * Data parallel: these images are `rows` of a global batch of `batch`, after `before` on lower ranks. The
   * masks are drawn for the global batch and this rank takes its rows, so the ranks' masks together are the
   * single process's.
   */
  shard?: { before: number; rows: number; batch: number };
  /** Data parallel: the ranks' element-wise sum of a few numbers (SBAM's count of salient patches is a batch statistic). */
  sumAcross?: (xs: readonly number[]) => number[];
}

export interface MimLoss {
  loss: Tensor;
  /** Tensor parts are read by the training loop after the step is queued (src/train/loss-parts.ts). */
  parts: LossParts;
  /** uint8 [B, L] of the step, for tests and statistics. */
  mask: Tensor;
  maskRatio: number;
}

/** [B, 1 + L] on the mask's device with a visible (0) CLS column in front, or the mask itself without CLS. */
function maskRows(mask: Tensor, cls: boolean): Tensor {
  if (!cls) return mask;
  const [B, L] = mask.shape as [number, number];
  const m = mask.toArray();
  const out = new Uint8Array(B * (L + 1));
  for (let b = 0; b < B; b++) out.set(m.subarray(b * L, (b + 1) * L) as Uint8Array, b * (L + 1) + 1);
  return tensor(out, [B, L + 1], 'uint8', mask.device);
}

/** SimMIM's input index on the mask's device: −1 (the mask token) where masked, else the patch itself. */
function replaceIndex(mask: Tensor): Tensor {
  const [B, L] = mask.shape as [number, number];
  const m = mask.toArray();
  const idx = new Int32Array(B * L);
  for (let b = 0; b < B; b++) for (let j = 0; j < L; j++) idx[b * L + j] = m[b * L + j] ? -1 : j;
  return tensor(idx, [B, L], 'int32', mask.device);
}

function identityRestore(B: number, L: number, device: Device): Tensor {
  const idx = new Int32Array(B * L);
  for (let b = 0; b < B; b++) for (let j = 0; j < L; j++) idx[b * L + j] = j;
  return tensor(idx, [B, L], 'int32', device);
}

/** HPM's EMA teacher: the encoder and the loss predictor, never trained directly. */
class HpmTeacher extends Module {
  readonly encoder: VitEncoder;
  readonly predictor: MaeDecoder;
  constructor(c: VitConfig, seed: number) {
    super();
    const rng = new Rng(seed);
    this.encoder = this.registerModule('encoder', new VitEncoder(c, { seed, rng }));
    this.predictor = this.registerModule('predictor', new MaeDecoder(c, 1, rng));
  }
}

export class MimModel extends Module {
  readonly encoder: VitEncoder;
  readonly decoder: MaeDecoder | null;
  readonly head: Linear | null;
  readonly maskToken: Parameter | null;
  readonly predictor: MaeDecoder | null;
  readonly teacher: HpmTeacher | null;
  readonly numPatches: number;

  constructor(
    readonly config: VitConfig,
    readonly settings: MimSettings,
    seed: number,
  ) {
    super();
    const rng = new Rng(seed);
    const c = config;
    this.encoder = this.registerModule('encoder', new VitEncoder(c, { seed, rng }));
    this.numPatches = this.encoder.numPatches;
    const P = c.patch * c.patch * c.channels;
    if (settings.method === 'mae') {
      this.decoder = this.registerModule('decoder', new MaeDecoder(c, P, rng));
      this.head = null;
      this.maskToken = null;
    } else {
      this.decoder = null;
      // SimMIM (models/simmim.py): VisionTransformerForSimMIM's _trunc_normal_ passes a=−std, b=std to timm's
      // trunc_normal_, so its mask token is N(0, 0.02²) cut at ±0.02 (±1σ).
      this.maskToken = this.registerParameter('mask_token', truncNormalAbs([1, c.dim], 0.02, -0.02, 0.02, rng, false));
      this.head = this.registerModule('head', xavierLinear(c.dim, P, { rng }));
    }
    if (settings.masking === 'hpm') {
      this.predictor = this.registerModule('predictor', new MaeDecoder(c, 1, rng));
      this.teacher = this.registerModule('teacher', new HpmTeacher(c, seed + 1));
      this.syncTeacher();
    } else {
      this.predictor = null;
      this.teacher = null;
    }
  }

  /** What the optimizer trains: everything but the teacher. */
  trainableParameters(): Parameter[] {
    const teacher = new Set<Parameter>(this.teacher?.parameters() ?? []);
    return this.parameters().filter((p) => !teacher.has(p));
  }

  private studentParams(): Tensor[] {
    return [...this.encoder.parameters(), ...this.predictor!.parameters()];
  }

  private teacherParams(): Tensor[] {
    return [...this.teacher!.encoder.parameters(), ...this.teacher!.predictor.parameters()];
  }

  /** HPM: the teacher becomes a copy of the student (at construction, and after loading weights without a teacher). */
  syncTeacher(): void {
    if (this.teacher) emaUpdate(this.teacherParams(), this.studentParams(), 0);
  }

  /** After each optimizer step: HPM's teacher follows the student. */
  updateTeacher(epoch: number): void {
    if (this.teacher) emaUpdate(this.teacherParams(), this.studentParams(), emaDecay(epoch, this.settings.hpm));
  }

  /** HPM: the teacher's predicted loss for every patch of the full image, [B·L]. */
  private teacherPredict(images: Tensor): Float32Array {
    return noGrad(() => {
      const t = this.teacher!;
      const x = t.encoder.withCls(t.encoder.withPos(t.encoder.embed(images).x));
      const h = t.encoder.encode(x).out;
      const B = images.shape[0]!;
      const L = this.numPatches;
      const pred = t.predictor.forward(h, restoreIndex(identityRestore(B, L, images.device), L, this.config.cls)).pred;
      return pred.toArray() as Float32Array;
    });
  }

  loss(images: Tensor, ctx: MimStepContext): MimLoss {
    return this.settings.method === 'mae' ? this.maeLoss(images, ctx) : this.simmimLoss(images, ctx);
  }

  /** MTO's plan for a stack of `depth` blocks whose rows are flagged by `rows`. */
  private mtoPlan(rows: Tensor): BlockPlan {
    const m = this.settings.mto;
    if (!m) return {};
    const collect = Array.from({ length: m.singularityBlocks }, (_, i) => i + 1);
    return {
      tokenMask: rows,
      excludeBlocks: m.exclusion ? m.blocks : 0,
      entropyBlocks: m.entropyWeight > 0 ? m.blocks : 0,
      collect: m.singularityWeight > 0 ? collect : [],
    };
  }

  /**
   * MTO's extra terms: w·cos at the input, w·(S+1−l)/(S+1)·cos after block l ≤ S
   * (the weight falls linearly with depth), and the entropy weight times the mean
   * attention entropy of masked queries over the measured blocks and heads. The singularity
   * terms compare mask tokens with visible *patches*, so a CLS row is dropped first.
   */
  private mtoTerms(input: Tensor, rows: Tensor, mask: Tensor, stack: StackOutput, maskedRows: number, parts: LossParts): Tensor | null {
    const m = this.settings.mto;
    if (!m) return null;
    const [B, L] = mask.shape as [number, number];
    const patchesOnly = (t: Tensor): Tensor => (t.shape[1] === L ? t : assembleTokens(t, dropClsIndex(B, L, t.device), null));
    let total: Tensor | null = null;
    const plus = (t: Tensor): void => {
      total = total ? add(total, t) : t;
    };
    if (m.singularityWeight > 0) {
      let sing = maskedCosine(patchesOnly(input), mask);
      const S = m.singularityBlocks;
      for (const [l, h] of stack.hidden) sing = add(sing, scale(maskedCosine(patchesOnly(h), mask), (S + 1 - l) / (S + 1)));
      parts.singularity = sing;
      plus(scale(sing, m.singularityWeight));
    }
    if (m.entropyWeight > 0 && stack.entropies.length > 0 && maskedRows > 0) {
      let ent: Tensor | null = null;
      for (const e of stack.entropies) ent = ent ? add(ent, sum(e)) : sum(e);
      const heads = stack.entropies[0]!.shape[1]!;
      const meanEnt = scale(ent!, 1 / (heads * maskedRows * stack.entropies.length));
      parts.entropy = meanEnt;
      plus(scale(meanEnt, m.entropyWeight));
    }
    return total;
  }

  private maeLoss(images: Tensor, ctx: MimStepContext): MimLoss {
    const s = this.settings;
    const enc = this.encoder;
    const dec = this.decoder!;
    const B = images.shape[0]!;
    const L = this.numPatches;
    const { patches, x: raw } = enc.embed(images);
    const x = enc.withPos(raw);
    const parts: LossParts = {};
    let ratio = s.maskRatio;
    let scores: Tensor;
    if (s.masking === 'sbam') {
      // Data parallel: the noise of the global batch's rows, and the salient-patch count summed over the ranks, so
      // the adaptive ratio (a statistic of the whole batch) is one process's.
      const sh = ctx.shard ? checkShard(ctx.shard, B) : null;
      if (sh && !ctx.sumAcross) throw new ClozeError('E_VALUE', 'Expected sumAcross with a shard for SBAM (its ratio is a statistic of the global batch) but received none');
      const d = sbamScores(x, { base: s.maskRatio, delta: s.sbam.delta, threshold: s.sbam.threshold, seed: s.seed, k: ctx.k, ...(sh ? { shard: sh, sumAcross: ctx.sumAcross! } : {}) });
      scores = d.scores;
      ratio = d.ratio;
      parts.sbamRho = d.rho;
    } else if (s.masking === 'hpm') {
      const keep = keepCount(L, ratio);
      const sh = ctx.shard ? checkShard(ctx.shard, B) : null;
      const h = hpmScores(this.teacherPredict(images), B, L, keep, { epoch: Math.floor(ctx.epoch), epochs: ctx.epochs, seed: s.seed, k: ctx.k, device: images.device, ...(sh ? { shard: sh } : {}) });
      scores = h.scores;
      parts.hpmHard = h.hard;
    } else if (ctx.shard) {
      // The global batch's noise (a pure function of seed and k), this rank's rows of it.
      const sh = checkShard(ctx.shard, B);
      scores = shardRows(randomScores(sh.batch, L, s.seed, ctx.k, 'cpu'), sh).to(images.device);
    } else {
      scores = randomScores(B, L, s.seed, ctx.k, images.device);
    }
    // Never zero visible patches: the encoder needs at least one.
    const keep = Math.max(1, keepCount(L, ratio));
    const { idsKeep, idsRestore, mask } = maskFromScores(scores, keep);
    const latent = enc.encode(enc.withCls(assembleTokens(x, idsKeep, null))).out;
    const index = restoreIndex(idsRestore, keep, this.config.cls);
    const rows = maskRows(mask, this.config.cls);
    const d = dec.forward(latent, index, this.mtoPlan(rows));
    const rec = maskedPatchLoss(d.pred, patches, mask, { kind: 'mse', normPix: s.normPixLoss });
    parts.reconstruction = rec.loss;
    let loss = rec.loss;
    const mto = this.mtoTerms(d.input, rows, mask, d.stack, B * (L - keep), parts);
    if (mto) loss = add(loss, mto);
    if (this.predictor) {
      const predicted = reshape(this.predictor.forward(latent, index).pred, [B, L]);
      const pairs = { count: 0 };
      let rank = rankingLoss(predicted, rec.perPatch, mask, pairs);
      if (ctx.shard) {
        // The mean is over untied pairs, whose count differs between ranks: the rank's share of the global mean is its
        // mean times its pairs over all ranks' pairs, divided by rows/batch since the task scales every term by that.
        if (!ctx.sumAcross) throw new ClozeError('E_VALUE', 'Expected sumAcross with a shard for HPM (its ranking loss is a mean over the global batch\'s pairs) but received none');
        const all = ctx.sumAcross([pairs.count])[0]!;
        rank = scale(rank, all > 0 ? (pairs.count / all) * (ctx.shard.batch / ctx.shard.rows) : 0);
      }
      parts.ranking = rank;
      loss = add(loss, scale(rank, s.hpm.weight));
    }
    return { loss, parts, mask, maskRatio: (L - keep) / L };
  }

  private simmimLoss(images: Tensor, ctx: MimStepContext): MimLoss {
    const s = this.settings;
    const enc = this.encoder;
    const B = images.shape[0]!;
    const L = this.numPatches;
    const [gh, gw] = gridOf(this.config);
    const { patches, x } = enc.embed(images);
    // Drawn on the host: the index, rows and count come from the host mask, and each goes to the device once.
    const m1 = s.masking === 'block' ? s.maskPatch : 1;
    const hostMask = ctx.shard
      ? shardRows(blockMask(checkShard(ctx.shard, B).batch, gh, gw, m1, s.maskRatio, s.seed, ctx.k), ctx.shard)
      : blockMask(B, gh, gw, m1, s.maskRatio, s.seed, ctx.k);
    const dev = images.device;
    const mask = hostMask.to(dev);
    const replaced = assembleTokens(x, replaceIndex(hostMask).to(dev), this.maskToken!);
    const rows = this.config.cls ? maskRows(hostMask, true).to(dev) : mask;
    const e = enc.encode(enc.withCls(enc.withPos(replaced)), this.mtoPlan(rows));
    let h = e.out;
    if (this.config.cls) h = assembleTokens(h, dropClsIndex(B, L, h.device), null);
    const pred = this.head!.forward(h);
    const rec = maskedPatchLoss(pred, patches, mask, { kind: 'l1', normPix: false });
    const parts: LossParts = { reconstruction: rec.loss };
    let loss = rec.loss;
    let masked = 0;
    const m = hostMask.toArray();
    for (let i = 0; i < m.length; i++) masked += m[i]!;
    // The input term compares the mask token with the visible patch embeddings (before positions).
    const mto = this.mtoTerms(replaced, rows, mask, e, masked, parts);
    if (mto) loss = add(loss, mto);
    return { loss, parts, mask, maskRatio: masked / (B * L) };
  }
}

/** The shard checked against the images and the method. */
function checkShard(sh: NonNullable<MimStepContext["shard"]>, B: number): NonNullable<MimStepContext['shard']> {
  if (sh.rows !== B || sh.before < 0 || sh.before + sh.rows > sh.batch) {
    throw new ClozeError('E_SHAPE', `Expected a shard of ${B} images (the batch) within a global batch of ${sh.batch} for shard but received rows ${sh.rows} after ${sh.before}`);
  }
  return sh;
}

/** Rows [before, before + rows) of a host [N, L] tensor, as a new host tensor (the input is disposed). */
function shardRows(t: Tensor, sh: { before: number; rows: number }): Tensor {
  try {
    const [, L] = t.shape as [number, number];
    const a = t.toArray();
    return tensor(a.slice(sh.before * L, (sh.before + sh.rows) * L) as Float32Array | Uint8Array, [sh.rows, L], t.dtype);
  } finally {
    t.dispose();
  }
}
