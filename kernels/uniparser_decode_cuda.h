/*
 * UniParser fused decode, CUDA entry point (C ABI). Same semantics and return codes as the CPU twin
 * (uniparser_decode.h); all data pointers are DEVICE pointers, the work is enqueued on `stream` and the
 * function returns without synchronising (the outputs are ready when the stream reaches that point).
 *
 * The count of instances stays on the device: every kernel reads it there, so there is no host round trip.
 * Slots >= count (and >= max_maps) of part_maps are written with zeros by the same fused kernel.
 *
 * Errors: argument errors are returned before anything is enqueued. A CUDA error already pending in the calling
 * thread (cudaPeekAtLastError) is left in place and UNIPARSER_ERR_CUDA returned without launching. Every launch
 * is checked; the first failing one returns UNIPARSER_ERR_CUDA (its error consumed with cudaGetLastError, its text
 * in uniparser_decode_cuda_last_error()). The count is zeroed on the stream before the first kernel.
 * Limits (UNIPARSER_ERR_SIZE_OVERFLOW): K <= 2,097,120 (65,535 * 32: gridDim.y), max_maps <= 65,535,
 * ori_h <= 524,280, h * w and S * S < 2^31.
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

/* Largest K the CUDA entry point accepts: ceil(K / 32) blocks go in a gridDim.y (<= 65,535). */
#define UNIPARSER_CUDA_MAX_INSTANCES (65535 * 32)

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

/* Step 1 alone on the device (scores[K], grid_index[K], *count: device pointers): lets a caller learn the count
 * (one small copy) before allocating exactly `count` part maps. Workspace: uniparser_decode_cuda_peaks_workspace_size. */
UNIPARSER_API size_t uniparser_decode_cuda_peaks_workspace_size(int S, int K);
UNIPARSER_API int uniparser_decode_cuda_peaks(const float* center_logits, int S, int K, float ctr_score, float* scores,
                                              int* grid_index, int* count, void* workspace, size_t workspace_size,
                                              cudaStream_t stream);

/* After UNIPARSER_ERR_CUDA: which call failed and CUDA's text for it ("k_peaks: too many resources requested for
 * launch (cudaErrorLaunchOutOfResources)"); "" after a successful call. Thread-local storage, never NULL. */
UNIPARSER_API const char* uniparser_decode_cuda_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* UNIPARSER_DECODE_CUDA_H */
