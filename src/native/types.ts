/** Typings of the native addon's exports (native/src/binding). */
export type DType = 'float32' | 'float64' | 'int32' | 'uint8' | 'bfloat16';
/** Where a tensor's memory lives. Transfers between devices are explicit (`to`). */
export type Device = 'cpu' | 'cuda';
/** bfloat16 has no JS typed array: it is read and written as Float32Array. */
export type TypedArrayOf<D extends DType> = D extends 'float32' | 'bfloat16'
  ? Float32Array
  : D extends 'float64'
    ? Float64Array
    : D extends 'int32'
      ? Int32Array
      : Uint8Array;
export type AnyTypedArray = Float32Array | Float64Array | Int32Array | Uint8Array;

export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: DType;
  readonly nbytes: number;
  readonly disposed: boolean;
  readonly device: Device;
  dispose(): void;
  /** Zero-copy view (CPU tensors, not bfloat16); keeps the memory alive until the view is collected. */
  data(): AnyTypedArray;
  /** A copy into JS-owned memory (bfloat16 widened to float32; a cuda tensor waits for its stream). */
  read(): AnyTypedArray;
  /** Copies values in; the array type must match the dtype (Float32Array for bfloat16). */
  write(values: AnyTypedArray): void;
  /** A copy on `device`. */
  to(device: Device): NativeTensor;
  view(offset: number, shape: readonly number[]): NativeTensor;
  reshape(shape: readonly number[]): NativeTensor;
  clone(): NativeTensor;
  copyFrom(src: NativeTensor): void;
  fill(value: number): void;
  cast(dtype: DType): NativeTensor;
  sharesStorage(other: NativeTensor): boolean;
}

type N = NativeTensor;
type Maybe = NativeTensor | null;

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
}

export interface RuntimeInfo {
  backend: 'cpu' | 'cuda';
  blas: 'openblas' | 'builtin';
  /** The kernel family the BLAS chose for this CPU, e.g. 'Haswell' or 'SkylakeX'. */
  blasCore: string;
  /** Which GEMM the ops use: the linked BLAS, or the built-in one (see README). */
  gemm: 'blas' | 'builtin';
  blasThreads: number;
  threads: number;
  simdBytes: number;
  napiVersion: number;
}

export interface CudaInfo {
  name: string;
  computeCapability: string;
  multiprocessors: number;
  memoryBytes: number;
  l2Bytes: number;
  sharedMemoryPerBlockOptin: number;
  driverVersion: number;
  runtimeVersion: number;
}

/** An opaque CUDA stream handle. */
export type CudaStream = { readonly __cudaStream: unique symbol };

import type { MimTokensNative } from './types-mim-tokens.js';
import type { MimLossNative } from './types-mim-loss.js';
import type { ImageAugNative } from './types-image-aug.js';
import type { ConvNative } from './types-conv.js';
import type { SparseNative } from './types-sparse.js';

export interface NativeAddon extends MimTokensNative, MimLossNative, ImageAugNative, ConvNative, SparseNative {
  empty(dtype: DType, shape: readonly number[], device?: Device): N;
  /** Whether the CUDA path can run here, and why not. The CPU addon answers false. */
  cudaAvailable(): { available: boolean; reason: string };
  cudaInfo(): CudaInfo;
  cudaSynchronize(): void;
  cudaMemStats(): { liveBytes: number; cachedBytes: number; peakBytes: number; mallocCalls: number };
  cudaReleaseCache(): void;
  cudaResetPeak(): void;
  cudaCreateStream(): CudaStream;
  cudaSetStream(stream: CudaStream | null): void;
  cudaDestroyStream(stream: CudaStream): void;
  fromTypedArray(array: AnyTypedArray, shape: readonly number[]): N;
  liveBytes(): number;
  cachedBytes(): number;
  releaseCache(): void;
  setCacheLimit(bytes: number): void;
  setNumThreads(n: number): void;
  info(): RuntimeInfo;

  matmul(a: N, b: N, transA: boolean, transB: boolean, impl?: 'auto' | 'builtin' | 'blas'): N;
  matmulBackward(g: N, a: N, b: N, transA: boolean, transB: boolean, needA: boolean, needB: boolean): [Maybe, Maybe];
  linear(x: N, w: N, bias: Maybe): N;
  linearBackward(g: N, x: N, w: N, needX: boolean, needW: boolean, needBias: boolean): [Maybe, Maybe, Maybe];

  add(a: N, b: N): N;
  mul(a: N, b: N): N;
  mulBackward(g: N, a: N, b: N, needA: boolean, needB: boolean): [Maybe, Maybe];
  scale(x: N, factor: number): N;
  axpyInPlace(dst: N, src: N, alpha: number): void;
  biasAdd(x: N, b: N): N;
  sumRows(x: N): N;
  sum(x: N): N;
  mean(x: N): N;
  reduceBackward(g: N, shape: readonly number[], factor: number): N;
  gelu(x: N): N;
  geluBackward(g: N, x: N): N;
  relu(x: N): N;
  reluBackward(g: N, x: N): N;
  dropout(x: N, p: number, seed: number, step: number): N;
  geglu(x: N): N;
  gegluBackward(g: N, x: N): N;

  layerNorm(x: N, w: Maybe, b: Maybe, eps: number): [N, N, N];
  layerNormBackward(dy: N, x: N, w: Maybe, mean: N, rstd: N, needX: boolean, needW: boolean, needB: boolean): [Maybe, Maybe, Maybe];
  softmax(x: N): N;
  softmaxBackward(dy: N, y: N): N;
  crossEntropy(logits: N, targets: N, rows: Maybe, ignoreIndex: number): { loss: N; lse: N; count: number };
  crossEntropyBackward(gradLoss: number, logits: N, targets: N, rows: Maybe, lse: N, ignoreIndex: number, count: number): N;
  argmaxRows(x: N): N;
  embedding(table: N, ids: N): N;
  embeddingBackward(g: N, ids: N, vocabSize: number): N;
  /** On cuda, lse is float32 for every input dtype (pass it back to the backward unchanged). */
  linearCrossEntropy(h: N, w: N, bias: Maybe, targets: N, ignoreIndex: number, chunkSize: number): { loss: N; lse: N; count: number };
  linearCrossEntropyBackward(
    gradLoss: number, h: N, w: N, bias: Maybe, targets: N, lse: N, ignoreIndex: number, count: number, chunkSize: number,
    needInput: boolean, needWeight: boolean, needBias: boolean,
  ): [Maybe, Maybe, Maybe];

  attention(q: N, k: N, v: N, options: AttentionNativeOptions): { out: N; lse: N; entropy?: N };
  attentionBackward(
    dout: N, q: N, k: N, v: N, out: N, lse: N, options: AttentionNativeOptions, dentropy?: Maybe, entropy?: Maybe,
  ): { dq: N; dk: N; dv: N; dbias?: N };

  /**
   * Fused AdamW step, in place. Mixed precision (cuda): a bfloat16 param needs
   * `master`, its float32 weights (same numel); m and v are then float32, grad
   * bfloat16 or float32, and the step updates master and writes param = bf16(master).
   * A float32 (or float64) param takes no master.
   */
  adamw(param: N, grad: N, m: N, v: N, options: {
    lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number; gradScale?: number;
    /** fp32 master weights for a bfloat16 param (cuda): updated in fp32, param = its bf16 rounding. */
    master?: N;
  }): void;
  clipGradNorm(grads: N[], maxNorm: number): number;
  mlmMask(ids: N, select: N, group: Maybe, vocabSize: number, maskId: number, maskProb: number, randomProb: number, randomLow: number, randomHigh: number, seed: number, step: number): { ids: N; rows: N; targets: N };

  toChannelsLast(x: N): N;
  toChannelsFirst(x: N): N;

  /** float32 FMA GFLOP/s of register-resident chains on every pool thread for about `ms` ms (bench yardstick). */
  measurePeakGflops(ms: number): number;
  /** GB/s of dst = s·src over two buffers of bytes/2, every pool thread streaming its slice, for about `ms` ms (bench yardstick). */
  measurePeakBandwidth(ms: number, bytes: number): number;
  /** Returns cached free heap memory to the OS (glibc malloc_trim); false where unsupported. Bench use. */
  releaseFreeMemory(): boolean;
}
