"""Every TensorRT Python name this backend uses, in one place (``Class.member`` or a module-level name).

``REQUIRED`` must exist in every supported TensorRT (10.x and 11.x); ``OPTIONAL`` names are used only
behind a ``hasattr`` feature test, and :data:`EXPECTED_OPTIONAL` says which major has them. The tests
check both against the real ``tensorrt`` bindings 10.16 and 11.4 (imported over stub libnvinfer
libraries), check that every ``trt.X.Y`` chain and every ``hasattr``/``getattr`` name in this package's
sources is declared here, and run build and inference through a fake generated from those bindings that
refuses any name the real module of that version lacks.
"""
from __future__ import annotations

REQUIRED = (
    # module
    "__version__", "Logger", "Logger.WARNING", "Logger.ERROR", "Builder", "OnnxParser", "Runtime",
    "MemoryPoolType", "MemoryPoolType.WORKSPACE", "BuilderFlag", "NetworkDefinitionCreationFlag",
    "TensorIOMode", "TensorIOMode.INPUT", "init_libnvinfer_plugins", "get_plugin_registry", "nptype",
    # build
    "Builder.create_network", "Builder.create_builder_config", "Builder.create_optimization_profile",
    "Builder.build_serialized_network", "INetworkDefinition.num_inputs", "INetworkDefinition.get_input",
    "ITensor.name", "ITensor.shape", "OnnxParser.parse", "OnnxParser.num_errors", "OnnxParser.get_error",
    "IBuilderConfig.set_memory_pool_limit", "IBuilderConfig.set_flag", "IBuilderConfig.add_optimization_profile",
    "IBuilderConfig.create_timing_cache", "IBuilderConfig.set_timing_cache", "IBuilderConfig.get_timing_cache",
    "IOptimizationProfile.set_shape", "ITimingCache.serialize",
    # plugins
    "IPluginRegistry.get_creator", "IPluginRegistry.load_library",
    # run
    "Runtime.deserialize_cuda_engine", "ICudaEngine.num_io_tensors", "ICudaEngine.get_tensor_name",
    "ICudaEngine.get_tensor_mode", "ICudaEngine.get_tensor_dtype", "ICudaEngine.get_tensor_shape",
    "ICudaEngine.get_tensor_profile_shape", "ICudaEngine.create_execution_context",
    "IExecutionContext.set_input_shape", "IExecutionContext.get_tensor_shape",
    "IExecutionContext.set_tensor_address", "IExecutionContext.execute_async_v3",
)

OPTIONAL = (
    "BuilderFlag.FP16",  # 10.x only: FP16 kernels for a float32 ONNX (weakly typed network)
    "Builder.platform_has_fast_fp16",  # 10.x only
    "NetworkDefinitionCreationFlag.STRONGLY_TYPED",  # 10.x: strong typing; 11.x: accepted, ignored
    "IPluginRegistry.get_plugin_creator",  # 10.x only (deprecated there); get_creator is used first
)

#: which TensorRT major has each OPTIONAL name (checked against the real bindings)
EXPECTED_OPTIONAL = {
    10: {"BuilderFlag.FP16": True, "Builder.platform_has_fast_fp16": True,
         "NetworkDefinitionCreationFlag.STRONGLY_TYPED": True, "IPluginRegistry.get_plugin_creator": True},
    11: {"BuilderFlag.FP16": False, "Builder.platform_has_fast_fp16": False,
         "NetworkDefinitionCreationFlag.STRONGLY_TYPED": True, "IPluginRegistry.get_plugin_creator": False},
}

#: the TensorRT bindings the tests import (the [trt] extra's tested range: tensorrt>=10.1,<12)
TESTED_BINDINGS = {10: ("tensorrt-cu12-bindings", "10.16.0.72"), 11: ("tensorrt-cu13-bindings", "11.4.0.106")}

DECLARED = frozenset(REQUIRED) | frozenset(OPTIONAL)
