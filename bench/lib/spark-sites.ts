/**
 * SparK's masks and rulebooks for the sparse-op cases, built with the ops
 * themselves: a coarse visible mask [B, g, g] with the same number of visible
 * cells in every image (round(g²·(1 − ratio)), as SparK draws them), repeated
 * up to scale s (side image / 2^s), its active sites, and neighbour tables.
 * Every tensor is the context's, freed when the case ends.
 */
import type { SparkShape } from './model-shapes.js';
import type { CaseContext, NT } from './op-case.js';

export interface SparkSites {
  /** uint8 [B, g, g], 1 = visible. */
  coarse: NT;
  /** Visible sites per scale, finest first: coords int32 [N, 3], grid int32 [B, side, side]. */
  scales: Array<{ side: number; mask: NT; coords: NT; grid: NT; active: number }>;
}

export function sparkSites(ctx: CaseContext, s: SparkShape): SparkSites {
  const { B, grid: g } = s;
  const visible = Math.round(g * g * (1 - s.ratio));
  const bits = new Uint8Array(B * g * g);
  for (let b = 0; b < B; b++) {
    const perm = ctx.permutation(g * g);
    for (let j = 0; j < visible; j++) bits[b * g * g + perm[j]!] = 1;
  }
  const coarse = ctx.uint8(bits, [B, g, g]);
  const n = ctx.addon;
  const scales = s.widths.map((_, i) => {
    const side = s.image >> i;
    const mask = side === g ? coarse : ctx.keep(n.upsampleMask(coarse, side / g));
    const { coords, grid } = ctx.keep(n.activeSites(mask));
    return { side, mask, coords, grid, active: coords.shape[0]! };
  });
  return { coarse, scales };
}

/** The rulebook of a k×k conv at scale i: submanifold (stride 1, same sites) or stride 2 onto scale i + 1. */
export function rulebook(ctx: CaseContext, sites: SparkSites, i: number, k: number, stride: 1 | 2): NT {
  const src = sites.scales[i]!;
  const out = sites.scales[stride === 1 ? i : i + 1]!;
  // SparK's padding: ⌊(k − 1)/2⌋ (convPadding in the SparK task)
  return ctx.keep(ctx.addon.neighbourTable(src.grid, out.coords, k, stride, (k - 1) >> 1));
}
