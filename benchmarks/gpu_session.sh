#!/usr/bin/env bash
# The GPU checks and benchmarks, as run on a lent GPU machine (one short session).
#
#   bash benchmarks/gpu_session.sh smoke   # CUDA tests, TikTok epoch timings, a parallel probe
#   bash benchmarks/gpu_session.sh tune    # timings + profile, then tuning round 2 and ablations
#   bash benchmarks/gpu_session.sh next    # timings + profile, then tuning round 4 (3 seeds)
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

if [ "$mode" = next ]; then
    # The next session: time the current code (the CPU-side ranking and the per-epoch index
    # triples changed since the last GPU timing), then one wave of the fourth search round
    # (five settings around tiktok-tuned, three seeds each) with the CUDA tests beside it.
    cp benchmarks/results/accuracy_tiktok.jsonl "$OUT/" 2>/dev/null
    timeout 100 $PY benchmarks/speed.py --scenarios tiktok --device cuda --epochs 3 \
        --label h200-fp32 --out "$OUT/speed" 2>&1 | tail -4
    cp "$OUT/speed/speed_h200-fp32.json" "$OUT/" 2>/dev/null
    rm -rf "$OUT/speed"
    timeout 90 $PY benchmarks/profile_epoch.py --device cuda --epochs 2 \
        --out "$OUT/profile_h200.txt" 2>&1 | head -8
    (timeout 200 $PY -m pytest tests/test_cuda.py tests/test_estimator.py tests/test_precision.py \
        tests/test_baselines.py -k "cuda or precision" -q -p no:cacheprovider 2>&1 | tail -30 \
        >> "$OUT/machine.txt") &
    timeout "${WAVE_S:-330}" $PY benchmarks/accuracy.py --data tiktok --groups round4 \
        --seeds 0,1,2 --by-seed --device cuda --jobs "${JOBS:-15}" --threads 1 \
        --stop-minutes "${STOP_MIN:-4.8}" --out "$OUT" > "$OUT/accuracy.log" 2>&1
    wait
    rm -f "$OUT/accuracy_tiktok.json" "$OUT/accuracy_tiktok.md"
    tail -20 "$OUT/accuracy.log"
    exit 0
fi

# tune (the default afterwards): timings alone on the GPU first (TikTok epoch in fp32 and bf16, a
# torch.profiler pass), then the second round of the tuning search, the missing ablation runs and
# the tuned preset's seeds, 15 models at once, each stopped at a common time limit (it keeps its
# best epoch so far), with the CUDA tests beside them. Earlier results are copied in first so
# finished jobs are skipped. Few files come back: the JSON-lines results, logs, speed JSON.
cp benchmarks/results/accuracy_tiktok.jsonl "$OUT/" 2>/dev/null
for precision in fp32 bf16; do
    timeout 100 $PY benchmarks/speed.py --scenarios tiktok --device cuda --epochs 3 \
        --precision $precision --label h200-$precision --out "$OUT/speed" 2>&1 | tail -4
    cp "$OUT/speed/speed_h200-$precision.json" "$OUT/" 2>/dev/null
done
rm -rf "$OUT/speed"
timeout 90 $PY benchmarks/profile_epoch.py --device cuda --epochs 2 --out "$OUT/profile_h200.txt" \
    2>&1 | head -8
(timeout 200 $PY -m pytest tests/test_cuda.py tests/test_estimator.py tests/test_precision.py \
    tests/test_baselines.py -k "cuda or precision" -q -p no:cacheprovider 2>&1 | tail -30 \
    >> "$OUT/machine.txt") &
timeout "${WAVE_S:-430}" $PY benchmarks/accuracy.py --data tiktok --groups retune \
    --configs modal_modal,audio_only,tuned --seeds 0,1,2 --by-seed --device cuda \
    --jobs "${JOBS:-15}" --threads 1 --stop-minutes "${STOP_MIN:-6.2}" --out "$OUT" \
    > "$OUT/accuracy.log" 2>&1
wait
rm -f "$OUT/accuracy_tiktok.json" "$OUT/accuracy_tiktok.md"
tail -25 "$OUT/accuracy.log"
