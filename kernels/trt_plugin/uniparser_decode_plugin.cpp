/*
 * TensorRT 10 IPluginV3 "UniParserDecode" (see uniparser_decode_plugin.h and kernels/PLUGIN_CONTRACT.md).
 * Compiles warning-free (-Wall -Wextra -Werror) against the TensorRT 10.16 and 11.1 headers (CI:
 * python -m uniparser_sdk.fused.build --trt-check, which also runs kernels/testing/trt_plugin_harness.cpp);
 * built for use by `python -m uniparser_sdk.fused.build --trt` or kernels/CMakeLists.txt.
 *
 * Errors go to the logger TensorRT hands over with setLoggerFinder (IPluginRegistry::loadLibrary); when the
 * library was loaded with ctypes / dlopen TensorRT never calls setLoggerFinder, so the plugin falls back to
 * libnvinfer's getLogger(), and to stderr when that is NULL too: an error is never dropped.
 *
 * The plugin runs the finishing at the padded input resolution: img = ori = (4h, 4w). Each image of the batch is
 * one uniparser_decode_cuda() call on the plugin's stream, reusing the same workspace.
 */
#include "uniparser_decode_plugin.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>

#include "../uniparser_decode_cuda.h"

using namespace nvinfer1;

namespace uniparser {
namespace trt {
namespace {

constexpr int32_t kNbInputs = 4;
constexpr int32_t kNbOutputs = 3;

class LoggerHolder {
public:
    void set(ILoggerFinder* finder) {
        std::lock_guard<std::mutex> lk(mMutex);
        if (mFinder == nullptr && finder != nullptr) mFinder = finder;
    }
    void error(char const* msg) {
        std::lock_guard<std::mutex> lk(mMutex);
        ILogger* logger = mFinder != nullptr ? mFinder->findLogger() : nullptr;
        if (logger == nullptr) logger = ::getLogger();  // loaded through ctypes: no finder was ever set
        if (logger != nullptr) logger->log(ILogger::Severity::kERROR, msg);
        else std::fprintf(stderr, "%s\n", msg);
    }

private:
    ILoggerFinder* mFinder{nullptr};
    std::mutex mMutex;
};

LoggerHolder& logger() {
    static LoggerHolder holder;
    return holder;
}

void logError(std::string const& msg) { logger().error(("[uniparser::UniParserDecode] " + msg).c_str()); }

bool readInt(PluginField const& f, int32_t* out) {
    if (f.data == nullptr || f.length < 1) return false;
    switch (f.type) {
        case PluginFieldType::kINT32: *out = *static_cast<int32_t const*>(f.data); return true;
        case PluginFieldType::kINT64: {
            int64_t const v = *static_cast<int64_t const*>(f.data);
            if (v < INT32_MIN || v > INT32_MAX) return false;
            *out = static_cast<int32_t>(v);
            return true;
        }
        case PluginFieldType::kINT16: *out = *static_cast<int16_t const*>(f.data); return true;
        case PluginFieldType::kINT8: *out = *static_cast<int8_t const*>(f.data); return true;
        default: return false;
    }
}

bool readFloat(PluginField const& f, float* out) {
    if (f.data == nullptr || f.length < 1) return false;
    switch (f.type) {
        case PluginFieldType::kFLOAT32: *out = *static_cast<float const*>(f.data); return true;
        case PluginFieldType::kFLOAT64: *out = static_cast<float>(*static_cast<double const*>(f.data)); return true;
        case PluginFieldType::kINT32: *out = static_cast<float>(*static_cast<int32_t const*>(f.data)); return true;
        case PluginFieldType::kINT64: *out = static_cast<float>(*static_cast<int64_t const*>(f.data)); return true;
        default: return false;
    }
}

/* dims of a build-time descriptor: the profile's max where known, else the network dims */
int64_t dimOf(DynamicPluginTensorDesc const& t, int32_t i) {
    if (i < t.max.nbDims && t.max.d[i] > 0) return t.max.d[i];
    return t.desc.dims.d[i];
}

}  // namespace

// ------------------------------------------------------------------------------------------------- plugin

UniParserDecodePlugin::UniParserDecodePlugin(DecodeParams const& params) : mParams(params) { initFieldsToSerialize(); }

UniParserDecodePlugin::UniParserDecodePlugin(UniParserDecodePlugin const& other)
    : IPluginV3(other), IPluginV3OneCore(other), IPluginV3OneBuild(other), IPluginV3OneRuntime(other),
      mParams(other.mParams) {
    initFieldsToSerialize();  // the fields must point at this object's members, not the other's
}

void UniParserDecodePlugin::initFieldsToSerialize() {
    mDataToSerialize.clear();
    mDataToSerialize.emplace_back("max_instances", &mParams.max_instances, PluginFieldType::kINT32, 1);
    mDataToSerialize.emplace_back("ctr_score", &mParams.ctr_score, PluginFieldType::kFLOAT32, 1);
    mDataToSerialize.emplace_back("mask_thr", &mParams.mask_thr, PluginFieldType::kFLOAT32, 1);
    mDataToSerialize.emplace_back("cate_score_thr", &mParams.cate_score_thr, PluginFieldType::kFLOAT32, 1);
    mFCToSerialize.nbFields = static_cast<int32_t>(mDataToSerialize.size());
    mFCToSerialize.fields = mDataToSerialize.data();
}

IPluginCapability* UniParserDecodePlugin::getCapabilityInterface(PluginCapabilityType type) noexcept {
    switch (type) {
        case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
        case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
        case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    }
    return nullptr;
}

IPluginV3* UniParserDecodePlugin::clone() noexcept {
    try {
        return new UniParserDecodePlugin(*this);
    } catch (std::exception const& e) {
        logError(std::string("clone failed: ") + e.what());
    }
    return nullptr;
}

char const* UniParserDecodePlugin::getPluginName() const noexcept { return kPluginName; }
char const* UniParserDecodePlugin::getPluginVersion() const noexcept { return kPluginVersion; }
char const* UniParserDecodePlugin::getPluginNamespace() const noexcept { return kPluginNamespace; }

int32_t UniParserDecodePlugin::getNbOutputs() const noexcept { return kNbOutputs; }

int32_t UniParserDecodePlugin::configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                               DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept {
    if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || in == nullptr || out == nullptr) {
        logError("expects 4 inputs (center_logits, ins_feats, sem_feats, seg_kernels) and 3 outputs");
        return -1;
    }
    Dims const& c = in[0].desc.dims;
    Dims const& a = in[1].desc.dims;
    Dims const& b = in[2].desc.dims;
    Dims const& k = in[3].desc.dims;
    if (c.nbDims != 4 || a.nbDims != 4 || b.nbDims != 4 || k.nbDims != 2) {
        logError("bad input ranks: need (B,1,S,S), (B,D,h,w), (B,D,h,w), (C,D)");
        return -1;
    }
    auto known = [](int64_t x) { return x >= 0; };
    if ((known(c.d[1]) && c.d[1] != 1) || (known(c.d[2]) && known(c.d[3]) && c.d[2] != c.d[3])) {
        logError("center_logits must be (B, 1, S, S)");
        return -1;
    }
    for (int i = 0; i < 4; ++i)
        if (known(a.d[i]) && known(b.d[i]) && a.d[i] != b.d[i]) {
            logError("ins_feats and sem_feats must have the same shape");
            return -1;
        }
    if (known(k.d[1]) && known(a.d[1]) && k.d[1] != a.d[1]) {
        logError("seg_kernels must be (C, D) with the features' D");
        return -1;
    }
    if (known(k.d[0]) && (k.d[0] < 1 || k.d[0] > 255)) {
        logError("seg_kernels must have 1..255 rows (uint8 labels)");
        return -1;
    }
    if (mParams.max_instances < 1) {
        logError("max_instances must be >= 1");
        return -1;
    }
    return 0;
}

int32_t UniParserDecodePlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs,
                                                  DataType const* /*inputTypes*/, int32_t nbInputs) const noexcept {
    if (nbOutputs != kNbOutputs || nbInputs != kNbInputs || outputTypes == nullptr) return -1;
    outputTypes[0] = DataType::kFLOAT;  // scores
    outputTypes[1] = DataType::kINT32;  // num_instances
    outputTypes[2] = DataType::kINT32;  // part_maps, packed uint8 x 4 (plugins cannot output UINT8)
    return 0;
}

int32_t UniParserDecodePlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs,
                                               DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/,
                                               DimsExprs* outputs, int32_t nbOutputs,
                                               IExprBuilder& exprBuilder) noexcept {
    if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || inputs == nullptr || outputs == nullptr) return -1;
    if (inputs[0].nbDims != 4 || inputs[1].nbDims != 4 || inputs[2].nbDims != 4 || inputs[3].nbDims != 2) return -1;
    IDimensionExpr const* batch = inputs[0].d[0];
    IDimensionExpr const* k = exprBuilder.constant(mParams.max_instances);
    outputs[0].nbDims = 2;  // scores (B, K)
    outputs[0].d[0] = batch;
    outputs[0].d[1] = k;
    outputs[1].nbDims = 1;  // num_instances (B,)
    outputs[1].d[0] = batch;
    outputs[2].nbDims = 4;  // part_maps (B, K, 4h, w) int32 == (B, K, 4h, 4w) uint8
    outputs[2].d[0] = batch;
    outputs[2].d[1] = k;
    outputs[2].d[2] = exprBuilder.operation(DimensionOperation::kPROD, *inputs[1].d[2], *exprBuilder.constant(4));
    outputs[2].d[3] = inputs[1].d[3];
    return 0;
}

bool UniParserDecodePlugin::supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut,
                                                      int32_t nbInputs, int32_t nbOutputs) noexcept {
    if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || pos < 0 || pos >= kNbInputs + kNbOutputs) return false;
    PluginTensorDesc const& d = inOut[pos].desc;
    if (d.format != TensorFormat::kLINEAR) return false;
    if (pos < kNbInputs) return d.type == DataType::kFLOAT;
    if (pos == kNbInputs) return d.type == DataType::kFLOAT;  // scores
    return d.type == DataType::kINT32;                         // num_instances, part_maps
}

size_t UniParserDecodePlugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                                               DynamicPluginTensorDesc const* /*outputs*/,
                                               int32_t /*nbOutputs*/) const noexcept {
    if (nbInputs != kNbInputs || inputs == nullptr) return 0;
    const int64_t S = dimOf(inputs[0], 3), D = dimOf(inputs[1], 1), h = dimOf(inputs[1], 2), w = dimOf(inputs[1], 3);
    const int64_t C = dimOf(inputs[3], 0);
    if (S < 1 || D < 1 || h < 1 || w < 1 || C < 1) return 0;
    return uniparser_decode_cuda_workspace_size(static_cast<int>(S), static_cast<int>(D), static_cast<int>(h),
                                                static_cast<int>(w), static_cast<int>(C), mParams.max_instances,
                                                static_cast<int>(4 * h), static_cast<int>(4 * w),
                                                static_cast<int>(4 * h), static_cast<int>(4 * w));
}

int32_t UniParserDecodePlugin::onShapeChange(PluginTensorDesc const* in, int32_t nbInputs,
                                             PluginTensorDesc const* out, int32_t nbOutputs) noexcept {
    if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || in == nullptr || out == nullptr) return -1;
    return 0;
}

int32_t UniParserDecodePlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc,
                                       void const* const* inputs, void* const* outputs, void* workspace,
                                       cudaStream_t stream) noexcept {
    (void)outputDesc;
    Dims const& cd = inputDesc[0].dims;
    Dims const& fd = inputDesc[1].dims;
    Dims const& kd = inputDesc[3].dims;
    const int B = static_cast<int>(fd.d[0]);
    const int S = static_cast<int>(cd.d[3]);
    const int D = static_cast<int>(fd.d[1]), h = static_cast<int>(fd.d[2]), w = static_cast<int>(fd.d[3]);
    const int C = static_cast<int>(kd.d[0]);
    const int K = mParams.max_instances;
    const int H = 4 * h, W = 4 * w;
    const size_t ws = uniparser_decode_cuda_workspace_size(S, D, h, w, C, K, H, W, H, W);
    auto const* center = static_cast<float const*>(inputs[0]);
    auto const* ins = static_cast<float const*>(inputs[1]);
    auto const* sem = static_cast<float const*>(inputs[2]);
    auto const* seg = static_cast<float const*>(inputs[3]);
    auto* scores = static_cast<float*>(outputs[0]);
    auto* count = static_cast<int32_t*>(outputs[1]);
    auto* maps = static_cast<unsigned char*>(outputs[2]);
    const size_t feat = static_cast<size_t>(D) * h * w;
    const size_t mapBytes = static_cast<size_t>(K) * H * W;
    for (int b = 0; b < B; ++b) {
        const int rc = uniparser_decode_cuda(center + static_cast<size_t>(b) * S * S, S, ins + b * feat, sem + b * feat,
                                             seg, D, h, w, C, K, mParams.ctr_score, mParams.mask_thr,
                                             mParams.cate_score_thr, H, W, H, W, scores + static_cast<size_t>(b) * K,
                                             nullptr, count + b, nullptr, maps + b * mapBytes, K, workspace, ws,
                                             stream);
        if (rc != UNIPARSER_OK) {
            std::string msg = std::string("uniparser_decode_cuda failed for image ") + std::to_string(b) + ": " +
                              uniparser_decode_cuda_error_string(rc);
            if (rc == UNIPARSER_ERR_CUDA) msg += std::string(": ") + uniparser_decode_cuda_last_error();
            logError(msg);
            return rc;
        }
    }
    return 0;
}

IPluginV3* UniParserDecodePlugin::attachToContext(IPluginResourceContext* /*context*/) noexcept { return clone(); }

PluginFieldCollection const* UniParserDecodePlugin::getFieldsToSerialize() noexcept { return &mFCToSerialize; }

// ------------------------------------------------------------------------------------------------- creator

UniParserDecodePluginCreator::UniParserDecodePluginCreator() {
    mPluginAttributes.clear();
    mPluginAttributes.emplace_back("max_instances", nullptr, PluginFieldType::kINT32, 1);
    mPluginAttributes.emplace_back("ctr_score", nullptr, PluginFieldType::kFLOAT32, 1);
    mPluginAttributes.emplace_back("mask_thr", nullptr, PluginFieldType::kFLOAT32, 1);
    mPluginAttributes.emplace_back("cate_score_thr", nullptr, PluginFieldType::kFLOAT32, 1);
    mFC.nbFields = static_cast<int32_t>(mPluginAttributes.size());
    mFC.fields = mPluginAttributes.data();
}

char const* UniParserDecodePluginCreator::getPluginName() const noexcept { return kPluginName; }
char const* UniParserDecodePluginCreator::getPluginVersion() const noexcept { return kPluginVersion; }
char const* UniParserDecodePluginCreator::getPluginNamespace() const noexcept { return kPluginNamespace; }
PluginFieldCollection const* UniParserDecodePluginCreator::getFieldNames() noexcept { return &mFC; }

IPluginV3* UniParserDecodePluginCreator::createPlugin(char const* /*name*/, PluginFieldCollection const* fc,
                                                      TensorRTPhase /*phase*/) noexcept {
    try {
        DecodeParams p;
        std::string const err = parseFields(fc, &p);
        if (!err.empty()) {
            logError("createPlugin: " + err);
            return nullptr;
        }
        return new UniParserDecodePlugin(p);
    } catch (std::exception const& e) {
        logError(std::string("createPlugin failed: ") + e.what());
    }
    return nullptr;
}

std::string parseFields(PluginFieldCollection const* fc, DecodeParams* out) {
    if (fc == nullptr || (fc->nbFields > 0 && fc->fields == nullptr)) return "no plugin fields";
    DecodeParams p;
    bool seen[4] = {false, false, false, false};
    char const* const names[4] = {"max_instances", "ctr_score", "mask_thr", "cate_score_thr"};
    for (int32_t i = 0; i < fc->nbFields; ++i) {
        PluginField const& f = fc->fields[i];
        if (f.name == nullptr) return "a field without a name";
        int idx = -1;
        for (int j = 0; j < 4; ++j)
            if (std::strcmp(f.name, names[j]) == 0) idx = j;
        if (idx < 0) return std::string("unknown field '") + f.name + "' (fields: max_instances, ctr_score, mask_thr, "
                            "cate_score_thr)";
        if (seen[idx]) return std::string("field '") + f.name + "' given twice";
        if (f.length != 1) return std::string("field '") + f.name + "' must hold exactly 1 value, got " +
                                  std::to_string(f.length);
        seen[idx] = true;
        bool const ok = idx == 0 ? readInt(f, &p.max_instances)
                                 : readFloat(f, idx == 1 ? &p.ctr_score : idx == 2 ? &p.mask_thr : &p.cate_score_thr);
        if (!ok) return std::string("field '") + f.name + "' has an unsupported type";
    }
    for (int j = 0; j < 4; ++j)
        if (!seen[j]) return std::string("missing field '") + names[j] + "'";
    if (p.max_instances < 1 || p.max_instances > UNIPARSER_CUDA_MAX_INSTANCES)
        return "max_instances must be in [1, " + std::to_string(UNIPARSER_CUDA_MAX_INSTANCES) + "], got " +
               std::to_string(p.max_instances);
    if (std::isnan(p.ctr_score) || std::isnan(p.mask_thr) || std::isnan(p.cate_score_thr)) return "a threshold is NaN";
    if (p.mask_thr < 0.0f) return "mask_thr must be >= 0";
    *out = p;
    return std::string();
}

}  // namespace trt
}  // namespace uniparser

// ------------------------------------------------------------------------------------------------- registration

namespace {
uniparser::trt::UniParserDecodePluginCreator& creatorInstance() {
    static uniparser::trt::UniParserDecodePluginCreator creator;
    return creator;
}
}  // namespace

extern "C" {

int uniparser_trt_register_plugin(void) {
    using namespace uniparser::trt;
    IPluginRegistry* registry = getPluginRegistry();
    if (registry == nullptr) return -1;
    if (registry->getCreator(kPluginName, kPluginVersion, kPluginNamespace) != nullptr) return 0;
    return registry->registerCreator(creatorInstance(), kPluginNamespace) ? 0 : -1;
}

void setLoggerFinder(ILoggerFinder* finder) { uniparser::trt::logger().set(finder); }

IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
    static IPluginCreatorInterface* const creators[] = {&creatorInstance()};
    nbCreators = 1;
    return creators;
}

}  // extern "C"
