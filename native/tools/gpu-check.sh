#!/usr/bin/env bash
# native/tools/gpu-check.sh OUTDIR [--budget SECONDS] [--only STEP,...] [--skip STEP,...]
#
# Everything this project needs a GPU machine for, as one script (issue 21):
# any machine with a GPU, the CUDA toolkit, Node.js and a python3 with torch
# and transformers can run it. Steps, in order (names for --only/--skip):
#
#   build    the cuda addon (npm run build:cuda), in the background from the start
#   cpu      the CPU addon (node-gyp), so that the next step needs no GPU kernel
#   hf       npm run check:hf-transformers (transformers loads our exports and we
#            load theirs); CPU only, run while the cuda addon compiles
#   train    its CPU half first, while the addon compiles: a 3-step bert-base
#            float32 run on the CPU
#   test     npm run test:cuda (or --tests FILES), with vitest's JSON report; in
#            the background, side by side with the GPU half of train:
#   train    cloze pretrain --device cuda: the same 3 steps in bf16 against the
#            CPU's losses, the 1-rank NCCL smoke (when mpirun is there), 20 steps
#            of --task mim and --task spark, cloze finetune (--adv and --method
#            asa) from the CPU run's checkpoint, 2 MPI ranks sharing the GPU
#            through host copies (bert-tiny MLM and SparK) against 1 process at
#            twice the batch, 1 rank with
#            --distributed on (the trainer's NCCL path) against a plain run, for
#            pretrain and for finetune, and --long-steps of
#            bert-base at the preset's batch with an exact resume of the second half
#   anchor   opt-in (--with-anchor or --only anchor): bench:mlm-step on the
#            CPU against the machine's own PyTorch, same thread count
#   bench    npm run bench:cuda (attention, the BERT-base MLM step and the
#            masked-token kernels against PyTorch), alone on the GPU once the
#            others are done
#   kernels  where nsys exists: the MLM step under Nsight Systems, its GPU
#            kernel summary appended to bench.log
#
# Before sending the project to a GPU machine without Node.js or Debian's
# Fashion-MNIST: `npm ci`, pack Node.js and node_modules, and
# `bash native/tools/pack-gpu-data.sh` (a 1.3 MB image subset in .gpu-data/).
#
# At most 8 files land in OUTDIR (the device tool brings back 8), each written
# as its step goes, so that a run cut short still returns what it found:
#   summary.txt  machine, versions, and one line per step (status, seconds)
#   build.log    the cuda addon's compile log (first, so a failure there is seen)
#   hf.log       the Hugging Face checks; hf-report.json their report
#   test-cuda.log, test-cuda.json   the CUDA tests
#   train.log    the pretrain runs
#   bench.log    bench:cuda's output (and the CPU anchor's, when run)
#
# Every step has a time limit, and the whole script keeps within --budget
# seconds (default 480): a step starts with what is left, and is skipped
# when less than 20 s is left. The exit status is 0 only when every step
# that ran passed.
set -uo pipefail

usage() { echo "usage: $0 OUTDIR [--budget SECONDS] [--only build,cpu,hf,test,train,anchor,bench,kernels] [--skip ...] [--tests 'FILES'] [--long-steps N] [--bench-args 'ARGS'] [--with-anchor]" >&2; exit 2; }
[ $# -ge 1 ] || usage
out=$1; shift
budget=480
only=""
skip=""
tests="test/ops test/cuda"  # what vitest runs (its [cuda] tests only)
long_steps=200              # the bert-base run whose second half is resumed
bench_args=""               # more options for bench/cuda.ts, e.g. "--only attention"
with_anchor=0               # run the CPU anchor step too (step 6)
while [ $# -gt 0 ]; do
  case $1 in
    --budget) budget=${2:?}; shift 2 ;;
    --only) only=${2:?}; shift 2 ;;
    --skip) skip=${2:?}; shift 2 ;;
    --tests) tests=${2:?}; shift 2 ;;
    --long-steps) long_steps=${2:?}; shift 2 ;;
    --bench-args) bench_args=${2:?}; shift 2 ;;
    --with-anchor) with_anchor=1; shift ;;
    *) usage ;;
  esac
done
case $budget in ''|*[!0-9]*) echo "gpu-check: --budget: expected a whole number of seconds but received '$budget'" >&2; exit 2 ;; esac
case $long_steps in ''|*[!0-9]*|*[13579]|0|2) echo "gpu-check: --long-steps: expected an even whole number of at least 4 but received '$long_steps'" >&2; exit 2 ;; esac

cd "$(dirname "$0")/../.."
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)
summary=$out/summary.txt
start=$(date +%s)
work=$(mktemp -d /tmp/gpu-check.XXXXXX)
# Failures are counted in a file: steps 4 and 5 run side by side in subshells.
failfile=$work/failures
: >"$failfile"
fail() { echo x >>"$failfile"; }
nfail() { wc -l <"$failfile" | tr -d ' '; }
jobs=$(nproc 2>/dev/null || echo 4)

wanted() {
  local s=$1
  if [ -n "$only" ] && [[ ",$only," != *",$s,"* ]]; then return 1; fi
  if [[ ",$skip," == *",$s,"* ]]; then return 1; fi
  return 0
}
left() { echo $(( budget - ($(date +%s) - start) )); }
note() { echo "$*" | tee -a "$summary"; }

# run_step NAME LIMIT LOG COMMAND...: runs COMMAND with at most LIMIT seconds
# (or what is left of the budget), appending its output to LOG.
run_step() {
  local name=$1 limit=$2 log=$3; shift 3
  local rest; rest=$(left)
  if [ "$rest" -lt 20 ]; then note "step $name: skipped (${rest}s of the budget left)"; fail; return 1; fi
  [ "$limit" -gt "$rest" ] && limit=$rest
  local t0; t0=$(date +%s)
  echo "== $name: $* (limit ${limit}s) $(date -u +%H:%M:%S)" >>"$log"
  timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
  local rc=$?
  local what="ok"
  [ $rc -eq 124 ] && what="timed out after ${limit}s"
  [ $rc -ne 0 ] && [ $rc -ne 124 ] && what="failed (exit $rc)"
  note "step $name: $what ($(( $(date +%s) - t0 ))s; log $(basename "$log"))"
  [ $rc -eq 0 ] || fail
  return $rc
}

{
  echo "gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ), budget ${budget}s, git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (modified)')"
  echo "host: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | sed 's/^/gpu: /'
  echo "nvcc: $(nvcc --version 2>&1 | tail -1)"
  echo "node: $(node --version 2>&1)"
  python3 -c 'import sys, torch; print("python3:", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available())' 2>&1
  python3 -c 'import transformers; print("transformers", transformers.__version__)' 2>&1 | tail -1
} >"$summary"
cat "$summary"

# The TypeScript once (dist/ may have travelled already; tsc is quick when it has).
if ! npx tsc -p . >"$work/tsc.log" 2>&1; then
  note "tsc failed:"; cat "$work/tsc.log" | tee -a "$summary"
  exit 1
fi

# 1. The cuda addon, in the background, so the CPU steps overlap its compile.
build_pid=""
if wanted build; then
  (
    echo "== build: npm run build:cuda ($(date -u +%H:%M:%S))"
    CMAKE_BUILD_PARALLEL_LEVEL=$jobs timeout --kill-after=10 "$(left)" npx cmake-js compile --out build-cuda --parallel "$jobs"
    rc=$?
    echo "== build exit $rc ($(date -u +%H:%M:%S))"
    exit $rc
  ) >"$out/build.log" 2>&1 &
  build_pid=$!
  bstart=$(date +%s)
fi

# 2. The CPU addon: the Hugging Face checks and the CPU side of the training
#    comparison run on it, while the cuda addon compiles.
if wanted cpu; then
  run_step cpu 180 "$work/cpu.log" npx node-gyp rebuild -j "$jobs" || tail -30 "$work/cpu.log" >>"$summary"
fi

# 3. Hugging Face: our exports load in transformers, and theirs in cloze.
if wanted hf; then
  CLOZE_DEVICE=cpu run_step hf 240 "$out/hf.log" npm run --silent check:hf-transformers -- --python python3 --out "$work/hf"
  [ -f "$work/hf/hf-transformers-report.json" ] && cp "$work/hf/hf-transformers-report.json" "$out/hf-report.json"
fi

tr=$work/train
losses() { grep -o '"kind":"train","step":[0-9]*,"loss":[0-9.eE+-]*' "$1/metrics.jsonl" 2>/dev/null | sed 's/.*"step":\([0-9]*\),"loss":\(.*\)/\1 \2/'; }
common=(--preset bert-base --batch-size 4 --log-every 1 --seed 7 --max-length 64)
# The CPU float32 run of the seed the cuda run repeats (no GPU needed, so it overlaps the compile).
if wanted train; then
  run_step train-cpu 90 "$work/train-cpu.log" env CLOZE_DEVICE=cpu npx cloze pretrain "${common[@]}" --device cpu --max-steps 3 --save-every 3 --out "$tr/cpu"
fi

# 2b. Opt-in (--only anchor, or --with-anchor): issue 21's CPU anchor, the
#    bert-mini MLM step on the CPU addon against the machine's own current
#    PyTorch on the CPU, at the same thread count (bench:mlm-step, step section). It needs
#    no GPU, so it runs here, on the CPU addon of step 2 (`--only cpu,anchor` alone).
if wanted anchor && { [ "$with_anchor" = 1 ] || [[ ",$only," == *",anchor,"* ]]; }; then
  run_step anchor 150 "$out/bench.log" env CLOZE_DEVICE=cpu node --expose-gc dist/bench/mlm-step.js --only step \
    --threads "$jobs" --torch-threads "$jobs" --reps 5 --python python3
fi

if [ -n "$build_pid" ]; then
  wait "$build_pid"
  rc=$?
  if [ $rc -eq 0 ]; then note "step build: ok ($(( $(date +%s) - bstart ))s; log build.log)"
  else note "step build: failed (exit $rc; log build.log)"; fail; fi
fi
if ! wanted test && ! wanted train && ! wanted bench && ! wanted kernels; then  # e.g. --only cpu,anchor: nothing needs the GPU
  n=$(nfail)
  rm -rf "$work"
  note "gpu-check: done in $(( $(date +%s) - start ))s, $n step(s) failed"
  [ "$n" -eq 0 ]
  exit
fi
if [ ! -f build-cuda/Release/cloze_cuda.node ]; then
  note "no build-cuda/Release/cloze_cuda.node: the GPU steps are skipped"
  fail
  note "gpu-check: done in $(( $(date +%s) - start ))s, $(nfail) step(s) failed"
  exit 1
fi
export CLOZE_DEVICE=cuda
node -e "import('./dist/src/index.js').then(m => console.log('addon:', JSON.stringify(m.runtimeInfo())))" >>"$summary" 2>&1

# 4. Every CUDA op against the CPU backend (in the background: the training
#    runs of step 5 share the GPU with it; neither is timed).
test_pid=""
if wanted test; then
  (
    # shellcheck disable=SC2086
    run_step test 240 "$out/test-cuda.log" npx vitest run $tests -t '\[cuda\]' \
      --reporter=default --reporter=json --outputFile.json="$out/test-cuda.json"
    grep -E "Test Files|Tests  " "$out/test-cuda.log" | tail -2 >>"$summary"
  ) &
  test_pid=$!
fi

# 5. Training on the GPU: a short bert-base run, its first losses against the
#    CPU float32 run of the same seed, and an exact resume; the NCCL smoke
#    (when mpirun is there, for pretrain and finetune), 20 steps of --task mim
#    and --task spark, and cloze finetune (--adv and --method asa) from the
#    CPU run's checkpoint.
if wanted train; then
  log=$out/train.log
  cat "$work/train-cpu.log" >>"$log" 2>/dev/null
  run_step train-cuda 90 "$log" npx cloze pretrain "${common[@]}" --device cuda --precision bf16 --max-steps 3 --save-every 3 --out "$tr/cuda"
  { echo "first losses, cpu fp32 | cuda bf16:"; paste <(losses "$tr/cpu") <(losses "$tr/cuda"); } | tee -a "$log" >>"$summary"
  # bf16 keeps 8 significant bits (relative step 2^-8 = 0.4%); over a whole
  # forward pass the loss may drift a few times that. 2% is the bound here.
  if paste <(losses "$tr/cpu") <(losses "$tr/cuda") | awk 'NF == 4 { n++; d = $2 - $4; if (d < 0) d = -d; if (d > 0.02 * $2) bad++ } END { exit !(n == 3 && bad == 0) }'; then
    note "first losses: cuda bf16 within 2% of cpu fp32 at all 3 steps"
  else
    note "first losses: cuda bf16 NOT within 2% of cpu fp32 at 3 steps (or a run is missing)"; fail
  fi
  # The image tasks read Debian's Fashion-MNIST; where it is absent, the subset of native/tools/pack-gpu-data.sh.
  images=()
  if [ ! -d /usr/share/datasets/fashion-mnist ] && [ -d .gpu-data/fashion-mnist ]; then images=(--data .gpu-data/fashion-mnist); fi
  for task in mim spark; do
    run_step "train-$task" 60 "$log" npx cloze pretrain --task "$task" --device cuda --epochs 0 --max-steps 20 --log-every 5 ${images[@]+"${images[@]}"} --out "$tr/$task"
  done
  # Fine-tuning on cuda: the test fixture's labelled texts, from the CPU run's bert-base checkpoint (its tokenizer with it).
  if [ -d "$tr/cpu/checkpoint-3" ]; then
    for how in "--adv" "--method asa"; do
      # shellcheck disable=SC2086
      run_step "train-finetune${how// /-}" 60 "$log" npx cloze finetune --task-data test/fixtures/finetune/who.jsonl --init-from "$tr/cpu" $how \
        --device cuda --epochs 0 --max-steps 20 --batch-size 8 --max-length 64 --log-every 5 --out "$tr/finetune${how// /-}"
    done
  else
    note "finetune on cuda: skipped (no checkpoint-3 from the CPU bert-base run)"; fail
  fi
  # NCCL (loaded at run time): world size 1 through NCCL, f32 and bf16 (native/tools/nccl-smoke.mjs).
  if command -v mpirun >/dev/null; then
    run_step train-nccl 60 "$log" mpirun --allow-run-as-root -np 1 node native/tools/nccl-smoke.mjs
    # Issue 18: 2 data-parallel ranks sharing the one GPU. NCCL refuses two ranks on one device (H200, 2026-12-04:
    # "invalid usage" at set-up), so they sum their gradients through host copies over MPI (--distributed-backend
    # mpi, as PyTorch's gloo does for cuda tensors). That runs the data-parallel step on cuda (sharded masks,
    # dropout offsets, SparK's synchronized BatchNorm), which must give what one process gives at twice the batch,
    # in float32 at lr 5e-3 (so that a gradient that is not the global one shows in the later losses).
    # Bounds, from the same runs on the CPU (2026-12-05, --device cpu): MLM, 8 losses within 1e-3 relative (the CPU
    # gave 1e-7). SparK's losses drift apart where round-off moves a ReLU across its kink (README), so: its first
    # loss within 1e-4 and 3 losses within 1e-3 (the CPU gave 0, 2e-7 and 1.1e-4; with --sync-bn false, i.e. each
    # rank's own statistics, 8e-4, 2e-3 and 1.1e-2).
    dp_check() {  # NAME LABEL STEPS FIRST_BOUND BOUND ARGS...: 2 ranks × batch 4 against 1 process × batch 8
      local name=$1 label=$2 steps=$3 first=$4 bound=$5; shift 5
      run_step "$name-1x8" 90 "$log" npx cloze pretrain "$@" --max-steps "$steps" --batch-size 8 --out "$tr/$name-1x8"
      # MLM: the same tokenizer (WordPiece training is not reproducible run to run).
      local tok=()
      if [ -f "$tr/$name-1x8/tokenizer.json" ]; then tok=(--tokenizer "$tr/$name-1x8/tokenizer.json"); fi
      run_step "$name-2x4" 120 "$work/$name.log" mpirun --allow-run-as-root --oversubscribe -np 2 npx cloze pretrain "$@" \
        ${tok[@]+"${tok[@]}"} --max-steps "$steps" --batch-size 4 --distributed-backend mpi --out "$tr/$name-2x4"
      cat "$work/$name.log" >>"$log"
      { echo "$label, losses 1 × 8 | 2 × 4 (host copies):"; paste <(losses "$tr/$name-1x8") <(losses "$tr/$name-2x4"); } >>"$log"
      if grep -q "gradients through host copies" "$work/$name.log" && paste <(losses "$tr/$name-1x8") <(losses "$tr/$name-2x4") |
        awk -v steps="$steps" -v first="$first" -v bound="$bound" 'NF == 4 { n++; d = $2 - $4; if (d < 0) d = -d; a = $2 < 0 ? -$2 : $2
          if (d > (n == 1 ? first : bound) * a) bad++ } END { exit !(n == steps && bad == 0) }'; then
        note "$label: 2 ranks sharing the GPU (host copies over MPI) gave 1 process's $steps losses at twice the batch (first within $first, all within $bound)"
      else
        note "$label: 2 ranks sharing the GPU did not give 1 process's losses at twice the batch, or did not run (train.log)"; fail
      fi
    }
    dp=(--device cuda --precision fp32 --log-every 1 --seed 7 --lr 5e-3)
    dp_check dp-mlm "data-parallel MLM (bert-tiny)" 8 1e-3 1e-3 --preset bert-tiny "${dp[@]}"
    dp_check dp-spark "data-parallel SparK (synchronized BatchNorm)" 3 1e-4 1e-3 --task spark --epochs 0 ${images[@]+"${images[@]}"} "${dp[@]}"
    # The trainer's NCCL path at one rank (--distributed on): NCCL set up over MPI, the gradients all-reduced
    # through it on the trainer's stream every step; its losses must equal a plain run's (a 1-rank sum is the
    # identity). This is as far as one GPU takes the data-parallel trainer (issue 18).
    tiny=(--preset bert-tiny --device cuda --max-steps 5 --batch-size 8 --log-every 1 --seed 7)
    # One tokenizer for both (WordPiece training is not reproducible run to run): the plain run's.
    run_step train-plain-1rank 60 "$log" npx cloze pretrain "${tiny[@]}" --out "$tr/plain1"
    run_step train-nccl-1rank 90 "$work/nccl1.log" mpirun --allow-run-as-root -np 1 npx cloze pretrain "${tiny[@]}" --distributed on \
      --tokenizer "$tr/plain1/tokenizer.json" --out "$tr/nccl1"
    cat "$work/nccl1.log" >>"$log"
    if grep -q "gradients through NCCL" "$work/nccl1.log" && [ -n "$(losses "$tr/nccl1")" ] && diff <(losses "$tr/nccl1") <(losses "$tr/plain1") >>"$log"; then
      note "NCCL at 1 rank (--distributed on): the trainer all-reduced through NCCL, and its 5 losses equal a plain run's"
    else
      note "NCCL at 1 rank (--distributed on): no NCCL gradients logged, or the losses differ from a plain run's (train.log)"; fail
    fi
    # The same for fine-tuning (issue 18; wired after the last GPU run): mlp-ft from the CPU bert-base checkpoint,
    # 5 steps on cuda, plain and through NCCL at one rank; the losses must be equal.
    if [ -d "$tr/cpu/checkpoint-3" ]; then
      ft=(--task-data test/fixtures/finetune/who.jsonl --init-from "$tr/cpu" --device cuda --epochs 0 --max-steps 5 --batch-size 8 --max-length 64 --log-every 1 --seed 7)
      run_step finetune-plain-1rank 60 "$log" npx cloze finetune "${ft[@]}" --out "$tr/ftplain1"
      run_step finetune-nccl-1rank 90 "$work/ftnccl1.log" mpirun --allow-run-as-root -np 1 npx cloze finetune "${ft[@]}" --distributed on --out "$tr/ftnccl1"
      cat "$work/ftnccl1.log" >>"$log"
      if grep -q "gradients through NCCL" "$work/ftnccl1.log" && [ -n "$(losses "$tr/ftnccl1")" ] && diff <(losses "$tr/ftnccl1") <(losses "$tr/ftplain1") >>"$log"; then
        note "finetune, NCCL at 1 rank (--distributed on): all-reduced through NCCL, and its 5 losses equal a plain run's"
      else
        note "finetune, NCCL at 1 rank (--distributed on): no NCCL gradients logged, or the losses differ from a plain run's (train.log)"; fail
      fi
    else
      note "finetune, NCCL at 1 rank: skipped (no checkpoint-3 from the CPU bert-base run; counted as failed above)"
    fi
  else
    note "nccl smoke, 2 ranks sharing the GPU, NCCL at 1 rank: skipped (no mpirun on this machine)"
  fi
  # Last, as the longest: $long_steps steps at the preset's batch, and an exact resume from the middle.
  half=$((long_steps / 2))
  run_step train-long 120 "$log" npx cloze pretrain --preset bert-base --device cuda --max-steps "$long_steps" --save-every "$half" --keep-last 3 --log-every 10 --seed 7 --out "$tr/long"
  { echo "bert-base, the preset's batch, $long_steps steps (step loss):"; losses "$tr/long" | awk -v q=$((half / 2)) 'NR == 1 || $1 % q == 0'; } | tee -a "$log" >>"$summary"
  # Exact resume: a copy of that run without its last checkpoint resumes from
  # the middle (the trainer truncates metrics.jsonl there) and must log the
  # straight run's losses for the second half.
  if [ -d "$tr/long/checkpoint-$half" ] && [ -d "$tr/long/checkpoint-$long_steps" ]; then
    rm -rf "$tr/resume" && cp -r "$tr/long" "$tr/resume" && rm -rf "$tr/resume/checkpoint-$long_steps"
    run_step train-resume 90 "$log" npx cloze pretrain --preset bert-base --device cuda --max-steps "$long_steps" --save-every "$half" --keep-last 3 --log-every 10 --seed 7 --out "$tr/resume" --resume
    # The copy still holds the straight run's metrics.jsonl: the resumed run must have said it resumed
    # (and truncated that file), or the diff below would compare the straight run with itself.
    if grep -q "resumed from .*checkpoint-$half" "$log" && diff <(losses "$tr/long" | awk -v h=$half '$1 > h') <(losses "$tr/resume" | awk -v h=$half '$1 > h') >>"$log"; then
      note "resume: the losses of steps $((half + 1))-$long_steps equal the straight run's"
    else
      note "resume: no resume from checkpoint-$half logged, or the losses of steps $((half + 1))-$long_steps differ from the straight run's (train.log)"; fail
    fi
  fi
fi
[ -n "$test_pid" ] && wait "$test_pid"

# 6. Speed against PyTorch on the same GPU, alone on it.
if wanted bench; then
  # shellcheck disable=SC2086
  run_step bench 180 "$out/bench.log" node --expose-gc dist/bench/cuda.js --reps 10 --mlm-reps 5 --profile $bench_args --out "$work/bench"
  [ -f "$work/bench/summary.md" ] && cat "$work/bench/summary.md" >>"$out/bench.log"
fi

# 7. Per kernel: our MLM step under Nsight Systems (when the machine has it),
#    its GPU kernel summary appended to bench.log. The family profile above
#    cannot split a call into its kernels (LayerNorm's backward is a row
#    kernel and two column-sum kernels, the embedding backward a sort and
#    six plan kernels); this can.
if wanted kernels; then
  nsys_bin=$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)
  if [ -n "$nsys_bin" ]; then
    run_step kernels 90 "$out/bench.log" "$nsys_bin" profile --trace=cuda --sample=none --cpuctxsw=none --force-overwrite=true \
      -o "$work/mlm-kernels" node --expose-gc dist/bench/cuda.js --only mlm --mlm-warmup 1 --mlm-reps 3 --no-torch --no-write
    if [ -f "$work/mlm-kernels.nsys-rep" ]; then
      { echo "== kernels: GPU kernel summary of the MLM bench above (nsys; 1 + 4 + 3 steps and the set-up, not one step)"
        "$nsys_bin" stats --report cuda_gpu_kern_sum --format csv "$work/mlm-kernels.nsys-rep" 2>/dev/null \
          || "$nsys_bin" stats --report gpukernsum --format csv "$work/mlm-kernels.nsys-rep" 2>&1
      } | head -60 >>"$out/bench.log"
    fi
  else
    note "step kernels: skipped (no nsys on this machine)"
  fi
fi

n=$(nfail)
rm -rf "$work"
note "gpu-check: done in $(( $(date +%s) - start ))s, $n step(s) failed"
[ "$n" -eq 0 ]
