/** What every bench prints first, and how it reads its flags. */
import { cpus, totalmem } from 'node:os';
import { runtimeInfo } from '../../src/index.js';

/** Parses argv with `parse`; a bad flag prints its message and sets exit status 2, returning null. */
export function parseOrExit<A>(parse: (argv: readonly string[]) => A, argv: readonly string[] = process.argv.slice(2)): A | null {
  try {
    return parse(argv);
  } catch (e) {
    console.error((e as Error).message);
    process.exitCode = 2;
    return null;
  }
}

/** The bench's name, the date, the CPU and the runtime (addon, BLAS and its kernels, GEMM policy, pool, SIMD). */
export function printHeader(name: string, note = ''): void {
  const info = runtimeInfo();
  console.log(`cloze ${name}`);
  console.log(`date      ${new Date().toISOString()}`);
  console.log(`cpu       ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} logical cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`);
  console.log(
    `runtime   node ${process.version}, addon ${info.addon}, BLAS ${info.blas} (${info.blasCore}, ${info.blasThreads} thread(s)), ` +
      `gemm ${info.gemm}, pool ${info.threads} thread(s), SIMD ${info.simdBytes * 8}-bit${note ? `; ${note}` : ''}`,
  );
}
