/** What every bench prints first, and how it reads its flags. */
import { execFileSync } from 'node:child_process';
import { totalmem } from 'node:os';
import { runtimeInfo } from '../../src/index.js';
import { describeMachine, machineLine } from './machine.js';

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

/**
 * The bench's name, the date, the machine (CPU model, cores and threads, vector ISA), the BLAS build
 * and the runtime (addon, BLAS kernels, GEMM policy, pool, SIMD): figures from different machines must
 * never be compared as if they were one.
 */
export function printHeader(name: string, note = ''): void {
  const info = runtimeInfo();
  console.log(`cloze ${name}`);
  console.log(`date      ${new Date().toISOString()}`);
  console.log(`cpu       ${machineLine(describeMachine())}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`);
  console.log(`blas      ${info.blasConfig ?? info.blas}`);
  console.log(
    `runtime   node ${process.version}, addon ${info.addon}, BLAS ${info.blas} (${info.blasCore}, ${info.blasThreads} thread(s)), ` +
      `gemm ${info.gemm}, pool ${info.threads} thread(s), SIMD ${info.simdBytes * 8}-bit${note ? `; ${note}` : ''}`,
  );
}

/** Which sources were measured: the git revision and any uncommitted native or TS sources. */
export function sourceState(): string {
  try {
    const git = (...a: string[]) => execFileSync('git', a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const rev = git('rev-parse', '--short', 'HEAD').trim();
    // porcelain lines are "XY path": the status letters may start with a space
    const dirty = git('status', '--porcelain', '--', 'native/src', 'src').split('\n').filter(Boolean).map((l) => l.slice(3));
    return dirty.length ? `git ${rev} with uncommitted changes in ${dirty.join(', ')}` : `git ${rev}, native/src and src clean`;
  } catch {
    return 'not a git checkout';
  }
}
