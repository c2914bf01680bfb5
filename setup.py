"""UniParser SDK.

Import names of the card's top-level folders (a top-level package called ``export`` or
``benchmarks`` would collide with other code in users' environments):

    uniparser_sdk/  -> uniparser_sdk
    export/         -> uniparser_sdk.export
    benchmarks/     -> uniparser_sdk.benchmarks
    kernels/        -> C++/CUDA sources, built by ``make kernels`` (CMake); Python wrappers live in
                       uniparser_sdk.fused
"""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "uniparser_sdk/__init__.py").read_text()).group(1)

packages = find_packages(include=["uniparser_sdk", "uniparser_sdk.*"])
packages += ["uniparser_sdk.export", "uniparser_sdk.benchmarks"]
# kernels/ (C++/CUDA sources, no Python) ships as data of a package directory inside uniparser_sdk.fused, so that
# `python -m uniparser_sdk.fused.build --all` can build the CPU twin, the CUDA op and the TensorRT plugin from a wheel
KERNEL_SOURCES = ["*.h", "*.cpp", "*.cu", "CMakeLists.txt", "*.md", "trt_plugin/*.h", "trt_plugin/*.cpp",
                  "torch_op/*.cpp", "testing/*.cpp"]
packages += ["uniparser_sdk.fused.kernel_sources"]

TORCH = ["torch==2.13.0"]
EXPORT = ["onnx>=1.16", "onnxsim>=0.4"]
extras = {
    "torch": TORCH,
    "train": TORCH + ["tqdm"],
    "export": TORCH + EXPORT,
    "gpu": ["onnxruntime-gpu>=1.25"],  # DeformConv kernels from 1.25 (DESIGN §9)
    # TensorRT 10.x and 11.x (tested: 10.16 and 11.4 bindings); CUDA memory via cuda-python, or pycuda
    "trt": ["tensorrt>=10.1,<12", "cuda-python>=12.6"],
    "trt-pycuda": ["tensorrt>=10.1,<12", "pycuda>=2024.1"],
    # Triton client (uniparser_sdk.serving.TritonParserClient); the server side needs only this SDK
    "serving": ["tritonclient[http,grpc]>=2.41"],
    # low-precision CPU inference: OpenVINO IR (bf16 on AVX512-BF16/AMX CPUs, int8 via NNCF calibration)
    "openvino": ["openvino>=2026.0", "nncf>=3.0"],
    # reading our COCO files with the reference tools (the SDK's RLE codec is its own)
    "coco": ["pycocotools>=2.0.7"],
    "dev": TORCH + EXPORT + ["pytest>=7", "tqdm", "openvino>=2026.0", "nncf>=3.0", "pycocotools>=2.0.7"],
}

setup(
    name="uniparser-sdk",
    version=VERSION,
    description="Deployment toolkit for UniParser single-stage multi-human parsing",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=packages,
    package_dir={
        "uniparser_sdk.export": "export",
        "uniparser_sdk.benchmarks": "benchmarks",
        "uniparser_sdk.fused.kernel_sources": "kernels",
    },
    package_data={"uniparser_sdk": ["assets/*", "assets/**/*"], "uniparser_sdk.fused.kernel_sources": KERNEL_SOURCES},
    install_requires=["numpy>=1.23", "opencv-python-headless>=4.8", "onnxruntime>=1.25", "tqdm"],
    extras_require=extras,
    entry_points={"console_scripts": [
        "uniparser-predict=uniparser_sdk.cli.predict:main",
        "uniparser-params=uniparser_sdk.cli.params:main",
        "uniparser-export=uniparser_sdk.cli.export:main",
        "uniparser-triton=uniparser_sdk.cli.triton:main",
        "uniparser-quantize=uniparser_sdk.cli.quantize:main",
        "uniparser-tune=uniparser_sdk.cli.tune:main",
        "uniparser-eval=uniparser_sdk.cli.evaluate:main",
        "uniparser-train=uniparser_sdk.cli.train:main",
        "uniparser-bench=uniparser_sdk.cli.bench:main",
    ]},
)
