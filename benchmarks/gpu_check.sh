#!/usr/bin/env bash
# The GPU check: on a machine with a CUDA GPU, in under 10 minutes,
#   1. installs this checkout into the current Python environment (pip install -e ".[test]"; offline, the project
#      alone on the packages already there),
#   2. runs the suite's GPU-marked tests (pytest -m gpu: a bf16 training step, the online weak model on the
#      student's device, labelling on the GPU),
#   3. prints the trainer-overhead ratio (WeakToStrongTrainer / plain Trainer), the labelling-throughput ratio
#      (label_dataset / a bare inference_mode loop) and images/s of the EfficientNet-Lite0 student and a ViT-B/16-sized
#      one (benchmarks/gpu_speed.py).
# Copy the printed figures and the GPU's name into docs/experiments.md ("On a GPU").
#
#   bash benchmarks/gpu_check.sh             # on the GPU machine, from any directory
#   bash benchmarks/gpu_check.sh --dry-run   # anywhere: no install, the tests on the CPU, tiny speed runs
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-python3}
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}  # one GPU: the Trainer would use DataParallel over several
start=$(date +%s)
status=0
section() { echo; echo "## $1 ($(( $(date +%s) - start )) s)"; }

section "machine"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
else
    echo "no nvidia-smi"
fi

if [ "$DRY" = 1 ]; then
    export HF_W2S_GPU_TEST_DEVICE=cpu PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    SPEED_ARGS=(--quick)
else
    section "install"
    if ! timeout 240 "$PY" -m pip install -q -e ".[test]"; then
        echo "could not install the dependencies (offline?): installing the project alone on the packages present"
        timeout 120 "$PY" -m pip install -q --no-deps --no-build-isolation -e . \
            || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    fi
    "$PY" -c "import torch; assert torch.cuda.is_available(), 'torch here has no CUDA device'" || exit 1
    SPEED_ARGS=()
fi
"$PY" -c "import torch, transformers, accelerate, datasets, hf_w2s; print('torch', torch.__version__, '| CUDA',
torch.version.cuda, '| transformers', transformers.__version__, '| accelerate', accelerate.__version__,
'| datasets', datasets.__version__, '| hf_w2s from', hf_w2s.__file__)" || exit 1

section "GPU-marked tests"
timeout 240 "$PY" -m pytest -q -m gpu tests -p no:cacheprovider || status=1

section "speed"
timeout 360 "$PY" benchmarks/gpu_speed.py ${SPEED_ARGS[@]+"${SPEED_ARGS[@]}"} || status=1

section "done, exit status $status"
exit $status
