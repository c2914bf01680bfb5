/*
 * CPU harness of the TensorRT plugin (kernels/trt_plugin/): drives the real plugin code, compiled against a real
 * TensorRT header set, without a GPU and without libnvinfer.
 *
 * Test-only definitions of the libnvinfer symbols the plugin references at link time (nothing else of libnvinfer
 * is referenced: the TensorRT interfaces are header-only abstract classes):
 *   - getPluginRegistry(): a small in-memory IPluginRegistry (registerCreator / getCreator / deregisterCreator);
 *   - getLogger():         a logger that records the messages (the plugin's fallback when no ILoggerFinder was set).
 * The CUDA kernels (uniparser_decode.cu, nvcc) and the static CUDA runtime are linked for real; enqueue is run
 * only when no CUDA device is visible, where it must fail cleanly with a logged error.
 *
 * Usage (python -m uniparser_sdk.fused.build --trt-check builds and runs it with the exporter's node):
 *   trt_plugin_harness --name UniParserDecode --version 1 --namespace uniparser \
 *       --field max_instances:i:37 --field ctr_score:f:0.25 --field mask_thr:f:0.45 --field cate_score_thr:f:0.275
 * Prints one line per failed check and a final JSON line {"ok": ..., "checks": N, "failures": M, ...}; exit 0 when
 * every check passed.
 */
#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../trt_plugin/uniparser_decode_plugin.h"
#include "../uniparser_decode_cuda.h"

using namespace nvinfer1;

namespace {

int g_checks = 0, g_failures = 0;

void check(bool ok, std::string const& what) {
    ++g_checks;
    if (!ok) {
        ++g_failures;
        std::printf("FAIL: %s\n", what.c_str());
    }
}

// ------------------------------------------------------------------------------------ test-only libnvinfer parts

class RecordingLogger : public ILogger {
public:
    void log(Severity severity, AsciiChar const* msg) noexcept override {
        messages.emplace_back(static_cast<int>(severity), msg ? msg : "");
    }
    bool contains(char const* needle) const {
        for (auto const& m : messages)
            if (m.second.find(needle) != std::string::npos) return true;
        return false;
    }
    std::vector<std::pair<int, std::string>> messages;
};

RecordingLogger g_global_logger;  // what getLogger() returns
RecordingLogger g_finder_logger;  // what the ILoggerFinder hands out

class Finder : public ILoggerFinder {
public:
    ILogger* findLogger() noexcept override { return &g_finder_logger; }
};

class FakeRegistry : public IPluginRegistry {
public:
    bool registerCreator(IPluginCreatorInterface& creator, AsciiChar const* const ns) noexcept override {
        for (auto const& e : mEntries)
            if (e.creator == &creator) return false;  // TensorRT refuses a second registration too
        mEntries.push_back({&creator, ns ? ns : ""});
        mList.push_back(&creator);
        return true;
    }
    IPluginCreatorInterface* const* getAllCreators(int32_t* const n) const noexcept override {
        *n = static_cast<int32_t>(mList.size());
        return mList.data();
    }
    IPluginCreatorInterface* getCreator(AsciiChar const* const name, AsciiChar const* const version,
                                        AsciiChar const* const ns = "") noexcept override {
        for (auto const& e : mEntries) {
            auto* c = static_cast<IPluginCreatorV3One*>(e.creator);
            if (std::strcmp(c->getPluginName(), name) == 0 && std::strcmp(c->getPluginVersion(), version) == 0 &&
                e.ns == (ns ? ns : ""))
                return e.creator;
        }
        return nullptr;
    }
    bool deregisterCreator(IPluginCreatorInterface const& creator) noexcept override {
        for (size_t i = 0; i < mEntries.size(); ++i)
            if (mEntries[i].creator == &creator) {
                mEntries.erase(mEntries.begin() + static_cast<long>(i));
                mList.erase(mList.begin() + static_cast<long>(i));
                return true;
            }
        return false;
    }
    IPluginCreatorInterface* const* getAllCreatorsRecursive(int32_t* const n) noexcept override {
        return getAllCreators(n);
    }
    void setErrorRecorder(IErrorRecorder* const) noexcept override {}
    IErrorRecorder* getErrorRecorder() const noexcept override { return nullptr; }
    bool isParentSearchEnabled() const override { return false; }
    void setParentSearchEnabled(bool const) override {}
    PluginLibraryHandle loadLibrary(AsciiChar const*) noexcept override { return nullptr; }
    void deregisterLibrary(PluginLibraryHandle) noexcept override {}
    IPluginResource* acquirePluginResource(AsciiChar const*, IPluginResource*) noexcept override { return nullptr; }
    int32_t releasePluginResource(AsciiChar const*) noexcept override { return -1; }
#if NV_TENSORRT_MAJOR < 11
    /* IPluginCreator (V2) members, deprecated in 10.x and gone in 11: the registry interface still declares them
     * pure in 10.x, so a registry must define them; the plugin never calls them. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    bool registerCreator(IPluginCreator&, AsciiChar const* const) noexcept override { return false; }
    IPluginCreator* const* getPluginCreatorList(int32_t* const n) const noexcept override {
        *n = 0;
        return nullptr;
    }
    IPluginCreator* getPluginCreator(AsciiChar const* const, AsciiChar const* const,
                                     AsciiChar const* const = "") noexcept override {
        return nullptr;
    }
    bool deregisterCreator(IPluginCreator const&) noexcept override { return false; }
#pragma GCC diagnostic pop
#endif

private:
    struct Entry {
        IPluginCreatorInterface* creator;
        std::string ns;
    };
    std::vector<Entry> mEntries;
    std::vector<IPluginCreatorInterface*> mList;
};

FakeRegistry g_registry;

}  // namespace

extern "C" IPluginRegistry* getPluginRegistry() noexcept { return &g_registry; }
extern "C" ILogger* getLogger() noexcept { return &g_global_logger; }

namespace {

// ------------------------------------------------------------------------------------ a fake IExprBuilder

/* A dimension expression: a constant, or a symbol / an expression over symbols ("h*4"). */
class DimImpl : public apiv::VDimensionExpr {
public:
    DimImpl(bool constant, int64_t value, std::string text) : mConst(constant), mValue(value), mText(std::move(text)) {}
    bool isConstant() const override { return mConst; }
    int64_t getConstantValue() const override { return mConst ? mValue : INT64_MIN; }
    bool isSizeTensor() const override { return false; }
    std::string const& text() const { return mText; }

private:
    bool mConst;
    int64_t mValue;
    std::string mText;
};

class Dim : public IDimensionExpr {
public:
    explicit Dim(DimImpl* impl) { mImpl = impl; }
    std::string const& text() const { return static_cast<DimImpl*>(mImpl)->text(); }
};

std::string textOf(IDimensionExpr const* e) { return static_cast<Dim const*>(e)->text(); }

class ExprImpl : public apiv::VExprBuilder {
public:
    IDimensionExpr const* constant(int64_t value) override {
        return make(true, value, std::to_string(value));
    }
    IDimensionExpr const* operation(DimensionOperation op, IDimensionExpr const& a, IDimensionExpr const& b) override {
        if (a.isConstant() && b.isConstant()) {
            int64_t const x = a.getConstantValue(), y = b.getConstantValue();
            switch (op) {
                case DimensionOperation::kSUM: return constant(x + y);
                case DimensionOperation::kPROD: return constant(x * y);
                case DimensionOperation::kSUB: return constant(x - y);
                default: break;
            }
        }
        char const* sym = op == DimensionOperation::kPROD ? "*" : op == DimensionOperation::kSUM ? "+"
                          : op == DimensionOperation::kSUB ? "-" : "?";
        return make(false, 0, textOf(&a) + sym + textOf(&b));
    }
    IDimensionExpr const* declareSizeTensor(int32_t, IDimensionExpr const&, IDimensionExpr const&) override {
        return nullptr;
    }
    IDimensionExpr const* symbol(char const* name) { return make(false, 0, name); }

private:
    IDimensionExpr const* make(bool c, int64_t v, std::string t) {
        mImpls.emplace_back(new DimImpl(c, v, std::move(t)));
        mDims.emplace_back(new Dim(mImpls.back().get()));
        return mDims.back().get();
    }
    std::vector<std::unique_ptr<DimImpl>> mImpls;
    std::vector<std::unique_ptr<Dim>> mDims;
};

class ExprBuilder : public IExprBuilder {
public:
    explicit ExprBuilder(ExprImpl* impl) { mImpl = impl; }
};

// ------------------------------------------------------------------------------------ helpers

struct Field {
    std::string name;
    char kind;  // 'i' or 'f'
    double value;
};

struct FieldStore {  // owns the data of a PluginFieldCollection
    std::vector<std::unique_ptr<char[]>> data;
    std::vector<PluginField> fields;
    PluginFieldCollection fc{};
    template <typename T>
    void add(char const* name, T v, PluginFieldType type, int32_t length = 1) {
        std::unique_ptr<char[]> buf(new char[sizeof(T) * 2]);
        std::memcpy(buf.get(), &v, sizeof(T));
        std::memcpy(buf.get() + sizeof(T), &v, sizeof(T));
        fields.emplace_back(name, buf.get(), type, length);
        data.push_back(std::move(buf));
        fc.nbFields = static_cast<int32_t>(fields.size());
        fc.fields = fields.data();
    }
};

/* The fields as TensorRT's ONNX parser passes them: each attribute converted to the type the creator declares. */
FieldStore fieldsAsDeclared(std::vector<Field> const& node, PluginFieldCollection const* declared) {
    FieldStore s;
    for (auto const& f : node) {
        PluginFieldType t = PluginFieldType::kUNKNOWN;
        for (int32_t i = 0; i < declared->nbFields; ++i)
            if (f.name == declared->fields[i].name) t = declared->fields[i].type;
        if (t == PluginFieldType::kINT32) s.add(f.name.c_str(), static_cast<int32_t>(f.value), t);
        else if (t == PluginFieldType::kFLOAT32) s.add(f.name.c_str(), static_cast<float>(f.value), t);
        else if (t == PluginFieldType::kINT64) s.add(f.name.c_str(), static_cast<int64_t>(f.value), t);
        else if (t == PluginFieldType::kFLOAT64) s.add(f.name.c_str(), f.value, t);
    }
    return s;
}

char const* typeName(PluginFieldType t) {
    switch (t) {
        case PluginFieldType::kINT32: return "INT32";
        case PluginFieldType::kFLOAT32: return "FLOAT32";
        case PluginFieldType::kINT64: return "INT64";
        case PluginFieldType::kFLOAT64: return "FLOAT64";
        default: return "other";
    }
}

/* read the four values of a collection (as serialised: INT32 + 3 x FLOAT32) */
bool readParams(PluginFieldCollection const* fc, uniparser::trt::DecodeParams* p) {
    return uniparser::trt::parseFields(fc, p).empty();
}

bool sameParams(uniparser::trt::DecodeParams const& a, uniparser::trt::DecodeParams const& b) {
    return a.max_instances == b.max_instances && std::memcmp(&a.ctr_score, &b.ctr_score, 4) == 0 &&
           std::memcmp(&a.mask_thr, &b.mask_thr, 4) == 0 && std::memcmp(&a.cate_score_thr, &b.cate_score_thr, 4) == 0;
}

DynamicPluginTensorDesc desc(std::vector<int64_t> dims, DataType t, TensorFormat f = TensorFormat::kLINEAR,
                             std::vector<int64_t> maxd = {}) {
    DynamicPluginTensorDesc d{};
    d.desc.dims.nbDims = static_cast<int32_t>(dims.size());
    for (size_t i = 0; i < dims.size(); ++i) d.desc.dims.d[i] = dims[i];
    d.desc.type = t;
    d.desc.format = f;
    d.min = d.desc.dims;
    d.opt = d.desc.dims;
    d.max = d.desc.dims;
    for (size_t i = 0; i < maxd.size(); ++i) d.max.d[i] = maxd[i];
    return d;
}

IPluginV3OneBuild* build(IPluginV3* p) {
    return static_cast<IPluginV3OneBuild*>(p->getCapabilityInterface(PluginCapabilityType::kBUILD));
}
IPluginV3OneCore* core(IPluginV3* p) {
    return static_cast<IPluginV3OneCore*>(p->getCapabilityInterface(PluginCapabilityType::kCORE));
}
IPluginV3OneRuntime* runtime(IPluginV3* p) {
    return static_cast<IPluginV3OneRuntime*>(p->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
}

std::string jsonEscape(std::string const& s) {
    std::string o;
    for (char c : s) {
        if (c == '"' || c == '\\') o += '\\';
        if (static_cast<unsigned char>(c) >= 0x20) o += c;
    }
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IONBF, 0);  // FAIL lines survive a crash
    std::string name, version, ns;
    std::vector<Field> node;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string const k = argv[i], v = argv[i + 1];
        if (k == "--name") name = v;
        else if (k == "--version") version = v;
        else if (k == "--namespace") ns = v;
        else if (k == "--field") {
            size_t const a = v.find(':'), b = v.find(':', a + 1);
            if (a == std::string::npos || b == std::string::npos) {
                std::printf("bad --field %s (want name:i|f:value)\n", v.c_str());
                return 2;
            }
            node.push_back({v.substr(0, a), v[a + 1], std::strtod(v.c_str() + b + 1, nullptr)});
        } else {
            std::printf("unknown argument %s\n", k.c_str());
            return 2;
        }
    }
    if (name.empty() || node.empty()) {
        std::printf("usage: %s --name N --version V --namespace NS --field name:i|f:value ...\n", argv[0]);
        return 2;
    }

    // ---- library entry points: getCreators (IPluginRegistry::loadLibrary) and the ctypes registration
    int32_t nb = -1;
    IPluginCreatorInterface* const* creators = getCreators(nb);
    check(nb == 1 && creators != nullptr && creators[0] != nullptr, "getCreators returns one creator");
    if (nb != 1 || creators == nullptr) return 1;
    InterfaceInfo const info = creators[0]->getInterfaceInfo();
    check(info.kind != nullptr && std::strcmp(info.kind, "PLUGIN CREATOR_V3ONE") == 0,
          std::string("creator interface kind is PLUGIN CREATOR_V3ONE, got ") + (info.kind ? info.kind : "null"));
    auto* creator = static_cast<IPluginCreatorV3One*>(creators[0]);
    check(name == creator->getPluginName(), "creator name == the exporter's op_type (" + name + " vs " +
                                                creator->getPluginName() + ")");
    check(version == creator->getPluginVersion(), "creator version == the node's plugin_version");
    check(ns == creator->getPluginNamespace(), "creator namespace == the node's plugin_namespace");

    check(uniparser_trt_register_plugin() == 0, "uniparser_trt_register_plugin() registers");
    check(uniparser_trt_register_plugin() == 0, "uniparser_trt_register_plugin() is idempotent");
    int32_t nreg = 0;
    g_registry.getAllCreators(&nreg);
    check(nreg == 1, "registered exactly once after two calls");
    check(g_registry.getCreator(name.c_str(), version.c_str(), ns.c_str()) == creators[0],
          "registry lookup by (name, version, namespace) finds the creator");

    // ---- field names: exactly the node's attributes (besides plugin_version / plugin_namespace), typed alike
    PluginFieldCollection const* declared = creator->getFieldNames();
    check(declared != nullptr && declared->nbFields == static_cast<int32_t>(node.size()),
          "creator declares as many fields as the node has attributes");
    std::string declared_json;
    for (int32_t i = 0; declared && i < declared->nbFields; ++i) {
        PluginField const& f = declared->fields[i];
        bool found = false;
        for (auto const& nf : node)
            if (nf.name == f.name) {
                found = true;
                bool const typed = (nf.kind == 'i' && f.type == PluginFieldType::kINT32) ||
                                   (nf.kind == 'f' && f.type == PluginFieldType::kFLOAT32);
                check(typed, std::string("field ") + f.name + " type " + typeName(f.type) + " matches the ONNX " +
                                 (nf.kind == 'i' ? "INT" : "FLOAT") + " attribute");
            }
        check(found, std::string("declared field ") + f.name + " is written by the exporter");
        declared_json += std::string(i ? ", " : "") + "\"" + f.name + "\": \"" + typeName(f.type) + "\"";
    }

    // ---- createPlugin with the node's fields (as the ONNX parser passes them) and as 64-bit types
    FieldStore parsed = fieldsAsDeclared(node, declared);
    IPluginV3* plugin = creator->createPlugin("decode", &parsed.fc, TensorRTPhase::kBUILD);
    check(plugin != nullptr, "createPlugin accepts the exporter's fields");
    if (plugin == nullptr) {
        std::printf("{\"ok\": false, \"checks\": %d, \"failures\": %d}\n", g_checks, g_failures + 1);
        return 1;
    }
    uniparser::trt::DecodeParams want;
    {
        FieldStore wide;
        for (auto const& f : node) {
            if (f.kind == 'i') wide.add(f.name.c_str(), static_cast<int64_t>(f.value), PluginFieldType::kINT64);
            else wide.add(f.name.c_str(), f.value, PluginFieldType::kFLOAT64);
        }
        IPluginV3* p64 = creator->createPlugin("decode64", &wide.fc, TensorRTPhase::kBUILD);
        check(p64 != nullptr, "createPlugin accepts INT64 / FLOAT64 fields");
        uniparser::trt::DecodeParams a, b;
        check(readParams(runtime(plugin)->getFieldsToSerialize(), &a), "the plugin serialises valid fields");
        check(p64 != nullptr && readParams(runtime(p64)->getFieldsToSerialize(), &b) && sameParams(a, b),
              "64-bit fields give the same parameters");
        delete p64;
        want = a;
        for (auto const& f : node) {
            if (f.name == "max_instances") check(a.max_instances == static_cast<int32_t>(f.value), "max_instances kept");
            if (f.name == "ctr_score") check(a.ctr_score == static_cast<float>(f.value), "ctr_score kept");
            if (f.name == "mask_thr") check(a.mask_thr == static_cast<float>(f.value), "mask_thr kept");
            if (f.name == "cate_score_thr") check(a.cate_score_thr == static_cast<float>(f.value), "cate_score_thr kept");
        }
    }

    // ---- field validation: every bad collection is refused with a logged reason
    struct Bad {
        char const* what;
        char const* expect;  // substring of the logged message
        FieldStore fs;
    };
    std::vector<Bad> bad;
    auto base = [&](FieldStore& s, char const* skip) {
        for (auto const& f : node) {
            if (f.name == skip) continue;
            if (f.kind == 'i') s.add(f.name.c_str(), static_cast<int32_t>(f.value), PluginFieldType::kINT32);
            else s.add(f.name.c_str(), static_cast<float>(f.value), PluginFieldType::kFLOAT32);
        }
    };
    {
        Bad b{"missing mask_thr", "missing field 'mask_thr'", {}};
        base(b.fs, "mask_thr");
        bad.push_back(std::move(b));
    }
    {
        Bad b{"unknown field", "unknown field 'score_thr'", {}};
        base(b.fs, "");
        b.fs.add("score_thr", 0.5f, PluginFieldType::kFLOAT32);
        bad.push_back(std::move(b));
    }
    {
        Bad b{"duplicate field", "given twice", {}};
        base(b.fs, "");
        b.fs.add("ctr_score", 0.5f, PluginFieldType::kFLOAT32);
        bad.push_back(std::move(b));
    }
    {
        Bad b{"max_instances 0", "max_instances must be in", {}};
        base(b.fs, "max_instances");
        b.fs.add("max_instances", int32_t{0}, PluginFieldType::kINT32);
        bad.push_back(std::move(b));
    }
    {
        Bad b{"max_instances above the CUDA grid limit", "max_instances must be in", {}};
        base(b.fs, "max_instances");
        b.fs.add("max_instances", int32_t{UNIPARSER_CUDA_MAX_INSTANCES + 1}, PluginFieldType::kINT32);
        bad.push_back(std::move(b));
    }
    {
        Bad b{"NaN threshold", "NaN", {}};
        base(b.fs, "cate_score_thr");
        b.fs.add("cate_score_thr", std::nanf(""), PluginFieldType::kFLOAT32);
        bad.push_back(std::move(b));
    }
    {
        Bad b{"negative mask_thr", "mask_thr must be >= 0", {}};
        base(b.fs, "mask_thr");
        b.fs.add("mask_thr", -0.25f, PluginFieldType::kFLOAT32);
        bad.push_back(std::move(b));
    }
    {
        Bad b{"string-typed field", "unsupported type", {}};
        base(b.fs, "ctr_score");
        b.fs.add("ctr_score", '1', PluginFieldType::kCHAR);
        bad.push_back(std::move(b));
    }
    {
        Bad b{"two values in a field", "exactly 1 value", {}};
        base(b.fs, "mask_thr");
        b.fs.add("mask_thr", 0.5f, PluginFieldType::kFLOAT32, 2);
        bad.push_back(std::move(b));
    }
    for (auto& b : bad) {
        g_global_logger.messages.clear();
        IPluginV3* p = creator->createPlugin("bad", &b.fs.fc, TensorRTPhase::kBUILD);
        check(p == nullptr, std::string("createPlugin refuses: ") + b.what);
        check(g_global_logger.contains(b.expect) && g_global_logger.contains("uniparser"),
              std::string("the refusal is logged through getLogger() (no finder set): ") + b.what);
        delete p;
    }
    check(creator->createPlugin("null", nullptr, TensorRTPhase::kBUILD) == nullptr, "createPlugin(nullptr) refused");

    // ---- identity, clone, serialisation round trip
    check(name == core(plugin)->getPluginName() && version == core(plugin)->getPluginVersion() &&
              ns == core(plugin)->getPluginNamespace(),
          "plugin core reports the creator's name / version / namespace");
    IPluginV3* copy = plugin->clone();
    check(copy != nullptr && copy != plugin, "clone returns a new object");
    PluginFieldCollection const* fa = runtime(plugin)->getFieldsToSerialize();
    PluginFieldCollection const* fb = runtime(copy)->getFieldsToSerialize();
    check(fa->nbFields == 4 && fb->nbFields == 4, "four fields serialised");
    bool own = true;
    for (int32_t i = 0; i < fa->nbFields && i < fb->nbFields; ++i) own = own && fa->fields[i].data != fb->fields[i].data;
    check(own, "the clone's serialised fields point at its own storage");
    delete plugin;  // the clone must not depend on the original
    plugin = nullptr;
    uniparser::trt::DecodeParams pc;
    check(readParams(runtime(copy)->getFieldsToSerialize(), &pc) && sameParams(pc, want),
          "the clone keeps the parameters after the original is destroyed");
    // serialise as TensorRT does: copy the field bytes out, then recreate in the RUNTIME phase
    FieldStore ser;
    {
        PluginFieldCollection const* f = runtime(copy)->getFieldsToSerialize();
        for (int32_t i = 0; i < f->nbFields; ++i) {
            if (f->fields[i].type == PluginFieldType::kINT32)
                ser.add(f->fields[i].name, *static_cast<int32_t const*>(f->fields[i].data), f->fields[i].type);
            else if (f->fields[i].type == PluginFieldType::kFLOAT32)
                ser.add(f->fields[i].name, *static_cast<float const*>(f->fields[i].data), f->fields[i].type);
            else check(false, std::string("serialised field ") + f->fields[i].name + " has type INT32 or FLOAT32");
        }
    }
    IPluginV3* restored = creator->createPlugin("restored", &ser.fc, TensorRTPhase::kRUNTIME);
    uniparser::trt::DecodeParams pr;
    check(restored != nullptr && readParams(runtime(restored)->getFieldsToSerialize(), &pr) && sameParams(pr, want),
          "serialisation round trip (getFieldsToSerialize -> createPlugin(kRUNTIME)) keeps the parameters");
    IPluginV3* attached = restored ? runtime(restored)->attachToContext(nullptr) : nullptr;
    check(attached != nullptr && attached != restored, "attachToContext returns a new plugin");
    delete attached;

    // ---- shapes and types through the fake IExprBuilder
    IPluginV3* p = restored;
    IPluginV3OneBuild* b = build(p);
    check(b->getNbOutputs() == 3, "three outputs");
    ExprImpl impl;
    ExprBuilder eb(&impl);
    DimsExprs in[4];
    in[0].nbDims = 4;
    in[0].d[0] = impl.symbol("B");
    in[0].d[1] = impl.constant(1);
    in[0].d[2] = impl.constant(40);
    in[0].d[3] = impl.constant(40);
    for (int t = 1; t <= 2; ++t) {
        in[t].nbDims = 4;
        in[t].d[0] = impl.symbol("B");
        in[t].d[1] = impl.constant(128);
        in[t].d[2] = impl.symbol("h");
        in[t].d[3] = impl.symbol("w");
    }
    in[3].nbDims = 2;
    in[3].d[0] = impl.constant(58);
    in[3].d[1] = impl.constant(128);
    DimsExprs out[3];
    check(b->getOutputShapes(in, 4, nullptr, 0, out, 3, eb) == 0, "getOutputShapes succeeds");
    auto shape = [](DimsExprs const& d) {
        std::string s = "(";
        for (int32_t i = 0; i < d.nbDims; ++i) s += (i ? ", " : "") + textOf(d.d[i]);
        return s + ")";
    };
    std::string const K = std::to_string(want.max_instances);
    check(shape(out[0]) == "(B, " + K + ")", "scores shape (B, K): got " + shape(out[0]));
    check(shape(out[1]) == "(B)", "num_instances shape (B,): got " + shape(out[1]));
    check(shape(out[2]) == "(B, " + K + ", h*4, w)", "part_maps shape (B, K, 4h, w): got " + shape(out[2]));
    check(b->getOutputShapes(in, 3, nullptr, 0, out, 3, eb) != 0, "getOutputShapes refuses 3 inputs");
    DataType types[3];
    DataType const itypes[4] = {DataType::kFLOAT, DataType::kFLOAT, DataType::kFLOAT, DataType::kFLOAT};
    check(b->getOutputDataTypes(types, 3, itypes, 4) == 0 && types[0] == DataType::kFLOAT &&
              types[1] == DataType::kINT32 && types[2] == DataType::kINT32,
          "output types FLOAT, INT32, INT32 (packed uint8 part maps)");

    // ---- supportsFormatCombination
    std::vector<DynamicPluginTensorDesc> io = {
        desc({1, 1, 40, 40}, DataType::kFLOAT), desc({1, 128, 20, 30}, DataType::kFLOAT),
        desc({1, 128, 20, 30}, DataType::kFLOAT), desc({58, 128}, DataType::kFLOAT),
        desc({1, want.max_instances}, DataType::kFLOAT), desc({1}, DataType::kINT32),
        desc({1, want.max_instances, 80, 30}, DataType::kINT32)};
    for (int pos = 0; pos < 7; ++pos)
        check(b->supportsFormatCombination(pos, io.data(), 4, 3), "format combination accepted at " +
                                                                       std::to_string(pos));
    for (int pos = 0; pos < 7; ++pos) {
        auto alt = io;
        alt[pos].desc.type = pos == 5 || pos == 6 ? DataType::kFLOAT : DataType::kHALF;
        check(!b->supportsFormatCombination(pos, alt.data(), 4, 3), "wrong type refused at " + std::to_string(pos));
        alt = io;
        alt[pos].desc.format = TensorFormat::kCHW32;
        check(!b->supportsFormatCombination(pos, alt.data(), 4, 3), "non-linear format refused at " +
                                                                        std::to_string(pos));
        alt = io;
        alt[pos].desc.type = DataType::kUINT8;
        check(!b->supportsFormatCombination(pos, alt.data(), 4, 3), "UINT8 refused at " + std::to_string(pos));
    }
    check(!b->supportsFormatCombination(7, io.data(), 4, 3), "position out of range refused");

    // ---- configurePlugin / getWorkspaceSize
    check(b->configurePlugin(io.data(), 4, io.data() + 4, 3) == 0, "configurePlugin accepts the contract's shapes");
    {
        auto alt = io;
        alt[2] = desc({1, 128, 20, 31}, DataType::kFLOAT);
        g_global_logger.messages.clear();
        check(b->configurePlugin(alt.data(), 4, alt.data() + 4, 3) != 0 &&
                  g_global_logger.contains("same shape"),
              "configurePlugin refuses ins/sem of different shapes, with a logged reason");
        alt = io;
        alt[3] = desc({256, 128}, DataType::kFLOAT);
        check(b->configurePlugin(alt.data(), 4, alt.data() + 4, 3) != 0, "configurePlugin refuses C = 256");
        alt = io;
        alt[0] = desc({1, 1, 40, 39}, DataType::kFLOAT);
        check(b->configurePlugin(alt.data(), 4, alt.data() + 4, 3) != 0, "configurePlugin refuses a non-square grid");
    }
    {
        auto prof = io;
        prof[1] = desc({-1, 128, -1, -1}, DataType::kFLOAT, TensorFormat::kLINEAR, {2, 128, 40, 60});
        prof[2] = prof[1];
        size_t const ws = b->getWorkspaceSize(prof.data(), 4, prof.data() + 4, 3);
        size_t const expect = uniparser_decode_cuda_workspace_size(40, 128, 40, 60, 58, want.max_instances, 160, 240,
                                                                   160, 240);
        check(ws > 0 && ws == expect, "getWorkspaceSize = the CUDA workspace of the profile's maximum shapes");
    }

    // ---- enqueue without a GPU: a clean error code and a logged CUDA message (fallback logger, then the finder's)
    int ndev = 0;
    cudaError_t const derr = cudaGetDeviceCount(&ndev);
    bool enqueue_checked = false;
    if (derr != cudaSuccess || ndev == 0) {
        (void)cudaGetLastError();
        PluginTensorDesc ind[4], outd[3];
        for (int i = 0; i < 4; ++i) ind[i] = io[static_cast<size_t>(i)].desc;
        for (int i = 0; i < 3; ++i) outd[i] = io[static_cast<size_t>(4 + i)].desc;
        std::vector<float> dummy(64);
        void const* inputs[4] = {dummy.data(), dummy.data(), dummy.data(), dummy.data()};
        void* outputs[3] = {dummy.data(), dummy.data(), dummy.data()};
        std::vector<char> workspace(1 << 20);
        check(runtime(p)->onShapeChange(ind, 4, outd, 3) == 0, "onShapeChange accepts the shapes");
        g_global_logger.messages.clear();
        int32_t const rc = runtime(p)->enqueue(ind, outd, inputs, outputs, workspace.data(), nullptr);
        check(rc != 0, "enqueue without a usable CUDA device fails");
        check(g_global_logger.contains("uniparser_decode_cuda failed") && g_global_logger.contains("cuda"),
              "the failure is logged through getLogger() with CUDA's text");
        setLoggerFinder(nullptr);  // ignored
        static Finder finder;  // the plugin keeps the pointer
        setLoggerFinder(&finder);
        g_finder_logger.messages.clear();
        (void)runtime(p)->enqueue(ind, outd, inputs, outputs, workspace.data(), nullptr);
        check(g_finder_logger.contains("uniparser_decode_cuda failed"),
              "after setLoggerFinder the errors go to the finder's logger");
        enqueue_checked = true;
    }
    delete restored;
    delete copy;

    // ---- the CUDA entry point's host-side checks (run before anything touches a device)
    {
        std::vector<float> buf(64);
        std::vector<unsigned char> maps(64);
        float* f = buf.data();
        auto call = [&](int K, int max_maps, void* ws, size_t wsz) {
            return uniparser_decode_cuda(f, 2, f, f, f, 2, 2, 2, 2, K, 0.2f, 0.5f, 0.3f, 8, 8, 8, 8, nullptr, nullptr,
                                         nullptr, nullptr, maps.data(), max_maps, ws, wsz, nullptr);
        };
        check(call(UNIPARSER_CUDA_MAX_INSTANCES + 1, 1, nullptr, 0) == UNIPARSER_ERR_SIZE_OVERFLOW,
              "K above 65,535 x 32 (k_cosine's gridDim.y) is refused with UNIPARSER_ERR_SIZE_OVERFLOW");
        check(call(UNIPARSER_CUDA_MAX_INSTANCES, 1, nullptr, 0) == UNIPARSER_ERR_WORKSPACE,
              "K = 65,535 x 32 passes the argument checks (then needs its workspace)");
        check(call(4, 65536, nullptr, 0) == UNIPARSER_ERR_SIZE_OVERFLOW, "max_maps above gridDim.z (65,535) refused");
        check(uniparser_decode_cuda(f, 2, f, f, f, 2, 2, 2, 2, 4, 0.2f, -0.1f, 0.3f, 8, 8, 8, 8, nullptr, nullptr,
                                    nullptr, nullptr, maps.data(), 1, nullptr, 0, nullptr) == UNIPARSER_ERR_BAD_THRESHOLD,
              "mask_thr < 0 refused");
        if (derr != cudaSuccess || ndev == 0) {
            std::vector<char> ws(uniparser_decode_cuda_workspace_size(2, 2, 2, 2, 2, 4, 8, 8, 8, 8));
            check(call(4, 1, ws.data(), ws.size()) == UNIPARSER_ERR_CUDA && std::strlen(uniparser_decode_cuda_last_error()) > 0,
                  "without a usable device: UNIPARSER_ERR_CUDA and a text in uniparser_decode_cuda_last_error()");
            std::printf("no-device text: %s\n", uniparser_decode_cuda_last_error());
        }
    }

    std::printf("{\"ok\": %s, \"checks\": %d, \"failures\": %d, \"tensorrt_major\": %d, \"declared\": {%s}, "
                "\"enqueue_checked\": %s, \"plugin\": \"%s\"}\n",
                g_failures == 0 ? "true" : "false", g_checks, g_failures, static_cast<int>(NV_TENSORRT_MAJOR),
                declared_json.c_str(), enqueue_checked ? "true" : "false",
                jsonEscape(ns + "::" + name + " v" + version).c_str());
    return g_failures == 0 ? 0 : 1;
}
