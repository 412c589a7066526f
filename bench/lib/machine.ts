/**
 * What machine a figure came from: CPU model, the vector ISA it offers, its
 * physical cores and hardware threads (from /proc/cpuinfo on Linux), and the
 * BLAS build and kernel family the addon runs. Printed by every bench's
 * header so figures from different machines are never read as one.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

export interface Machine {
  model: string;
  /** The vector-ISA flags present (of ISA_FLAGS), in that order. */
  isa: string[];
  /** Physical cores, or null where /proc/cpuinfo does not say. */
  cores: number | null;
  threads: number;
}

/** The flags that decide which GEMM and SIMD kernels run. */
export const ISA_FLAGS = [
  'sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512dq', 'avx512bw', 'avx512vl', 'avx512_vnni', 'avx512_bf16', 'avx512_fp16',
  'amx_tile', 'amx_bf16', 'asimd', 'sve',
] as const;

/** Parses /proc/cpuinfo text; pure, so it is tested on fixed inputs. */
export function parseCpuinfo(text: string): Machine {
  const blocks = text.split(/\n\s*\n/).filter((b) => b.trim());
  const field = (b: string, k: string): string | undefined => {
    const m = new RegExp(`^${k}\\s*:\\s*(.*)$`, 'm').exec(b);
    return m?.[1]?.trim();
  };
  const first = blocks[0] ?? '';
  const flags = new Set((field(first, 'flags') ?? field(first, 'Features') ?? '').split(/\s+/));
  const physical = new Set<string>();
  for (const b of blocks) {
    const core = field(b, 'core id');
    if (core !== undefined) physical.add(`${field(b, 'physical id') ?? '0'}:${core}`);
  }
  const processors = blocks.filter((b) => field(b, 'processor') !== undefined).length;
  return {
    model: field(first, 'model name') ?? field(first, 'Hardware') ?? 'unknown',
    isa: ISA_FLAGS.filter((f) => flags.has(f)),
    cores: physical.size > 0 ? physical.size : null,
    threads: processors,
  };
}

/** This machine, from /proc/cpuinfo where there is one, else from os.cpus() (no ISA, no core count). */
export function describeMachine(): Machine {
  try {
    const m = parseCpuinfo(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m.threads > 0) return m;
  } catch {
    // not Linux: fall through
  }
  return { model: cpus()[0]?.model ?? 'unknown', isa: [], cores: null, threads: cpus().length };
}

/** One line: model, cores/threads, ISA. */
export function machineLine(m: Machine): string {
  const ct = m.cores === null ? `${m.threads} logical cores` : `${m.cores} cores / ${m.threads} threads`;
  return `${m.model}, ${ct}, ISA ${m.isa.length ? m.isa.join(' ') : 'unknown'}`;
}
