#!/usr/bin/env bash
# Compiles every source of the cuda addon exactly as `npm run build:cuda`
# would (CMakeLists.txt with CLOZE_COMPILE_ONLY=ON), without linking: for
# machines with nvcc but no GPU and no cuBLAS, such as CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v nvcc >/dev/null || { echo "cuda-compile-check: nvcc is not installed" >&2; exit 1; }
command -v cmake >/dev/null || { echo "cuda-compile-check: cmake is not installed" >&2; exit 1; }
dir=${CLOZE_CUDA_CHECK_DIR:-build-cuda-check}
cmake -S . -B "$dir" -DCLOZE_COMPILE_ONLY=ON -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" >"$dir.log" 2>&1 || {
  cat "$dir.log" >&2
  exit 1
}
status=0
cmake --build "$dir" -j "$(nproc)" >"$dir.build.log" 2>&1 || status=$?
# ptxas's resource report (-Xptxas=-v) is kept in the log, not printed.
grep -v -E "ptxas info|bytes stack frame|Used [0-9]+ registers|Compiling entry|Function properties" "$dir.build.log" || true
[ "$status" -eq 0 ] || { echo "cuda-compile-check: the build failed (log: $dir.build.log)" >&2; exit 1; }
n=$(find "$dir" -name '*.o' | wc -l)
echo "cuda-compile-check: $n objects compiled (CLOZE_CUDA, $(nvcc --version | tail -1))"
