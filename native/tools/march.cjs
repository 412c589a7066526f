// Prints the -march value binding.gyp compiles the CPU addon for: CLOZE_MARCH when set, else "native" (the
// build machine's own instruction set). native/tools/isa-check.sh sets it to build and test the AVX2 and SSE2
// code paths on a machine with AVX-512, where a -march=native build never runs them.
const m = process.env.CLOZE_MARCH;
if (m === undefined || m === '') {
  process.stdout.write('native');
} else if (/^[a-z0-9][a-z0-9.+-]*$/.test(m)) {
  process.stdout.write(m);
} else {
  process.stderr.write(`CLOZE_MARCH: expected a -march value such as native, haswell or x86-64, but received ${JSON.stringify(m)}\n`);
  process.exit(1);
}
