/** Command-line options of `npm run bench:matmul-attention -- [options]`, and the flag parsers every bench uses. */
import { availableParallelism } from 'node:os';

export interface BenchArgs {
  /** Threads for every implementation (our pool and BLAS, torch intra-op, OpenBLAS). */
  threads: number;
  /** Timed samples per case; the median is reported. */
  reps: number;
  warmup: number;
  /** Attention sequence lengths. */
  lengths: number[];
  /** Square matmul sizes. */
  matmulSizes: number[];
  /** Python with torch for the PyTorch baseline; '' skips it. */
  python: string;
  only: 'all' | 'matmul' | 'attention';
}

const USAGE = `usage: npm run bench:matmul-attention -- [--threads N] [--reps N] [--warmup N] [--lengths 128,256,512]
                                           [--matmul-sizes 256,512,1024,2048] [--python /usr/bin/python3 | --no-torch]
                                           [--only matmul|attention]`;

/** A positive integer flag value; the error ends with the bench's usage text. */
export function positiveInt(name: string, v: string | undefined, usage = USAGE): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`Expected a positive integer for ${name} but received ${v ?? 'nothing'}\n${usage}`);
  return n;
}

/** A positive number flag value (ratios, scales). */
export function positiveNumber(name: string, v: string | undefined, usage = USAGE): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`Expected a positive number for ${name} but received ${v ?? 'nothing'}\n${usage}`);
  return n;
}

/** A comma-separated list of names among `known`, without repeats. */
export function choiceList<T extends string>(name: string, v: string | undefined, known: readonly T[], usage = USAGE): T[] {
  const items = (v ?? '').split(',').filter(Boolean);
  const bad = items.find((x) => !known.includes(x as T));
  if (items.length === 0 || bad !== undefined) throw new Error(`Expected a comma-separated list of ${known.join(', ')} for ${name} but received ${v ?? 'nothing'}\n${usage}`);
  return [...new Set(items)] as T[];
}

/** A comma-separated list of positive integers. */
export function intList(name: string, v: string | undefined, usage = USAGE): number[] {
  return (v ?? '').split(',').map((s) => positiveInt(name, s, usage));
}

export function parseArgs(argv: readonly string[]): BenchArgs {
  const a: BenchArgs = {
    threads: availableParallelism(),
    reps: 7,
    warmup: 1,
    lengths: [128, 256, 512],
    matmulSizes: [256, 512, 1024, 2048],
    python: process.env.CLOZE_TORCH_PYTHON ?? '/usr/bin/python3',
    only: 'all',
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = argv[i + 1];
    switch (k) {
      case '--threads': a.threads = positiveInt(k, v); i++; break;
      case '--reps': a.reps = positiveInt(k, v); i++; break;
      case '--warmup': a.warmup = positiveInt(k, v); i++; break;
      case '--lengths': a.lengths = intList(k, v); i++; break;
      case '--matmul-sizes': a.matmulSizes = intList(k, v); i++; break;
      case '--python': a.python = v ?? ''; i++; break;
      case '--no-torch': a.python = ''; break;
      case '--only':
        if (v !== 'matmul' && v !== 'attention' && v !== 'all') throw new Error(`Expected matmul, attention or all for --only but received ${v}\n${USAGE}`);
        a.only = v;
        i++;
        break;
      case '--help': case '-h': console.log(USAGE); process.exit(0); break;
      default: throw new Error(`Expected an option for bench:matmul-attention but received ${k}\n${USAGE}`);
    }
  }
  return a;
}
