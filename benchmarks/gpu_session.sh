#!/usr/bin/env bash
# The GPU checks and benchmarks, as run on a lent GPU machine (one short session).
#
#   bash benchmarks/gpu_session.sh smoke   # CUDA tests, TikTok epoch timings, a parallel probe
#   bash benchmarks/gpu_session.sh full    # accuracy benchmark + tuning, cold start, Sports scale
#
# Expects the TikTok folder at ../shared/data/tiktok (or at .tiktok/, linked there) and writes
# into $OUT (default benchmarks/results/gpu). Nothing here is part of CI.
set -u
mode=${1:-smoke}
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if [ ! -e ../shared/data/tiktok ] && [ -d .tiktok ]; then
    mkdir -p ../shared/data && ln -sfn "$PWD/.tiktok" ../shared/data/tiktok
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.txt"
$PY -c "import torch, os; print('torch', torch.__version__, torch.cuda.get_device_name(), os.cpu_count(), 'cpus')" | tee -a "$OUT/machine.txt"

if [ -d .gpu_src ]; then cp .gpu_src/*.py src/diffmm/; fi  # pinned copies of files mid-edit
if [ "$mode" = smoke ]; then
    timeout 100 $PY -m pytest tests/test_cuda.py tests/test_estimator.py tests/test_precision.py \
        tests/test_baselines.py -k "cuda or precision" -q -p no:cacheprovider 2>&1 \
        | tail -30 | tee "$OUT/pytest.log"
    # Parallel probe: 4 short TikTok fits at once, to size the full run's parallelism.
    timeout 100 $PY benchmarks/accuracy.py --data tiktok --groups main --seeds 0,1 --epochs 2 \
        --device cuda --jobs 4 --threads 2 --out "$OUT/probe" 2>&1 | tail -12
    cp "$OUT/probe/accuracy_tiktok.jsonl" "$OUT/probe.jsonl" 2>/dev/null
    rm -rf "$OUT/probe"
    exit 0
fi

# full: the accuracy benchmark (main, tuning, ablations, bf16) in parallel on the one GPU, the
# TikTok cold-start benchmark beside it, then the Amazon-Sports-scale speed scenario.
JOBS=${JOBS:-12}
MINUTES=${MINUTES:-5.5}
$PY benchmarks/cold_start.py --data tiktok --epochs 20 > "$OUT/cold_start.log" 2>&1 &
cold=$!
$PY benchmarks/accuracy.py --data tiktok --groups main,tuning,ablations,precision --seeds 0,1,2 \
    --device cuda --jobs "$JOBS" --threads 1 --deadline-minutes "$MINUTES" --out "$OUT" \
    > "$OUT/accuracy.log" 2>&1
wait $cold
cp benchmarks/results/cold_start_tiktok.json "$OUT/" 2>/dev/null
timeout 120 $PY benchmarks/speed.py --scenarios sports --device cuda --epochs 1 \
    --label gpu_sports --out "$OUT" 2>&1 | tail -8
