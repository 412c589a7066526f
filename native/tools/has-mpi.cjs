// MPI for data-parallel training, found as binding.gyp finds OpenBLAS: the
// build never fails for lack of it. Asks Open MPI's (or MPICH's) compiler
// wrapper for its flags:
//   node has-mpi.cjs           1 when `mpicc` answers and its mpi.h exists, else 0
//   node has-mpi.cjs --cflags  the include directories (-I…), one a line, without -I
//   node has-mpi.cjs --libs    the link flags (-L… -lmpi), one a line
// CLOZE_NO_MPI=1 forces a build without MPI (what CI's no-MPI check uses).
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

function wrapper(arg) {
  for (const cc of [process.env.MPICC, 'mpicc'].filter(Boolean)) {
    try {
      return execFileSync(cc, [arg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split(/\s+/).filter(Boolean);
    } catch {
      // not installed, or not this wrapper's flag syntax (Open MPI and MPICH both take --showme:* / -show differently)
    }
  }
  return null;
}

function flags() {
  if (process.env.CLOZE_NO_MPI === '1') return null;
  const compile = wrapper('--showme:compile');
  const link = wrapper('--showme:link');
  if (!compile || !link) return null;
  const incs = compile.filter((f) => f.startsWith('-I')).map((f) => f.slice(2));
  if (!incs.some((d) => fs.existsSync(path.join(d, 'mpi.h')))) return null;
  // Only the directories and libraries: the wrapper's other flags (-pthread, -Wl,…) are not needed by an addon.
  // A -Wl,-rpath from the wrapper may come as two tokens (-Wl,-rpath -Wl,/dir); rebuilding one rpath per -L
  // directory keeps the run path without splitting such a pair.
  const dirs = link.filter((f) => f.startsWith('-L'));
  const libs = [...dirs, ...link.filter((f) => f.startsWith('-l')), ...dirs.map((d) => `-Wl,-rpath,${d.slice(2)}`)];
  if (!libs.some((f) => f === '-lmpi')) return null;
  return { incs, libs };
}

const f = flags();
if (process.argv.includes('--cflags')) process.stdout.write(f ? f.incs.join('\n') : '');
else if (process.argv.includes('--libs')) process.stdout.write(f ? f.libs.join('\n') : '');
else process.stdout.write(f ? '1' : '0');
