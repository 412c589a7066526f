#!/usr/bin/env bash
# Builds the CPU addon for other instruction sets than this machine's and runs the native op tests on each build.
# binding.gyp compiles with -march=native, so an AVX-512 machine (ours, CI's) only ever runs the AVX-512 code:
# the AVX2 (kVecBytes 32, 4-row GEMM blocks, the 256-bit exp and FMA paths) and SSE2 (kVecBytes 16, no FMA)
# variants of the vector code are what users of other x86 machines get, and nothing else runs them.
# Both run here because an AVX-512 CPU executes AVX2 and SSE2 code.
#
#   native/tools/isa-check.sh [MARCH:SIMD_BYTES ...]    default: haswell:32 x86-64:16
#
# Each build goes to a scratch copy of native/ (the checkout's build/ is untouched); the tests load it through
# CLOZE_CPU_ADDON, and the script first checks that the loaded addon reports the expected vector width, so a
# build that silently fell back to the default addon cannot pass. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
[ "$#" -gt 0 ] || set -- haswell:32 x86-64:16
# The op tests, and the native infrastructure tests (thread pool, storage, tensors, gradient check).
tests=(test/ops test/gradcheck.test.ts test/pool-schedule.test.ts test/storage-alignment.test.ts test/tensor.test.ts)
[ -f dist/src/native/loader.js ] || { echo "isa-check: dist/ is not built (run npx tsc -p . first)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/cloze-isa.XXXXXX")
trap 'rm -rf "$work"' EXIT
for spec in "$@"; do
  march=${spec%%:*}
  want=${spec#*:}
  [[ "$spec" == *:* && "$want" =~ ^[0-9]+$ ]] || { echo "isa-check: expected MARCH:SIMD_BYTES (haswell:32), got $spec" >&2; exit 2; }
  # A build this CPU cannot execute would die of SIGILL in every test: say so and go on (haswell needs AVX2, FMA,
  # BMI2; other -march values are taken as runnable).
  if [ "$march" = haswell ] && ! { grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && grep -qw bmi2 /proc/cpuinfo; }; then
    echo "isa-check: skipped -march=haswell: this CPU lacks AVX2, FMA or BMI2"
    continue
  fi
  dir="$work/$march"
  mkdir -p "$dir"
  cp -r native binding.gyp package.json "$dir/"
  ln -s "$root/node_modules" "$dir/node_modules"
  echo "isa-check: building the CPU addon with -march=$march"
  if ! (cd "$dir" && CLOZE_MARCH="$march" npx --no-install node-gyp rebuild -j "$(nproc)" >build.log 2>&1); then
    tail -40 "$dir/build.log" >&2
    echo "isa-check: the -march=$march build failed" >&2
    exit 1
  fi
  addon="$dir/build/Release/cloze_cpu.node"
  got=$(CLOZE_CPU_ADDON="$addon" node --input-type=module -e "
    import { loadAddon } from '$root/dist/src/native/loader.js';
    const l = loadAddon();
    const { resolve } = await import('node:path');
    if (l.path !== resolve(process.env.CLOZE_CPU_ADDON)) throw new Error('loaded ' + l.path + ', not the -march build (is dist/ older than src/? run npx tsc -p .)');
    console.log(l.addon.info().simdBytes);")
  [ "$got" = "$want" ] || { echo "isa-check: the -march=$march build reports $got-byte vectors, expected $want" >&2; exit 1; }
  echo "isa-check: -march=$march ($got-byte vectors): running ${tests[*]}"
  CLOZE_CPU_ADDON="$addon" npx --no-install vitest run "${tests[@]}" || { echo "isa-check: tests failed on the -march=$march build" >&2; exit 1; }
done
echo "isa-check: passed for $*"
