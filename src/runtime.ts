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

/** Bytes of freed large blocks kept for reuse (not counted in liveBytes). */
export function cachedBytes(): number {
  return native().cachedBytes();
}

/** Returns every cached block to the system. */
export function releaseCache(): void {
  native().releaseCache();
}

/** Caps the block cache (default: 1 GiB or 1/8 of RAM, whichever is less); 0 turns it off. */
export function setCacheLimit(bytes: number): void {
  checkInt(bytes, 'bytes', 0, 2 ** 50);
  native().setCacheLimit(bytes);
}
