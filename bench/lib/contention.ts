/**
 * How much of the machine other processes used while the bench ran: busy CPU
 * time of the whole system (/proc/stat) minus this process and its waited-for
 * children (/proc/self/stat), over wall time × cores. On a shared machine a
 * few percent already moves the medians; the bench prints this so a reader
 * can tell a quiet run from a contended one. Linux only; elsewhere null.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { nowMs } from './timing.js';

interface Sample {
  wallMs: number;
  systemTicks: number;
  selfTicks: number;
}

const TICKS_PER_S = 100;  // USER_HZ on Linux

function sample(): Sample | null {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
    const busy = cpu.reduce((a, b) => a + b, 0) - cpu[3]! - (cpu[4] ?? 0);
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    // fields 14..17 of the man page (utime stime cutime cstime) are 11..14 here
    const self = f[11]! + f[12]! + f[13]! + f[14]!;
    return { wallMs: nowMs(), systemTicks: busy, selfTicks: self };
  } catch {
    return null;
  }
}

export class ContentionMeter {
  private readonly start = sample();

  /** Fraction of all cores' time used by other processes since construction, or null. */
  othersShare(): number | null {
    const end = sample();
    if (!this.start || !end) return null;
    const wallTicks = ((end.wallMs - this.start.wallMs) / 1000) * TICKS_PER_S * cpus().length;
    const others = end.systemTicks - this.start.systemTicks - (end.selfTicks - this.start.selfTicks);
    return wallTicks > 0 ? Math.max(0, others / wallTicks) : null;
  }
}

/** One line for the report: "3% of the machine", with a warning above 5%. */
export function describeContention(share: number | null): string {
  if (share === null) return 'other processes: unknown (no /proc)';
  const pct = `${(100 * share).toFixed(0)}%`;
  return share > 0.05
    ? `other processes used ${pct} of the machine during this run: WARNING, numbers are contended; rerun on a quiet machine`
    : `other processes used ${pct} of the machine during this run (quiet)`;
}
