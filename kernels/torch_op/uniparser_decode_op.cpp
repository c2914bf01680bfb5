/*
 * PyTorch binding of the CUDA fused decode (kernels/uniparser_decode.cu), built with
 * torch.utils.cpp_extension.load by uniparser_sdk/fused/torch_op.py on a machine with CUDA.
 *
 * decode(center_logits, ins, sem, seg_kernels, img_h, img_w, ori_h, ori_w, ctr_score, mask_thr, cate_score_thr,
 *        max_instances, max_maps) -> [scores (K,) f32, grid_index (K,) i32, count (1,) i32, keep (K, C) u8,
 *                                     part_maps (max_maps, ori_h, ori_w) u8]
 * All tensors on the same CUDA device; runs on the current stream; no host synchronisation.
 */
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/extension.h>

#include <vector>

#include "uniparser_decode_cuda.h"

namespace {

torch::Tensor as_f32(const torch::Tensor& t, const char* name, const torch::Device& dev) {
    TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
    TORCH_CHECK(t.device() == dev, name, " must be on ", dev, ", got ", t.device());
    return t.to(torch::kFloat32).contiguous();
}

std::vector<torch::Tensor> decode(torch::Tensor center_logits, torch::Tensor ins, torch::Tensor sem,
                                  torch::Tensor seg_kernels, int64_t img_h, int64_t img_w, int64_t ori_h,
                                  int64_t ori_w, double ctr_score, double mask_thr, double cate_score_thr,
                                  int64_t max_instances, int64_t max_maps) {
    const torch::Device dev = ins.device();
    TORCH_CHECK(ins.dim() == 3 && sem.dim() == 3, "ins and sem must be (D, h, w)");
    TORCH_CHECK(ins.sizes() == sem.sizes(), "ins and sem must have the same shape");
    TORCH_CHECK(seg_kernels.dim() == 2 && seg_kernels.size(1) == ins.size(0), "seg_kernels must be (C, D)");
    const int64_t S = center_logits.size(-1);
    TORCH_CHECK(center_logits.numel() == S * S, "center_logits must be (S, S), (1, S, S) or (1, 1, S, S)");
    const c10::cuda::CUDAGuard guard(dev);
    auto c = as_f32(center_logits, "center_logits", dev);
    auto a = as_f32(ins, "ins", dev);
    auto b = as_f32(sem, "sem", dev);
    auto k = as_f32(seg_kernels, "seg_kernels", dev);
    const int D = (int)a.size(0), h = (int)a.size(1), w = (int)a.size(2), C = (int)k.size(0);
    const int K = (int)max_instances;
    TORCH_CHECK(K >= 1, "max_instances must be >= 1");
    TORCH_CHECK(max_maps >= 0, "max_maps must be >= 0");
    auto u8 = a.options().dtype(torch::kUInt8);
    auto i32 = a.options().dtype(torch::kInt32);
    auto scores = torch::empty({K}, a.options());
    auto grid = torch::empty({K}, i32);
    auto count = torch::empty({1}, i32);
    auto keep = torch::empty({K, C}, u8);
    auto maps = torch::empty({max_maps, ori_h, ori_w}, u8);
    const size_t ws = uniparser_decode_cuda_workspace_size((int)S, D, h, w, C, K, (int)img_h, (int)img_w, (int)ori_h,
                                                           (int)ori_w);
    TORCH_CHECK(ws > 0, "invalid sizes for the decode workspace");
    auto workspace = torch::empty({(int64_t)ws}, u8);
    const int rc = uniparser_decode_cuda(
        c.data_ptr<float>(), (int)S, a.data_ptr<float>(), b.data_ptr<float>(), k.data_ptr<float>(), D, h, w, C, K,
        (float)ctr_score, (float)mask_thr, (float)cate_score_thr, (int)img_h, (int)img_w, (int)ori_h, (int)ori_w,
        scores.data_ptr<float>(), grid.data_ptr<int>(), count.data_ptr<int>(), keep.data_ptr<uint8_t>(),
        max_maps > 0 ? maps.data_ptr<uint8_t>() : nullptr, (int)max_maps, workspace.data_ptr(), ws,
        c10::cuda::getCurrentCUDAStream(dev.index()).stream());
    TORCH_CHECK(rc == UNIPARSER_OK, "uniparser_decode_cuda failed (", rc, "): ", uniparser_decode_cuda_error_string(rc), " ",
                uniparser_decode_cuda_last_error());
    return {scores, grid, count, keep, maps};
}

/* Step 1 only: [scores (K,) f32, grid_index (K,) i32, count (1,) i32] on the device (to size the maps). */
std::vector<torch::Tensor> peaks(torch::Tensor center_logits, double ctr_score, int64_t max_instances) {
    const torch::Device dev = center_logits.device();
    const int64_t S = center_logits.size(-1);
    TORCH_CHECK(center_logits.numel() == S * S, "center_logits must be (S, S), (1, S, S) or (1, 1, S, S)");
    const c10::cuda::CUDAGuard guard(dev);
    auto c = as_f32(center_logits, "center_logits", dev);
    const int K = (int)max_instances;
    TORCH_CHECK(K >= 1, "max_instances must be >= 1");
    auto scores = torch::empty({K}, c.options());
    auto grid = torch::empty({K}, c.options().dtype(torch::kInt32));
    auto count = torch::empty({1}, c.options().dtype(torch::kInt32));
    const size_t ws = uniparser_decode_cuda_peaks_workspace_size((int)S, K);
    TORCH_CHECK(ws > 0, "invalid sizes for the peaks workspace");
    auto workspace = torch::empty({(int64_t)ws}, c.options().dtype(torch::kUInt8));
    const int rc = uniparser_decode_cuda_peaks(c.data_ptr<float>(), (int)S, K, (float)ctr_score, scores.data_ptr<float>(),
                                               grid.data_ptr<int>(), count.data_ptr<int>(), workspace.data_ptr(), ws,
                                               c10::cuda::getCurrentCUDAStream(dev.index()).stream());
    TORCH_CHECK(rc == UNIPARSER_OK, "uniparser_decode_cuda_peaks failed (", rc, "): ",
                uniparser_decode_cuda_error_string(rc), " ", uniparser_decode_cuda_last_error());
    return {scores, grid, count};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("decode", &decode, "UniParser fused decode of one image on CUDA (see uniparser_decode_cuda.h)");
    m.def("peaks", &peaks, "UniParser decode step 1 on CUDA: scores, grid_index, count (device tensors)");
    m.def("workspace_size", [](int S, int D, int h, int w, int C, int K, int ih, int iw, int oh, int ow) {
        return uniparser_decode_cuda_workspace_size(S, D, h, w, C, K, ih, iw, oh, ow);
    });
}
