/**
 * The MLM batch both sides of bench/mlm-step.ts train on: B×L ids, all tokens real,
 * M = round(B·L·ratio) masked rows at random positions, random targets. The
 * generator is a 32-bit xorshift (13, 17, 5), written identically in
 * bench/baselines/mlm_torch.py, so the torch child masks the same positions.
 */
import { fromTypedArray, type PaddedMlmBatch } from '../../src/index.js';

export interface MlmBatchArrays {
  ids: Int32Array;
  rows: Int32Array;
  targets: Int32Array;
}

function* xorshift(seed: number): Generator<number, never> {
  let x = Number((BigInt(seed) * 2654435761n) % 2n ** 32n) || 1;
  for (;;) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    yield x;
  }
}

/** ids in [5, V); rows: the first M of a Fisher–Yates shuffle of [0, B·L), sorted; targets in [5, V). */
export function mlmBatchArrays(B: number, L: number, V: number, ratio: number, seed: number): MlmBatchArrays {
  const g = xorshift(seed);
  const next = (): number => g.next().value;
  const n = B * L;
  const ids = new Int32Array(n);
  for (let i = 0; i < n; i++) ids[i] = 5 + (next() % (V - 5));
  const perm = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = next() % (i + 1);
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  const M = Math.round(n * ratio);
  const rows = Int32Array.from(perm.slice(0, M)).sort();
  const targets = new Int32Array(M);
  for (let i = 0; i < M; i++) targets[i] = 5 + (next() % (V - 5));
  return { ids, rows, targets };
}

/** The same batch as cloze tensors; attentionMask is all 1 (every token real). */
export function mlmBatch(B: number, L: number, V: number, ratio: number, seed: number): PaddedMlmBatch {
  const a = mlmBatchArrays(B, L, V, ratio, seed);
  return {
    ids: fromTypedArray(a.ids, [B, L]),
    attentionMask: fromTypedArray(new Int32Array(B * L).fill(1), [B, L]),
    rows: fromTypedArray(a.rows, [a.rows.length]),
    targets: fromTypedArray(a.targets, [a.targets.length]),
  };
}
