/**
 * Peak resident-set growth of this process during a call: free memory still
 * cached, by the addon's large-block cache (releaseCache) and by the C heap
 * (malloc_trim), is first handed back, so the step starts from no cached
 * memory, as the torch side does after its malloc_trim; the kernel's
 * high-water mark (VmHWM) is reset to the current RSS by writing 5 to
 * /proc/self/clear_refs, then read back after the call. It counts every page
 * touched, allocator caching and the JS heap included, so it compares with
 * the same figure from the torch process (attention_torch.py measures it the
 * same way). Linux only; null where /proc does not allow it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { native } from '../../src/native/loader.js';

function statusKiB(field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/self/status`);
  return Number(m[1]);
}

export function peakRssGrowth(fn: () => void): number | null {
  let before: number;
  try {
    native().releaseCache();
    native().releaseFreeMemory();
    writeFileSync('/proc/self/clear_refs', '5');
    before = statusKiB('VmRSS');
  } catch {
    fn();
    return null;
  }
  fn();
  return (statusKiB('VmHWM') - before) * 1024;
}

/** VmHWM now: the whole process's peak resident set; null without /proc. */
export function vmHwmBytes(): number | null {
  try {
    return statusKiB('VmHWM') * 1024;
  } catch {
    return null;
  }
}
