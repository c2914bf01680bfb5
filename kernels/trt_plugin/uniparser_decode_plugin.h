/*
 * TensorRT 10 / 11 plugin "UniParserDecode" (version "1", namespace "uniparser"): IPluginV3 with the
 * IPluginV3OneCore / IPluginV3OneBuild / IPluginV3OneRuntime capabilities and an IPluginCreatorV3One,
 * wrapping uniparser_decode_cuda() (kernels/uniparser_decode.cu). Node contract: kernels/PLUGIN_CONTRACT.md.
 *
 * inputs   0 center_logits  float (B, 1, S, S)
 *          1 ins_feats      float (B, D, h, w)
 *          2 sem_feats      float (B, D, h, w)
 *          3 seg_kernels    float (C, D)            (an ONNX initializer -> constant)
 * outputs  0 scores         float (B, K)            descending, 0 beyond the count
 *          1 num_instances  int32 (B,)
 *          2 part_maps      int32 (B, K, 4h, w)     packed: its bytes are uint8 labels (B, K, 4h, 4w)
 *                                                   (TensorRT plugins cannot have UINT8 outputs)
 * attributes  max_instances (int, K), ctr_score, mask_thr, cate_score_thr (float)
 */
#ifndef UNIPARSER_DECODE_PLUGIN_H
#define UNIPARSER_DECODE_PLUGIN_H

#include <NvInferRuntime.h>

#include <cstdint>
#include <string>
#include <vector>

namespace uniparser {
namespace trt {

constexpr char const* kPluginName = "UniParserDecode";
constexpr char const* kPluginVersion = "1";
constexpr char const* kPluginNamespace = "uniparser";

struct DecodeParams {
    int32_t max_instances{100};
    float ctr_score{0.2f};
    float mask_thr{0.5f};
    float cate_score_thr{0.3f};
};

class UniParserDecodePlugin final : public nvinfer1::IPluginV3,
                                    public nvinfer1::IPluginV3OneCore,
                                    public nvinfer1::IPluginV3OneBuild,
                                    public nvinfer1::IPluginV3OneRuntime {
public:
    explicit UniParserDecodePlugin(DecodeParams const& params);
    UniParserDecodePlugin(UniParserDecodePlugin const& other);
    UniParserDecodePlugin& operator=(UniParserDecodePlugin const&) = delete;
    ~UniParserDecodePlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
                               nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
                            int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                            nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                   int32_t nbOutputs) noexcept override;
    int32_t getNbOutputs() const noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
                          int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                    void const* const* inputs, void* const* outputs, void* workspace,
                    cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    void initFieldsToSerialize();

    DecodeParams mParams;
    std::vector<nvinfer1::PluginField> mDataToSerialize;
    nvinfer1::PluginFieldCollection mFCToSerialize{};
};

/* Validate a field collection (creator input, or getFieldsToSerialize on deserialization): exactly the four fields
 * (each once, one value; integer fields of any width, float fields as FLOAT32/FLOAT64/integers), 1 <= max_instances
 * <= UNIPARSER_CUDA_MAX_INSTANCES, no NaN, mask_thr >= 0. Returns "" and fills *out, or the reason. */
std::string parseFields(nvinfer1::PluginFieldCollection const* fc, DecodeParams* out);

class UniParserDecodePluginCreator final : public nvinfer1::IPluginCreatorV3One {
public:
    UniParserDecodePluginCreator();
    ~UniParserDecodePluginCreator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
                                      nvinfer1::TensorRTPhase phase) noexcept override;

private:
    std::vector<nvinfer1::PluginField> mPluginAttributes;
    nvinfer1::PluginFieldCollection mFC{};
};

}  // namespace trt
}  // namespace uniparser

extern "C" {
/* Register the creator with TensorRT's global plugin registry (idempotent: 0 when it is registered already, by
 * this call or by IPluginRegistry::loadLibrary). 0 on success, -1 without a registry or when registration fails.
 * For loading the library with ctypes / dlopen; uniparser_sdk.fused.load_trt_plugin() calls it. */
__attribute__((visibility("default"))) int uniparser_trt_register_plugin(void);

/* Entry points of IPluginRegistry::loadLibrary (trt.get_plugin_registry().load_library(path)). */
__attribute__((visibility("default"))) void setLoggerFinder(nvinfer1::ILoggerFinder* finder);
__attribute__((visibility("default"))) nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);
}

#endif  // UNIPARSER_DECODE_PLUGIN_H
