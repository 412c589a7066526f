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
  /** A tensor sharing this one's storage from element `offset` (any device and dtype). */
  view(offset: number, shape: readonly number[]): NativeTensor;
  reshape(shape: readonly number[]): NativeTensor;
  clone(): NativeTensor;
  copyFrom(src: NativeTensor): void;
  fill(value: number): void;
  cast(dtype: DType): NativeTensor;
  sharesStorage(other: NativeTensor): boolean;
}

export interface RuntimeInfo {
  backend: 'cpu' | 'cuda';
  blas: 'openblas' | 'builtin';
  /** The kernel family the BLAS chose for this CPU, e.g. 'Haswell' or 'SkylakeX'. */
  blasCore: string;
  /** The BLAS build's configuration string (openblas_get_config: version, target, threading), or 'builtin'. */
  blasConfig: string;
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

import type { AttentionNative } from './types-attention.js';
import type { BatchNormNative } from './types-batchnorm.js';
import type { ConvNative } from './types-conv.js';
import type { CrossEntropyNative } from './types-cross_entropy.js';
import type { DropoutNative } from './types-dropout.js';
import type { ElementwiseNative } from './types-elementwise.js';
import type { EmbeddingNative } from './types-embedding.js';
import type { GegluNative } from './types-geglu.js';
import type { ImageAugNative } from './types-image_aug.js';
import type { LayerNormNative } from './types-layernorm.js';
import type { LayoutNative } from './types-layout.js';
import type { LinalgNative } from './types-linalg.js';
import type { LabelWordsNative } from './types-label_words.js';
import type { LinearCeNative } from './types-linear_ce.js';
import type { MaskedLinearNative } from './types-masked_linear.js';
import type { MimLossNative } from './types-mim_loss.js';
import type { MimTokensNative } from './types-mim_tokens.js';
import type { MlmMaskNative } from './types-mlm_mask.js';
import type { OptimNative } from './types-optim.js';
import type { PgdNative } from './types-pgd.js';
import type { AsaNative } from './types-asa.js';
import type { PoolNative } from './types-pool.js';
import type { SoftmaxNative } from './types-softmax.js';
import type { SparseConvNative } from './types-sparse_conv.js';
import type { SparseNormPoolNative } from './types-sparse_norm_pool.js';
import type { SparseRulebookNative } from './types-sparse_rulebook.js';

/**
 * The addon: one interface per op family (types-<family>.ts, named as in
 * src/ops/list.ts), plus the tensor, runtime and device calls below.
 */
export interface NativeAddon
  extends ElementwiseNative, DropoutNative, GegluNative, LayerNormNative, SoftmaxNative, CrossEntropyNative, EmbeddingNative,
    LinalgNative, LinearCeNative, LabelWordsNative, AttentionNative, OptimNative, MlmMaskNative, MimTokensNative, MimLossNative,
    ImageAugNative, ConvNative, BatchNormNative, PoolNative, SparseRulebookNative, SparseConvNative, SparseNormPoolNative, LayoutNative,
    PgdNative, MaskedLinearNative, AsaNative {
  empty(dtype: DType, shape: readonly number[], device?: Device): NativeTensor;
  /** Whether the CUDA path can run here, and why not. The CPU addon answers false. */
  cudaAvailable(): { available: boolean; reason: string };
  cudaInfo(): CudaInfo;
  /** Data parallel over host copies: this rank takes device localRank % device count; returns its index. */
  cudaSelectDevice(localRank: number): number;
  cudaSynchronize(): void;
  cudaMemStats(): { liveBytes: number; cachedBytes: number; peakBytes: number; mallocCalls: number };
  cudaReleaseCache(): void;
  cudaResetPeak(): void;
  cudaCreateStream(): CudaStream;
  cudaSetStream(stream: CudaStream | null): void;
  cudaDestroyStream(stream: CudaStream): void;
  fromTypedArray(array: AnyTypedArray, shape: readonly number[]): NativeTensor;
  liveBytes(): number;
  cachedBytes(): number;
  releaseCache(): void;
  setCacheLimit(bytes: number): void;
  setNumThreads(n: number): void;
  info(): RuntimeInfo;

  /** float32 FMA GFLOP/s of register-resident chains on every pool thread for about `ms` ms (bench yardstick). */
  measurePeakGflops(ms: number): number;
  /** GB/s of dst = s·src over two buffers of bytes/2, every pool thread streaming its slice, for about `ms` ms (bench yardstick). */
  measurePeakBandwidth(ms: number, bytes: number): number;
  /**
   * The thread pool's scheduling, traced (tests): [runs, thread, order begun] per task of [0, n), then 1 if the
   * scheduler rethrew, under parallel_for_contiguous (contiguous) or the plain parallel_for. Task slowTask first
   * sleeps slowUs µs (−2: every task; −1: none); task throwTask (−1: none) throws.
   */
  poolScheduleTrace(n: number, slowTask: number, slowUs: number, contiguous: boolean, throwTask: number): Int32Array;
  /** The largest power of two, up to 4096, dividing the address of t's first element (tests of Storage's alignment). */
  storageAlignment(t: NativeTensor): number;
  /** Returns cached free heap memory to the OS (glibc malloc_trim); false where unsupported. Bench use. */
  releaseFreeMemory(): boolean;

  // MPI (native/src/binding/bind_mpi.cc). Without MPI at build time every call but mpiAvailable throws.
  /** Whether the addon was built with MPI, why not, and the MPI library's version line. */
  mpiAvailable(): { available: boolean; reason: string; library: string };
  /** MPI_Init_thread (FUNNELED), idempotent: this process's rank and the world size. */
  mpiInit(): { rank: number; size: number };
  mpiFinalize(): void;
  /** In-place SUM over all ranks of a float32/float64 CPU tensor. */
  mpiAllreduce(t: NativeTensor): void;
  /** The same, started; `t` must not be read or written until mpiWait(handle) returns. */
  mpiIallreduce(t: NativeTensor): number;
  mpiIbarrier(): number;
  /** Waits for a started collective; throws naming it when it has not completed within timeoutMs. */
  mpiWait(handle: number, timeoutMs: number): void;
  /** One MPI_Test: whether the collective has completed (and a push of its progress); the handle stays waitable. */
  mpiTest(handle: number): boolean;
  /** In place, from `root` to every rank. */
  mpiBroadcast(buffer: AnyTypedArray, root: number): void;
  /** Terminates every rank of the job with `code`. */
  mpiAbort(code: number): void;

  // NCCL (native/src/binding/bind_nccl.cc): the cuda addon dlopen()s libnccl.so.2 on first use; in the CPU addon
  // ncclAvailable says built: false and every other call throws "NCCL needs the cuda addon".
  /** Whether this addon has the NCCL path (built), whether libnccl.so.2 loads (reason: dlopen's message), its version. */
  ncclAvailable(): { built: boolean; available: boolean; reason: string; version: string };
  /** A new 128-byte unique id (rank 0 makes it; the others receive it over MPI). */
  ncclGetUniqueId(): Uint8Array;
  /** Selects device localRank % count, then joins the communicator of `size` ranks with that id: a handle. */
  ncclCommInitRank(id: Uint8Array, rank: number, size: number, localRank: number): number;
  /** In-place SUM of a cuda float32/bfloat16 tensor, queued on the current stream. */
  ncclAllReduce(comm: number, t: NativeTensor): void;
  /** Waits until the current stream has run the queued all-reduces; throws when a peer failed or timeoutMs passed. */
  ncclWait(comm: number, timeoutMs: number): void;
  ncclCommDestroy(comm: number): void;
  ncclCommAbort(comm: number): void;
}
