#!/usr/bin/env bash
# The GPU figures at paper size in one call (about 6 minutes on one H100/H200; no network, no downloads):
#
#   bash benchmarks/gpu_check.sh                   # paper sizes -> benchmarks/reports/gpu.md
#   GPU_CHECK_TOY=1 bash benchmarks/gpu_check.sh   # toy sizes, on a CPU in a few minutes -> gpu-toy.md
#
#   1. benchmarks/bench_train.py: inception_v3 and lite0_cut at 224 px, bf16, channels_last, batch 64,
#      SPG and SPG-plain (random weights): training and inference images/s, peak GPU memory, the
#      SPG/SPG-plain ratios, FLOPs per image and the training FLOP rate against the card's bf16 peak,
#      and an operator profile of SPG Inception-v3 training;
#   2. the app's server forward (the default run synthetic-spg, the first 1000 test images);
#   3. SPG and SPG-plain trained with configs/teaching.yaml (its own benchmark, seed 0, as the
#      recorded CPU runs of results/teaching/) and evaluated on the test split;
#   4. the CUDA-only tests (tests/test_distributed.py -k cuda; they skip without CUDA).
#
# Every step has its own time cap (timeout) inside a total budget; a failed or timed-out step is
# recorded in the report and the others still run. Variables:
#   GPU_CHECK_TOY=1        toy sizes (report benchmarks/reports/gpu-toy.md)
#   GPU_CHECK_WORK=DIR     scratch folder for JSON, logs, runs (default benchmarks/reports/gpu-work; emptied
#                          first); at the end WORK/gpu-work.tar.gz holds the JSON, logs, profile and metrics
#   GPU_CHECK_REPORT=FILE  where the report goes (default benchmarks/reports/gpu.md, or gpu-toy.md)
#   GPU_CHECK_BUDGET=S     total seconds for all steps (default 330, toy 900: a busy 2-core CPU is slow)
#   GPU_CHECK_DEVICE=D     auto | cuda | cpu (default auto)
#   PYTHON=...             the interpreter (default .venv/bin/python if present, else python3)
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
COMMAND="${GPU_CHECK_TOY:+GPU_CHECK_TOY=$GPU_CHECK_TOY }bash benchmarks/gpu_check.sh"
TOY=${GPU_CHECK_TOY:-0}
[ "$TOY" = "0" ] && TOY=""
WORK=${GPU_CHECK_WORK:-benchmarks/reports/gpu-work}
DEVICE=${GPU_CHECK_DEVICE:-auto}
if [ -n "$TOY" ]; then
    REPORT=${GPU_CHECK_REPORT:-benchmarks/reports/gpu-toy.md}
    BUDGET=${GPU_CHECK_BUDGET:-900}
else
    REPORT=${GPU_CHECK_REPORT:-benchmarks/reports/gpu.md}
    BUDGET=${GPU_CHECK_BUDGET:-330}
fi
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
if [ -e "$WORK" ] && [ ! -f "$WORK/steps.tsv" ] && [ -n "$(ls -A "$WORK" 2>/dev/null)" ]; then
    echo "[gpu_check] $WORK holds files but no steps.tsv: not a scratch folder of this script; pick another" >&2
    exit 2
fi
rm -rf "$WORK"
mkdir -p "$WORK/logs" "$WORK/teaching"
: >"$WORK/steps.tsv"
START=$(date +%s)
DEADLINE=$((START + BUDGET))

# step NAME CAP COMMAND...: run COMMAND under `timeout` (CAP seconds, or what is left of the budget),
# its output in WORK/logs/NAME.log, and append "NAME rc seconds cap" to WORK/steps.tsv.
step() {
    local name=$1 cap=$2 left rc began ended
    shift 2
    left=$((DEADLINE - $(date +%s)))
    if [ "$left" -lt "$cap" ]; then cap=$left; fi
    if [ "$cap" -lt 5 ]; then
        printf '%s\tskipped\t\t%s\n' "$name" "$cap" >>"$WORK/steps.tsv"
        echo "[gpu_check] $name: skipped, the budget is spent"
        return 0
    fi
    echo "[gpu_check] $name (cap ${cap} s): $*"
    began=$(date +%s%N)
    timeout -k 10 "$cap" "$@" >"$WORK/logs/$name.log" 2>&1 </dev/null
    rc=$?
    ended=$(( ($(date +%s%N) - began) / 1000000 ))
    printf '%s\t%s\t%d.%03d\t%s\n' "$name" "$rc" $((ended / 1000)) $((ended % 1000)) "$cap" >>"$WORK/steps.tsv"
    echo "[gpu_check] $name: exit status $rc"
}

if [ -n "$TOY" ]; then
    BENCH_SIZE=64 BENCH_BATCH=2 BENCH_STEPS=1 BENCH_WARMUP=0 BENCH_AMP=auto PROFILE_STEPS=1
    APP_IMAGES=32 APP_BATCH=16
    TEACH_FLAGS="--synthetic-train 48 --synthetic-val 16 --synthetic-test 16 --epochs 1 --batch-size 8 --max-steps-per-epoch 2 --replay-images 4"
    EVAL_FLAGS="--limit 16"
    CAP_BENCH=240 CAP_APP=90 CAP_TRAIN=180 CAP_EVAL=120 CAP_TESTS=120
else
    BENCH_SIZE=224 BENCH_BATCH=64 BENCH_STEPS=20 BENCH_WARMUP=5 BENCH_AMP=bf16 PROFILE_STEPS=3
    APP_IMAGES=1000 APP_BATCH=64
    TEACH_FLAGS=""
    EVAL_FLAGS=""
    CAP_BENCH=75 CAP_APP=45 CAP_TRAIN=150 CAP_EVAL=45 CAP_TESTS=60
fi
SEED=0

step env 30 "$PYTHON" benchmarks/gpu_report.py env --out "$WORK/env.json" ${TOY:+--toy}

# 1. Throughput at paper size (inception_v3 also profiled).
step bench_inception_v3 "$CAP_BENCH" "$PYTHON" benchmarks/bench_train.py --backbone inception_v3 \
    --image-size "$BENCH_SIZE" --batch-size "$BENCH_BATCH" --steps "$BENCH_STEPS" --warmup "$BENCH_WARMUP" \
    --device "$DEVICE" --amp "$BENCH_AMP" ${TOY:+--threads 2} --json "$WORK/bench_inception_v3.json" \
    --profile "$WORK/profile_inception_v3.txt" --profile-steps "$PROFILE_STEPS"
step bench_lite0_cut "$CAP_BENCH" "$PYTHON" benchmarks/bench_train.py --backbone lite0_cut \
    --image-size "$BENCH_SIZE" --batch-size "$BENCH_BATCH" --steps "$BENCH_STEPS" --warmup "$BENCH_WARMUP" \
    --device "$DEVICE" --amp "$BENCH_AMP" ${TOY:+--threads 2} --json "$WORK/bench_lite0_cut.json"

# 2. The app's server forward on the default run's test split.
step app_forward "$CAP_APP" "$PYTHON" benchmarks/gpu_report.py app-forward --run synthetic-spg \
    --images "$APP_IMAGES" --batch-size "$APP_BATCH" --device "$DEVICE" ${TOY:+--threads 2} \
    --out "$WORK/app_forward.json"

# 3. The teaching recipe, SPG and SPG-plain side by side (one CPU thread each, as the recorded
#    runs), with the CUDA-only tests beside them; then the evaluations, side by side.
printf '{"flags": "python -m spg_core train --config configs/teaching.yaml --variant V --seed %s --threads 1 --device %s %s", "seed": %s}\n' \
    "$SEED" "$DEVICE" "$TEACH_FLAGS" "$SEED" >"$WORK/teaching/settings.json"
for variant in spg plain; do
    # shellcheck disable=SC2086  # TEACH_FLAGS is a list of flags
    step "train_$variant" "$CAP_TRAIN" "$PYTHON" -m spg_core train --config configs/teaching.yaml \
        --variant "$variant" --seed "$SEED" --threads 1 --device "$DEVICE" $TEACH_FLAGS \
        --out "$WORK/teaching/$variant" &
done
# 4. The CUDA-only tests.
TESTS="$PYTHON -m pytest -q -p no:cacheprovider tests/test_distributed.py -k cuda -rs"
# shellcheck disable=SC2086
step cuda_tests "$CAP_TESTS" $TESTS --junitxml "$WORK/cuda_tests.xml" &
wait
"$PYTHON" benchmarks/gpu_report.py junit "$WORK/cuda_tests.xml" --pytest-command "$TESTS" \
    --out "$WORK/cuda_tests.json" >/dev/null 2>&1 || echo "[gpu_check] no junit result of the CUDA tests"

for pair in spg:attention spg:fused plain:attention; do
    variant=${pair%%:*} stage=${pair##*:}
    # shellcheck disable=SC2086  # EVAL_FLAGS is a list of flags
    step "eval_${variant}_$stage" "$CAP_EVAL" "$PYTHON" -m spg_core evaluate --run "$WORK/teaching/$variant" \
        --map-stage "$stage" --device "$DEVICE" $EVAL_FLAGS --out "$WORK/teaching/eval-$variant-$stage" &
done
wait

"$PYTHON" benchmarks/gpu_report.py write --work "$WORK" --out "$REPORT" --command "$COMMAND"
# Everything but checkpoints, replays and HTML curves in one file, WORK/gpu-work.tar.gz, easy to carry off.
ARCHIVE=$(mktemp)
tar -czf "$ARCHIVE" --exclude='*.pt' --exclude='*.npz' --exclude='*.html' -C "$WORK" . \
    && chmod 644 "$ARCHIVE" && mv "$ARCHIVE" "$WORK/gpu-work.tar.gz"
echo "[gpu_check] done in $(($(date +%s) - START)) s; report: $REPORT"
cat "$REPORT"
