// Prints 1 when OpenBLAS (CBLAS header and shared library) is installed, else 0.
// binding.gyp reads this so that the build never fails for lack of OpenBLAS.
// CLOZE_NO_OPENBLAS=1 forces the built-in GEMM.
const fs = require('fs');
if (process.env.CLOZE_NO_OPENBLAS === '1') {
  process.stdout.write('0');
} else {
  const incs = ['/usr/include/x86_64-linux-gnu/cblas.h', '/usr/include/aarch64-linux-gnu/cblas.h', '/usr/include/cblas.h', '/usr/include/openblas/cblas.h', '/usr/local/include/cblas.h'];
  const libs = ['/usr/lib/x86_64-linux-gnu/libopenblas.so', '/usr/lib/aarch64-linux-gnu/libopenblas.so', '/usr/lib/libopenblas.so', '/usr/lib64/libopenblas.so', '/usr/local/lib/libopenblas.so'];
  const ok = incs.some((p) => fs.existsSync(p)) && libs.some((p) => fs.existsSync(p));
  process.stdout.write(ok ? '1' : '0');
}
