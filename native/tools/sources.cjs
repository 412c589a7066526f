// Prints the sources of the native addon, one path a line, relative to the
// repository root and sorted: the C++ sources (native/src/*.cc and the .cc
// files of core/, ops/ and binding/) by default, the CUDA sources
// (native/src/cuda/*.cu) with --cuda. binding.gyp (the CPU addon) and
// CMakeLists.txt (the cuda addon, which compiles the same C++ sources plus the
// CUDA ones) both take their lists from here, so the two builds cannot drift.
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '../..');
const cuda = process.argv.includes('--cuda');
const dirs = cuda ? ['native/src/cuda'] : ['native/src', 'native/src/core', 'native/src/ops', 'native/src/binding'];
const ext = cuda ? '.cu' : '.cc';
const files = dirs.flatMap((d) =>
  fs
    .readdirSync(path.join(root, d), { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(ext))
    .map((e) => `${d}/${e.name}`),
);
// Plain code-unit order, the same on every machine and locale.
files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
process.stdout.write(files.join('\n') + '\n');
