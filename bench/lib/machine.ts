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
  /**
   * The CPU's family and model numbers with, for AMD, the core generation they mean (null where /proc/cpuinfo
   * does not give them). A VM often names its CPU only "AMD EPYC": Zen 4 (family 25) and Zen 5 (family 26) both
   * appear under that name here, and Zen 5's full-width AVX-512 doubles the FMA peak, so the name alone cannot
   * keep their figures apart.
   */
  cpuid: { vendor: string; family: number; model: number; core: string | null } | null;
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

/**
 * AMD's core generation for a family and model, by the model ranges the Linux kernel uses (bsp_init_amd in
 * arch/x86/kernel/cpu/amd.c): family 17h Zen/Zen+ and Zen 2, 19h Zen 3 and Zen 4, 1Ah Zen 5 and Zen 6. null
 * outside those ranges.
 */
const AMD_CORES: ReadonlyArray<[family: number, core: string, ranges: ReadonlyArray<[number, number]>]> = [
  [0x17, 'Zen or Zen+', [[0x00, 0x2f], [0x50, 0x5f]]],
  [0x17, 'Zen 2', [[0x30, 0x4f], [0x60, 0x7f], [0x90, 0x91], [0xa0, 0xaf]]],
  [0x19, 'Zen 3', [[0x00, 0x0f], [0x20, 0x5f]]],
  [0x19, 'Zen 4', [[0x10, 0x1f], [0x60, 0xaf]]],
  [0x1a, 'Zen 5', [[0x00, 0x2f], [0x40, 0x4f], [0x60, 0x7f]]],
  [0x1a, 'Zen 6', [[0x50, 0x5f], [0x80, 0xaf], [0xc0, 0xef]]],
];
export function amdCore(family: number, model: number): string | null {
  for (const [f, core, ranges] of AMD_CORES) if (f === family && ranges.some(([lo, hi]) => model >= lo && model <= hi)) return core;
  return null;
}

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
  const vendor = field(first, 'vendor_id'), family = Number(field(first, 'cpu family')), modelNo = Number(field(first, 'model'));
  const cpuid = vendor !== undefined && Number.isInteger(family) && Number.isInteger(modelNo)
    ? { vendor, family, model: modelNo, core: vendor === 'AuthenticAMD' ? amdCore(family, modelNo) : null }
    : null;
  return {
    model: field(first, 'model name') ?? field(first, 'Hardware') ?? 'unknown',
    cpuid,
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
  return { model: cpus()[0]?.model ?? 'unknown', cpuid: null, isa: [], cores: null, threads: cpus().length };
}

/** One line: model (family, model number, core generation), cores/threads, ISA. */
export function machineLine(m: Machine): string {
  const ct = m.cores === null ? `${m.threads} logical cores` : `${m.cores} cores / ${m.threads} threads`;
  const id = m.cpuid ? ` (family ${m.cpuid.family} model ${m.cpuid.model}${m.cpuid.core ? `: ${m.cpuid.core}` : ''})` : '';
  return `${m.model}${id}, ${ct}, ISA ${m.isa.length ? m.isa.join(' ') : 'unknown'}`;
}
