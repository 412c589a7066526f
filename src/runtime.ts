/** Facts about the loaded backend, and its knobs. */
import { loadAddon, native } from './native/loader.js';
import type { RuntimeInfo } from './native/types.js';
import { checkInt } from './validate.js';

export interface BackendInfo extends RuntimeInfo {
  /** Path of the loaded addon. */
  addon: string;
}

/** Which backend, BLAS and thread counts are in use. */
export function runtimeInfo(): BackendInfo {
  const { addon, path } = loadAddon();
  return { ...addon.info(), addon: path };
}

/** Sizes the native thread pool (and BLAS) to n threads. */
export function setNumThreads(n: number): void {
  checkInt(n, 'threads', 1, 1024);
  native().setNumThreads(n);
}

/** Bytes of native memory currently held by tensors. */
export function liveBytes(): number {
  return native().liveBytes();
}
