#!/usr/bin/env bash
# GPU throughput of the bare model against the real pipeline (bench/gpu_bench.py has the details):
# fasterrcnn_resnet50_fpn_v2 and fasterrcnn_mobilenet_v3_large_fpn, random weights, 1280x720 frames,
# batch 1, 4, 8, 16, fp32 and fp16: bare images/s, pipeline images/s, their ratio, peak GPU memory.
# Target: pipeline/bare >= 0.9 at batch 8, in-process and in a worker process. One call, under 8 minutes (hard limit 470 s).
# Preprocessing is batched on the device (TorchDetector's default); --per-image measures the old path.
#
#   bench/gpu.sh              # on a CUDA machine
#   bench/gpu.sh --per-image  # the same with the model's image-by-image transform, for comparison
#   bench/gpu.sh --dry-run    # CPU, tiny sizes, one iteration (tests/bench/test_gpu_bench.py runs it in CI)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
# --worker: the pipeline again at batch 8 with the detector in a worker process (detector.isolation: process,
# frames through shared memory), rows marked fp32+worker / fp16+worker; not yet timed on a GPU (none lent so far)
exec timeout 470 "$python" -m bench.gpu_bench --worker "$@"
