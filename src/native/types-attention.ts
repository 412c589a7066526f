import type { NativeTensor as N } from './types.js';

type Maybe = N | null;

export interface AttentionNativeOptions {
  scale?: number;
  keyPadding?: N;
  cuSeqlens?: N;
  maxSeqlen?: number;
  alibiSlopes?: N;
  bias?: N;
  attnMask?: N;
  tokenMask?: N;
  excludeMaskedKeys?: boolean;
  entropy?: boolean;
  biasGrad?: boolean;
  /**
   * CUDA: run the shared-memory tiled kernels even where the register-resident
   * bfloat16 ones apply (the tests check both against the reference).
   */
  tiledKernel?: boolean;
  /**
   * CUDA, bfloat16: in the register-resident kernels, the general per-element logit (every mask option) even where
   * their unmasked fast path applies (no mask, bias or ALiBi, a positive scale); the tests check both, and
   * bench:cuda times both.
   */
  mmaGeneral?: boolean;
  /**
   * CPU: the forward's plain chain (the exponentials in a pass of their own) instead of running them inside the
   * P·V product; the tests check that both agree bit for bit.
   */
  plainChain?: boolean;
}

/** Fused multi-head attention (native/src/binding/bind_attention.cc). */
export interface AttentionNative {
  attention(q: N, k: N, v: N, options: AttentionNativeOptions): { out: N; lse: N; entropy?: N };
  attentionBackward(
    dout: N, q: N, k: N, v: N, out: N, lse: N, options: AttentionNativeOptions, dentropy?: Maybe, entropy?: Maybe,
  ): { dq: N; dk: N; dv: N; dbias?: N };
  /** q, k, v as the slices of one qkv [B, L, 3, H, Dh] (or [nnz, 3, H, Dh]), read in place; out [B, L, H, Dh]. */
  attentionQkv(qkv: N, options: AttentionNativeOptions): { out: N; lse: N; entropy?: N };
  attentionQkvBackward(
    dout: N, qkv: N, out: N, lse: N, options: AttentionNativeOptions, dentropy?: Maybe, entropy?: Maybe,
  ): { dqkv: N; dbias?: N };
}
