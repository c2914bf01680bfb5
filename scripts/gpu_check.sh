#!/usr/bin/env bash
# GPU check of the fused decode: everything a lent GPU machine can run, in one call (< 8 minutes on one GPU).
# Run from the repository root on a machine with an NVIDIA GPU, nvcc and a CUDA build of torch in the venv:
#
#   scripts/gpu_check.sh            # results in ./gpu_check_out/ (or in $OUT when set)
#
# Writes $RES/gpu_check.log, $RES/build.json, $RES/fused_gpu.json (the JSON report: fused CUDA op vs the reference
# decode, torch backend note, CUDA-event timings of decode and network at 1333x800 for r50 / r50-light, fp32 /
# fp16) and $RES/pytest_gpu.xml. Steps (each logged; the script stops at the first failure, exits non-zero):
#   1. environment: nvidia-smi, nvcc, torch.cuda
#   2. nvcc compile check sm_75..sm_120 + a -G build's register check (pytest of tests/fused/test_kernels.py)
#   3. build for this GPU: CUDA library, PyTorch CUDA op, TensorRT plugin when TensorRT is there
#   4. python -m uniparser_sdk.fused.gpu_check (the JSON report)
#   5. pytest -m gpu tests/fused/test_kernels.py (CUDA op == reference, slots, limits)
#   6. TensorRT step (owner: the TensorRT backend; skipped where `import tensorrt` fails)
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

step "2/6 nvcc compile check (sm_75..sm_120) and -G register check"
run "$PY" -m uniparser_sdk.fused.build --cuda-check
run "$PY" -m pytest -q -rs tests/fused/test_kernels.py -k "registers or nvcc"

step "3/6 build for this GPU (CUDA library, PyTorch CUDA op, TensorRT plugin if TensorRT is installed)"
run "$PY" -m uniparser_sdk.fused.build --all --json "$RES/build.json"

step "4/6 fused CUDA op vs reference + timings (JSON report)"
run "$PY" -m uniparser_sdk.fused.gpu_check --json "$RES/fused_gpu.json"

step "5/6 pytest -m gpu (kernels)"
run "$PY" -m pytest -m gpu -v -rs tests/fused/test_kernels.py --junitxml="$RES/pytest_gpu.xml"

step "6/6 TensorRT"
# ======================================================================================================
# TensorRT step: maintained by the TensorRT-backend engineer (this block is theirs; edit it there).
# ======================================================================================================
# ---- TensorRT step (owner: uniparser_sdk/backends/tensorrt) -------------------------------------------
# Runs only where `import tensorrt` works (the lent H200 machines have no TensorRT: then it says so and
# skips). Builds the embedded model's products-v1 engines (FP32, and FP16 from the FP16 ONNX: strongly
# typed), runs each against its ONNX on the bundled samples, builds the plugin-v1 engine twice in one
# process when kernels/build has the plugin (the registry-first plugin loading), and runs the GPU tests
# of tests/backends/tensorrt/test_tensorrt_backend.py (already part of step 5; repeated here with -v for the log).
step "TensorRT build + run + plugin"
if "$PY" -c "import tensorrt" >/dev/null 2>&1; then
  TRT="$RES/tensorrt"
  mkdir -p "$TRT"
  run "$PY" -c "import tensorrt as t; print('tensorrt', t.__version__)"
  for prec in fp32 fp16; do
    flag=(); [[ $prec == fp16 ]] && flag=(--fp16)
    run "$PY" -m uniparser_sdk.cli.export "${flag[@]}" -o "$TRT/default-$prec.onnx" --engine \
      --sample-size 352x256 --min-size 256 --opt-size 512x384 --max-size 640 --batch 1,1,2
    run "$PY" -c "
import sys, numpy as np
from pathlib import Path
from uniparser_sdk.runtime import Parser
from uniparser_sdk.io_utils import imread
onnx, engine = sys.argv[1], sys.argv[1][:-5] + '.engine'
imgs = [imread(p) for p in sorted(Path('uniparser_sdk/assets/samples').glob('*.png'))]
with Parser(onnx, device='cpu') as a, Parser(engine) as b:
    for im in imgs:
        ra, rb = a.predict(im), b.predict(im)
        print('persons onnx', ra.num_persons, 'engine', rb.num_persons, 'scores', [round(p.score, 4) for p in ra][:5], [round(p.score, 4) for p in rb][:5])
print('engine', engine, 'ran on', len(imgs), 'images; last_inference_time', getattr(b.backend, 'last_inference_time', None))
" "$TRT/default-$prec.onnx"
  done
  LIB=${UNIPARSER_TRT_PLUGIN:-kernels/build/libuniparser_trt_plugin.so}
  if [[ -f "$LIB" ]]; then
    run "$PY" -m uniparser_sdk.cli.export --plugin -o "$TRT/default-plugin.onnx" --engine --plugin-lib "$LIB" \
      --sample-size 352x256 --min-size 256 --opt-size 512x384 --max-size 640 --batch 1,1,2
    run "$PY" -c "
import sys
from uniparser_sdk.backends.tensorrt import build as tb
onnx, lib = sys.argv[1], sys.argv[2]
prof = tb.profile_shapes(256, (384, 512), 640, batch=(1, 1, 2))
for i in range(2):  # a second plugin build in one process used to fail (loadLibrary returns null)
    print(tb.build_engine(onnx, onnx[:-5] + f'-again{i}.engine', profile=prof, plugin_lib=lib, log=print))
from uniparser_sdk.runtime import Parser
from uniparser_sdk.io_utils import imread
with Parser(onnx[:-5] + '.engine') as p:
    print('plugin engine persons:', p.predict(imread('uniparser_sdk/assets/samples/scene_00.png')).num_persons)
" "$TRT/default-plugin.onnx" "$LIB"
  else
    echo "no plugin library at $LIB: plugin-v1 engine skipped (build kernels/ with -DTensorRT_ROOT)" | tee -a "$LOG"
  fi
  run "$PY" -m pytest -m gpu -v -rs tests/backends/tensorrt/test_tensorrt_backend.py
else
  echo "tensorrt is not importable here: TensorRT step skipped (pip install 'uniparser-sdk[trt]' on a machine" \
       "with TensorRT's libraries to run it)" | tee -a "$LOG"
fi

# ====================================================================================== end TensorRT step

echo | tee -a "$LOG"
echo "gpu_check: all steps passed; results in $RES" | tee -a "$LOG"
