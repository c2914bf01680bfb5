#!/usr/bin/env bash
# GPU check of the fused decode: run from the repository root on a machine with an NVIDIA GPU, nvcc and a CUDA
# build of torch in the venv.
#
#   scripts/gpu_check.sh            # results in ./gpu_check_out/ (or in $OUT when set)
#
# Steps (each logged; the script stops at the first failure and exits non-zero):
#   1. environment: nvidia-smi, nvcc, torch.cuda
#   2. nvcc compile check for sm_75, 80, 86, 89, 90      (python -m uniparser_sdk.kernels.build --cuda-check)
#   3. cmake build of kernels/ (CPU twin, CUDA library, TensorRT plugin when TensorRT_ROOT is set/found)
#   4. build of the PyTorch CUDA op (torch.utils.cpp_extension)
#   5. pytest -m gpu                                       (CUDA op == reference decode, and other GPU tests)
#   6. decode benchmark on cuda                            (benchmarks/decode_bench.py --device cuda)
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
RES=${OUT:-$PWD/gpu_check_out}
mkdir -p "$RES"
LOG="$RES/gpu_check.log"
: >"$LOG"
export PATH="/usr/local/cuda/bin:$PATH"
export PYTHONUNBUFFERED=1

step() { echo; echo "=== $* ===" | tee -a "$LOG"; }
run() { echo "+ $*" | tee -a "$LOG"; "$@" 2>&1 | tee -a "$LOG"; }

step "1/6 environment"
run nvidia-smi || true
run nvcc --version || true
run "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available()); assert torch.cuda.is_available(), 'torch has no CUDA device: install a CUDA build of torch in the venv'"

step "2/6 nvcc compile check (sm_75..sm_90)"
run "$PY" -m uniparser_sdk.kernels.build --cuda-check

step "3/6 cmake build of kernels/"
if command -v cmake >/dev/null; then
  CMAKE_ARGS=(-S kernels -B kernels/build -DCMAKE_BUILD_TYPE=Release)
  [[ -n "${TensorRT_ROOT:-}" ]] && CMAKE_ARGS+=("-DTensorRT_ROOT=$TensorRT_ROOT")
  run cmake "${CMAKE_ARGS[@]}"
  run cmake --build kernels/build -j "$(nproc)"
  ls -l kernels/build/*.so | tee -a "$LOG"
else
  echo "cmake not found: CMake build skipped" | tee -a "$LOG"
fi

step "4/6 PyTorch CUDA op build"
run "$PY" -c "from uniparser_sdk.kernels import torch_op; assert torch_op.is_available(), 'CUDA op unavailable'; m = torch_op.load(verbose=True); print('loaded', m.__file__)"

step "5/6 pytest -m gpu"
run "$PY" -m pytest -m gpu -v -rs tests/ --junitxml="$RES/pytest_gpu.xml"

step "6/6 decode benchmark (cuda)"
run "$PY" benchmarks/decode_bench.py --device cuda --runs 20 --warmup 3 --json "$RES/decode_bench.json"

echo | tee -a "$LOG"
echo "gpu_check: all steps passed; results in $RES" | tee -a "$LOG"
