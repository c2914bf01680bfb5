/*
 * UniParser fused decode: C ABI of the CPU twin (and the error codes shared with the CUDA entry point).
 *
 * Semantics: exactly uniparser_sdk/model/decode.py::decode_single (the specification), for one image.
 *   1. peaks of sigmoid(center_logits) (2x2 then 5x5 test, > ctr_score), score-descending, ties by ascending
 *      flat index, cut to K slots plus a count;
 *   2./3. cosine maps Q_ins (count x P) and Q_cat (C x P), normalisation x / max(|x|, 1e-12);
 *   4. maskness as two (count x P) @ (P x C) products, keep = maskness > cate_score_thr;
 *   5. per-instance finishing over the instance's bounding box only: bilinear x4 (align_corners=False),
 *      crop to (img_h, img_w), then to (ori_h, ori_w): a second bilinear before the argmax when
 *      ori_h*ori_w < img_h*img_w ("shrink"), nearest on the labels otherwise ("enlarge");
 *      label = argmax + 1 (lowest class on ties) where the maximum is > mask_thr, else 0.
 *   mask_thr is used in three places: Q_ins > mask_thr, the maskness numerator P > mask_thr and the final
 *   foreground test; the denominator's 0.1 is fixed. Nearest: torch's float32 rule (uniparser_decode_core.h).
 *
 * All arrays are dense, C-contiguous, row-major:
 *   center_logits  float[S*S]          (the (1,S,S) or (S,S) center logits)
 *   ins, sem       float[D*h*w]        (D,h,w) instance / semantic features at stride 4 of the padded input
 *   seg_kernels    float[C*D]          (C,D) category kernels (C = num_classes - 1, 1..255)
 * outputs (caller-allocated):
 *   scores         float[K]            center score of each slot, 0 beyond the count
 *   grid_index     int[K]              flat S x S cell (gy*S+gx) of each slot, -1 beyond the count
 *   count          int[1]              number of instances (<= K)
 *   keep           uint8[K*C]          1 where category c of slot k survived the maskness test
 *   part_maps      uint8[max_maps*ori_h*ori_w]  label maps of slots < min(count, max_maps); every other byte 0
 *                  (may be NULL when max_maps == 0)
 *
 * Thread-safety: the function keeps no global state; concurrent calls on distinct outputs are fine.
 */
#ifndef UNIPARSER_DECODE_H
#define UNIPARSER_DECODE_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define UNIPARSER_API __declspec(dllexport)
#else
#define UNIPARSER_API __attribute__((visibility("default")))
#endif

/* ABI version of this header: bump when a signature or a semantic changes. */
#define UNIPARSER_DECODE_ABI_VERSION 1

/* Return codes (0 = success, negative = error). */
#define UNIPARSER_OK 0
#define UNIPARSER_ERR_NULL_POINTER (-1)    /* a required pointer is NULL */
#define UNIPARSER_ERR_BAD_DIMS (-2)        /* S, D, h, w, C or K < 1 */
#define UNIPARSER_ERR_BAD_GEOMETRY (-3)    /* img < 1, img_h > 4h, img_w > 4w, or ori < 1 */
#define UNIPARSER_ERR_TOO_MANY_CLASSES (-4) /* C > 255: labels c+1 must fit in uint8 */
#define UNIPARSER_ERR_BAD_MAX_MAPS (-5)    /* max_maps < 0 */
#define UNIPARSER_ERR_BAD_THRESHOLD (-6)   /* a threshold is NaN, or mask_thr < 0 */
#define UNIPARSER_ERR_OUT_OF_MEMORY (-7)   /* host allocation failed */
#define UNIPARSER_ERR_CUDA (-8)            /* a CUDA launch or runtime call failed (CUDA entry point only) */
#define UNIPARSER_ERR_WORKSPACE (-9)       /* workspace NULL or smaller than the size function says */
#define UNIPARSER_ERR_SIZE_OVERFLOW (-10)  /* a buffer size does not fit in 64-bit / int indexing, or a CUDA grid
                                              limit (K > 65535 * 32, max_maps > 65535, ...) */

/* Human-readable text of a return code (static storage; never NULL). */
UNIPARSER_API const char* uniparser_decode_error_string(int code);

/* ABI version the library was built with (compare with UNIPARSER_DECODE_ABI_VERSION). */
UNIPARSER_API int uniparser_decode_abi_version(void);

/* 1 when the CPU twin was compiled with OpenMP, else 0. */
UNIPARSER_API int uniparser_decode_cpu_has_openmp(void);

/* Step 1 alone (cheap: S*S cells). Fills scores[K], grid_index[K], *count. Lets a caller learn the count
 * before allocating part maps. Same return codes as the full decode. */
UNIPARSER_API int uniparser_decode_peaks_cpu(const float* center_logits, int S, int K, float ctr_score,
                                             float* scores, int* grid_index, int* count);

/* The whole decode of one image (see the file comment). */
UNIPARSER_API int uniparser_decode_cpu(const float* center_logits, int S,
                                       const float* ins, const float* sem, const float* seg_kernels,
                                       int D, int h, int w, int C, int K,
                                       float ctr_score, float mask_thr, float cate_score_thr,
                                       int img_h, int img_w, int ori_h, int ori_w,
                                       float* scores, int* grid_index, int* count,
                                       unsigned char* keep, unsigned char* part_maps, int max_maps);

#ifdef __cplusplus
}
#endif

#endif /* UNIPARSER_DECODE_H */
