#!/usr/bin/env bash
# The issue-7 GPU check, prepared and exercised on CPU so that one run on a GPU machine suffices.
#
#   scripts/gpu_check.sh                      # on the GPU machine: everything, results under $OUT
#   scripts/gpu_check.sh --device cpu --tiny  # the same steps in minutes on a CPU (what was tested here)
#
# Steps (each writes under $OUT, default results/gpu_check; a failing step is logged and the next one runs):
#   1. make install (a bare machine), repro doctor
#   2. the CUDA tests: sync-free guided steps, single and packed, a graph replay, packed = separate on CUDA
#      (tests/test_device_guided.py, tests/test_packed.py; skipped on CPU)
#   3. repro bench: fp32 eager (guided_over_vanilla_step, packed_speedup for K=8 with grouped convolutions, epoch
#      of 60,000 samples at batch 128, the CMNIST loader against the model), packed_speedup with the model-by-model
#      convolutions (the CPU's choice), then the epoch compiled, then in bf16
#   4. the CMNIST Table-1 column (4 algorithms x 3 seeds) for what remains of the time budget, each run timed
#      (scripts/gpu_train_column.py), then repro table1 over what finished
# Needs data/cmnist.h5 (the device machine reaches no network: carry it, e.g. run(carry=["data/cmnist.h5"])).
# The whole script stops itself at DEADLINE_S (default 570 s: the device tool's 10-minute limit per command); the
# benches leave at least TRAIN_MIN_S (240 s) to the Table-1 column, which gets at most TRAIN_BUDGET_S (480 s).
set -uo pipefail
cd "$(dirname "$0")/.."

DEVICE=cuda; TINY=0; DEADLINE_S=${DEADLINE_S:-570}; TRAIN_BUDGET_S=${TRAIN_BUDGET_S:-480}
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=$2; shift 2 ;;
    --tiny) TINY=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-results/gpu_check}
mkdir -p "$OUT"
T0=$(date +%s)
left() { echo $(( DEADLINE_S - ($(date +%s) - T0) )); }
log() { echo "[gpu_check +$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/steps.log"; }
RESERVE_S=0  # seconds kept free for the training stage while the steps before it run
step() {  # step NAME TIMEOUT_S CMD...: run with a timeout (capped by the deadline), log status and seconds
  local name=$1 limit=$2; shift 2
  local room=$(( $(left) - RESERVE_S )); [ "$room" -lt "$limit" ] && limit=$room
  if [ "$limit" -le 5 ]; then log "$name: skipped (no time left)"; return; fi
  local s; s=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"
  log "$name: exit $? in $(( $(date +%s) - s )) s"
}

log "start: device=$DEVICE tiny=$TINY deadline=${DEADLINE_S}s host=$(hostname)"
step install 300 make install
REPRO=.venv/bin/repro; PY=.venv/bin/python
step doctor 60 "$REPRO" doctor --json
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true

if [ "$TINY" = 1 ]; then
  DATA=$OUT/tiny-cmnist.h5
  $PY -c "import sys; sys.path.insert(0, 'tests'); from engine_fixtures import write_tiny_cmnist as w; w('$DATA', 256, 64)"
  BENCH=(--rounds 2 --steps 2 --batch-size 16 --epoch-samples 256 --threads 1)
  PACK=4; EXTRA="--max-epochs 2 --batch-size 64"; TRAIN_BUDGET_S=$(( TRAIN_BUDGET_S < 120 ? TRAIN_BUDGET_S : 120 ))
else
  DATA=${DATA:-data/cmnist.h5}
  BENCH=(--rounds 15 --steps 10 --batch-size 128 --epoch-samples 60000)
  PACK=8; EXTRA=""
fi

RESERVE_S=${TRAIN_MIN_S:-240}  # the benches may not eat the Table-1 column's time
step test_cuda_sync_free 150 .venv/bin/pytest -q -rs tests/test_device_guided.py tests/test_packed.py
DATA_ARG=(); [ -f "$DATA" ] && DATA_ARG=(--data "$DATA")  # + the CMNIST loader (on the device) against the model
step bench_fp32_eager 180 "$REPRO" bench --json --device "$DEVICE" --pack "$PACK" "${BENCH[@]}" "${DATA_ARG[@]}"
step bench_pack_loop 90 "$REPRO" bench --json --device "$DEVICE" --pack "$PACK" --pack-convolutions loop \
  "${BENCH[@]}" --epoch-samples 0 --rounds 5
step bench_fp32_compile 180 "$REPRO" bench --json --device "$DEVICE" --pack 0 --compile "${BENCH[@]}" --rounds 2
step bench_bf16_eager 120 "$REPRO" bench --json --device "$DEVICE" --pack 0 --precision bf16 "${BENCH[@]}" --rounds 2

RESERVE_S=0
if [ -f "$DATA" ]; then
  BUDGET=$(( $(left) - 30 )); BUDGET=$(( BUDGET < TRAIN_BUDGET_S ? BUDGET : TRAIN_BUDGET_S ))
  RUNS=${RUNS:-results/gpu_check_runs}  # outside $OUT: a second call on a warm machine resumes these runs
  log "table-1 column: budget ${BUDGET}s, runs in $RUNS"
  step train_column $(( BUDGET + 20 )) $PY scripts/gpu_train_column.py --data "$DATA" --runs "$RUNS" --out "$OUT" \
    --budget "$BUDGET" --device "$DEVICE" --extra "$EXTRA"
  step table1 30 "$REPRO" table1 --results "$RUNS" --out "$OUT/table1"
  find "$RUNS" -name record.json | while read -r f; do  # the records come back; checkpoints stay
    d="$OUT/records/${f#"$RUNS"/}"; mkdir -p "$(dirname "$d")"; cp "$f" "$d"
  done
else
  log "no $DATA: the Table-1 column is skipped (carry data/cmnist.h5 to the machine)"
fi
log "done in $(( $(date +%s) - T0 )) s"
