#!/usr/bin/env bash
# The GPU checks and benchmarks, as run on a lent GPU machine (one short session).
#
#   bash benchmarks/gpu_session.sh smoke   # CUDA tests, TikTok epoch timings, a parallel probe
#   bash benchmarks/gpu_session.sh tune    # timings + profile, then tuning round 2 and ablations
#   bash benchmarks/gpu_session.sh next    # timings + profile, then tuning round 4 (3 seeds)
#   bash benchmarks/gpu_session.sh plus    # timings + profile, then the options' rows (3 seeds)
#   bash benchmarks/gpu_session.sh speed   # CUDA tests, phases against their floors, profile
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

# Shared steps of the search modes: timings alone on the GPU first (a TikTok epoch per
# precision, a torch.profiler pass), then the CUDA tests beside one wave of accuracy jobs, each
# stopped at a common time limit (it keeps its best epoch so far). Earlier results are copied
# in first so finished jobs are skipped; few files come back (JSON-lines results, logs, speed).
timings() {  # precisions...
    cp benchmarks/results/accuracy_tiktok.jsonl "$OUT/" 2>/dev/null
    for precision in "$@"; do
        timeout 100 $PY benchmarks/speed.py --scenarios tiktok --device cuda --epochs 3 \
            --precision "$precision" --label "h200-$precision" --out "$OUT/speed" 2>&1 | tail -4
        cp "$OUT/speed/speed_h200-$precision.json" "$OUT/" 2>/dev/null
    done
    rm -rf "$OUT/speed"
    timeout 90 $PY benchmarks/profile_epoch.py --device cuda --epochs 2 \
        --out "$OUT/profile_h200.txt" 2>&1 | head -8
}
wave() {  # wall seconds, stop minutes, accuracy.py selection arguments...
    local wall=$1 stop=$2
    shift 2
    (timeout 200 $PY -m pytest tests/test_cuda.py tests/test_estimator.py tests/test_precision.py \
        tests/test_baselines.py -k "cuda or precision" -q -p no:cacheprovider 2>&1 | tail -30 \
        >> "$OUT/machine.txt") &
    timeout "$wall" $PY benchmarks/accuracy.py --data tiktok "$@" --seeds 0,1,2 --by-seed \
        --device cuda --jobs "${JOBS:-15}" --threads 1 --stop-minutes "$stop" --out "$OUT" \
        > "$OUT/accuracy.log" 2>&1
    wait
    rm -f "$OUT/accuracy_tiktok.json" "$OUT/accuracy_tiktok.md"
    tail -25 "$OUT/accuracy.log"
}

if [ "$mode" = speed ]; then
    # The speed issue's checks on the GPU (about 6 minutes): the CUDA tests, each phase against
    # its floor in fp32 and bf16 (alternating, two rounds: the run-to-run spread), and where
    # an epoch's time goes (torch.profiler: kernel time against wall time).
    timeout 120 $PY -m pytest tests/test_cuda.py tests/test_estimator.py tests/test_precision.py \
        tests/test_baselines.py -k "cuda or precision" -q -p no:cacheprovider 2>&1 \
        | tail -30 | tee "$OUT/pytest.log"
    timeout 300 $PY benchmarks/speed.py --scenarios tiktok --device cuda --precision fp32,bf16 \
        --rounds 2 --label h200 --out "$OUT/speed" 2>&1 | tail -40
    cp "$OUT/speed/speed_h200.json" "$OUT/speed/speed_h200.md" "$OUT/" 2>/dev/null
    rm -rf "$OUT/speed"
    timeout 90 $PY benchmarks/profile_epoch.py --device cuda --epochs 2 \
        --out "$OUT/profile_h200.txt" 2>&1 | head -8
    exit 0
fi

if [ "$mode" = plus ]; then
    # The options beyond the published model (docs/accuracy.md): the rows the CPU has not run
    # yet, three seeds each, every epoch of the budget, in one wave; a rerun skips what
    # finished. Jobs cut by the time limit are marked and rerun on the CPU, not compared.
    timings fp32
    wave "${WAVE_S:-540}" "${STOP_MIN:-8}" --groups plus,plus_lightgcn
    exit 0
fi

if [ "$mode" = next ]; then
    # The next session: time the current code (the CPU-side ranking and the per-epoch index
    # triples changed since the last GPU timing), then the fourth search round (five settings
    # around tiktok-tuned, three seeds each, every epoch of the 50: compare with tuned_full)
    # in one wave.
    timings fp32
    wave "${WAVE_S:-330}" "${STOP_MIN:-4.8}" --groups round4
    exit 0
fi

# tune (the session that ran it): fp32 and bf16 timings, then the second round of the tuning
# search, the missing ablation runs and the two-layer settings' seeds.
timings fp32 bf16
wave "${WAVE_S:-430}" "${STOP_MIN:-6.2}" --groups retune --configs modal_modal,audio_only,layers2
