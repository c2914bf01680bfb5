/*
 * UniParser fused decode, CUDA entry point (C ABI). Same semantics and return codes as the CPU twin
 * (uniparser_decode.h); all data pointers are DEVICE pointers, the work is enqueued on `stream` and the
 * function returns without synchronising (the outputs are ready when the stream reaches that point).
 *
 * The count of instances stays on the device: every kernel reads it there, so there is no host round trip.
 * Slots >= count (and >= max_maps) of part_maps are written with zeros by the same fused kernel.
 *
 * Optional outputs: scores, grid_index, count and keep may be NULL (internal copies in the workspace are
 * used). part_maps may be NULL only when max_maps == 0.
 *
 * Workspace: caller-provided device memory of at least uniparser_decode_cuda_workspace_size(...) bytes
 * (256-byte aligned). It may be reused across calls on the same stream.
 */
#ifndef UNIPARSER_DECODE_CUDA_H
#define UNIPARSER_DECODE_CUDA_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#include "uniparser_decode.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of device workspace needed for one image of these sizes (0 when the sizes are invalid). */
UNIPARSER_API size_t uniparser_decode_cuda_workspace_size(int S, int D, int h, int w, int C, int K, int img_h,
                                                          int img_w, int ori_h, int ori_w);

UNIPARSER_API int uniparser_decode_cuda(const float* center_logits, int S,
                                        const float* ins, const float* sem, const float* seg_kernels,
                                        int D, int h, int w, int C, int K,
                                        float ctr_score, float mask_thr, float cate_score_thr,
                                        int img_h, int img_w, int ori_h, int ori_w,
                                        float* scores, int* grid_index, int* count,
                                        unsigned char* keep, unsigned char* part_maps, int max_maps,
                                        void* workspace, size_t workspace_size, cudaStream_t stream);

/* Text of a code (the table of uniparser_decode_core.h, compiled into both libraries so that each stands alone). */
UNIPARSER_API const char* uniparser_decode_cuda_error_string(int code);

#ifdef __cplusplus
}
#endif

#endif /* UNIPARSER_DECODE_CUDA_H */
