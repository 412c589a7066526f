/**
 * SparK's masks and everything derived from them for one batch: the coarse
 * mask (one cell per 2^(stages−1) pixels, ratio r kept exactly per image, as
 * SparK's argsort of noise), its nearest-neighbour upsampling to every scale
 * (nested and aligned), the active sites of each scale and the rulebooks
 * (neighbour tables), built once per (scale, kernel, stride) and shared by
 * every layer of that scale and by the backward. Create and use it inside one
 * scope(): its tensors live as long as the step. The coarse mask is drawn on
 * the host (it is a host array); its tensor goes to the context's device once,
 * and everything derived from it (upsampled masks, sites, rulebooks) is made
 * there by the native ops.
 */
import { maskFromScores, uniformNoise } from '../../ops/mim_tokens.js';
import { activeSites, neighbourTable } from '../../ops/sparse_rulebook.js';
import { upsampleMask } from '../../ops/pool.js';
import { tensor, type Tensor } from '../../tensor.js';
import type { Device } from '../../native/types.js';
import { scope } from '../../autograd/mode.js';

export type SparkMode = 'sparse' | 'masked-dense';

/** Seed stream of SparK's mask noise (distinct from the MIM streams). */
const SPARK_STREAM = 7;

/** uint8 [B, g·g], 1 = visible cell: keep = round(g²·(1 − ratio)) per image, lowest noise kept. */
export function sparkCoarseMask(B: number, g: number, ratio: number, seed: number, k: number): Uint8Array {
  const L = g * g;
  const keep = Math.round(L * (1 - ratio));
  const removed = scope(() => maskFromScores(uniformNoise([B, L], (seed * 16 + SPARK_STREAM) % 2 ** 31, k), keep).mask.toArray());
  return Uint8Array.from(removed, (m) => 1 - m);
}

/** Padding of a k×k conv: "same" at stride 1; at stride 2, floor((k−1)/2), so output site (y, x) reads input 2y − p …. */
export function convPadding(kernel: number, stride: number): number {
  return stride === 1 ? (kernel - 1) / 2 : Math.floor((kernel - 1) / 2);
}

export class MaskContext {
  private readonly masks = new Map<number, Tensor>();
  private readonly sitesByScale = new Map<number, { coords: Tensor; grid: Tensor }>();
  private readonly tables = new Map<string, Tensor>();

  /**
   * `visible`: uint8 [B, g·g] coarse mask (1 = visible), or null for whole images (no masking at all).
   * Scale s has side imageSize / 2^s; the coarsest scale is `scales − 1`.
   * `device`: where the step's images are, and so every mask, site list and rulebook.
   */
  constructor(
    readonly mode: SparkMode,
    readonly B: number,
    readonly imageSize: number,
    readonly scales: number,
    readonly visible: Uint8Array | null,
    readonly device: Device = 'cpu',
  ) {}

  get full(): boolean {
    return this.visible === null;
  }

  side(s: number): number {
    return this.imageSize >> s;
  }

  /** uint8 [B, H_s, W_s], 1 = visible (all ones for whole images): the coarse mask repeated natively. */
  mask(s: number): Tensor {
    let m = this.masks.get(s);
    if (!m) {
      const g = this.side(this.scales - 1);
      const n = this.side(s);
      if (!this.visible) {
        m = tensor(new Uint8Array(this.B * n * n).fill(1), [this.B, n, n], 'uint8', this.device);
      } else {
        const coarse = tensor(this.visible, [this.B, g, g], 'uint8', this.device);
        m = n === g ? coarse : upsampleMask(coarse, n / g);
      }
      this.masks.set(s, m);
    }
    return m;
  }

  /** Active sites of scale s: coords int32 [N, 3] in (b, y, x) order and the index grid. */
  sites(s: number): { coords: Tensor; grid: Tensor } {
    let r = this.sitesByScale.get(s);
    if (!r) {
      r = activeSites(this.mask(s));
      this.sitesByScale.set(s, r);
    }
    return r;
  }

  /** Rulebook of a k×k conv at scale s: stride 1 keeps the sites (submanifold); stride 2 maps onto scale s+1's sites. */
  table(s: number, kernel: number, stride: 1 | 2): Tensor {
    const key = `${s}:${kernel}:${stride}`;
    let t = this.tables.get(key);
    if (!t) {
      const padding = convPadding(kernel, stride);
      t = neighbourTable(this.sites(s).grid, this.sites(stride === 1 ? s : s + 1).coords, { kernel, stride, padding });
      this.tables.set(key, t);
    }
    return t;
  }
}
