/*
 * Per-element building blocks of the UniParser fused decode, shared by the CPU twin
 * (uniparser_decode_cpu.cpp, plain g++) and the CUDA implementation (uniparser_decode.cu, nvcc).
 *
 * Every function here mirrors one rule of the specification, uniparser_sdk/model/decode.py:
 *   - sigmoid / survives_2x2 / is_local_max_5x5 : step 1 (peaks);
 *   - grid_to_feature                           : step 2 (integer grid -> feature cell);
 *   - bilinear_src / nearest_src                : torch's align_corners=False bilinear and 'nearest' rules;
 *   - row_taps                                  : one row (or column) of the separable interpolation matrix of
 *                                                 step 5, as <= 4 consecutive feature taps with float weights,
 *                                                 computed in double like the reference and cast to float;
 *   - better / part_label                       : argmax with the lowest class winning ties, foreground test
 *                                                 best > mask_thr (the run-time mask_thr, DESIGN §3 step 5).
 * and, host only, what both C entry points share: check_decode_args (the argument checks common to
 * uniparser_decode_cpu and uniparser_decode_cuda) and error_string (the text of a return code).
 */
#ifndef UNIPARSER_DECODE_CORE_H
#define UNIPARSER_DECODE_CORE_H

#include <math.h>
#include <stdint.h>

#include "uniparser_decode.h" /* return codes */

#if defined(__CUDACC__)
#define UP_HD __host__ __device__ __forceinline__
#else
#define UP_HD static inline
#endif

namespace uniparser {
namespace core {

/* Constants of the specification (DESIGN §3, uniparser_sdk/contract/constants.py). The run-time mask_thr is used
 * in THREE places: the instance mask (Q_ins > mask_thr), the maskness numerator (P > mask_thr) and the final
 * foreground test (best > mask_thr); only the denominator's 0.1 is fixed. */
#define UP_NORM_EPS 1e-12f      /* x / max(|x|, NORM_EPS) */
#define UP_MASKNESS_EPS 1e-5f   /* num / (den + MASKNESS_EPS) */
#define UP_COUNT_THR 0.1f       /* maskness denominator: count(P > COUNT_THR), fixed */
#define UP_MAX_TAPS 4           /* composed interpolation rows touch at most 3 feature cells; 4 for safety */

UP_HD float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Step 1a: s[y,x] equals the max of itself and its upper, left and upper-left neighbours
 * (max-pool 2, stride 1, pad 1, cropped to S x S). */
UP_HD bool survives_2x2(const float* s, int S, int y, int x) {
    const float v = s[y * S + x];
    float m = v;
    if (y > 0) m = fmaxf(m, s[(y - 1) * S + x]);
    if (x > 0) m = fmaxf(m, s[y * S + x - 1]);
    if (y > 0 && x > 0) m = fmaxf(m, s[(y - 1) * S + x - 1]);
    return m == v;
}

/* Step 1b: h[y,x] equals the max of the 5x5 window around it (max-pool 5, stride 1, pad 2). */
UP_HD bool is_local_max_5x5(const float* hv, int S, int y, int x) {
    const float v = hv[y * S + x];
    float m = v;
    const int y0 = y - 2 < 0 ? 0 : y - 2, y1 = y + 2 > S - 1 ? S - 1 : y + 2;
    const int x0 = x - 2 < 0 ? 0 : x - 2, x1 = x + 2 > S - 1 ? S - 1 : x + 2;
    for (int yy = y0; yy <= y1; ++yy)
        for (int xx = x0; xx <= x1; ++xx) m = fmaxf(m, hv[yy * S + xx]);
    return m == v;
}

/* Step 2: flat grid index gy*S+gx -> flat feature index ((gy*h)//S)*w + (gx*w)//S (integer arithmetic).
 * The official int((g / S) * h) runs on CUDA as float32 (g * float32(1/S)) * h, which equals this integer rule
 * (tests/test_kernels.py checks it for S in {24, 40}, h <= 2048, through a host build of this header). */
UP_HD int64_t grid_to_feature(int64_t g, int S, int h, int w) {
    const int64_t gy = g / S, gx = g % S;
    return (gy * h) / S * w + (gx * w) / S;
}

/* torch's 1-D bilinear rule with align_corners=False (decode.py::bilinear_matrix):
 * src = max((dst + 0.5) * (in / out) - 0.5, 0); i0 = min(floor(src), in-1); i1 = min(i0+1, in-1);
 * weights (1 - l1) at i0 and l1 at i1 with l1 = src - i0, all in double. */
UP_HD void bilinear_src(int dst, int out_size, int in_size, int* i0, int* i1, double* l1) {
    const double scale = (double)in_size / (double)out_size;
    double src = ((double)dst + 0.5) * scale - 0.5;
    if (src < 0.0) src = 0.0;
    int i = (int)floor(src);
    if (i > in_size - 1) i = in_size - 1;
    *i0 = i;
    *i1 = i + 1 > in_size - 1 ? in_size - 1 : i + 1;
    *l1 = src - (double)i;
}

/* torch 'nearest' (F.interpolate(mode="nearest", size=...), CPU and CUDA): scale = float32(in) / float32(out),
 * src = min(floor(float32(dst) * scale), in - 1), all in FLOAT32. Double gives other rows for real photo sizes
 * (750 -> 1080 rows: output row 180 reads 124 in float32, 125 in double). A single rounded multiply: no FMA can be
 * contracted here, so host and device agree. (float)dst is exact for dst < 2^24. */
UP_HD int nearest_src(int dst, int out_size, int in_size) {
    const float scale = (float)in_size / (float)out_size;
    const float src = (float)dst * scale;
    int i = (int)floorf(src);
    return i > in_size - 1 ? in_size - 1 : i;
}

/* One row of an interpolation matrix from the feature axis (length feat) to an output axis: <= UP_MAX_TAPS
 * consecutive feature cells start..start+n-1 with float weights (zero weights possible: a tap with weight 0
 * contributes nothing and does not "reach" the cell). */
struct Taps {
    int start;
    int n;
    float w[UP_MAX_TAPS];
};

/* Accumulate weight v onto feature index f of a double tap row (base = first index). */
UP_HD void taps_add(double* acc, int* base, int* n, int f, double v) {
    if (*n == 0) {
        *base = f;
        acc[0] = v;
        *n = 1;
        return;
    }
    int k = f - *base;
    if (k < 0) { /* never happens for monotone rows; keep it correct anyway */
        const int shift = -k;
        for (int j = *n - 1; j >= 0; --j)
            if (j + shift < UP_MAX_TAPS) acc[j + shift] = acc[j];
        for (int j = 0; j < shift && j < UP_MAX_TAPS; ++j) acc[j] = 0.0;
        *base = f;
        *n = *n + shift > UP_MAX_TAPS ? UP_MAX_TAPS : *n + shift;
        k = 0;
    }
    if (k >= UP_MAX_TAPS) return; /* cannot happen for bilinear rows (<= 3 cells) */
    while (*n <= k) acc[(*n)++] = 0.0;
    acc[k] += v;
}

/* Row `dst` of the operator that maps the feature axis (length feat) to the output axis:
 *   shrink == false: U = bilinear(4*feat <- feat)[:img]            (dst in [0, img))
 *   shrink == true : B @ U with B = bilinear(out <- img)            (dst in [0, out))
 * Double arithmetic like decode.py (index_put_ accumulation, then a float64 product), cast to float. */
UP_HD Taps row_taps(int dst, int feat, int img, int out, bool shrink) {
    double acc[UP_MAX_TAPS] = {0.0, 0.0, 0.0, 0.0};
    int base = 0, n = 0;
    if (!shrink) {
        int i0, i1;
        double l1;
        bilinear_src(dst, 4 * feat, feat, &i0, &i1, &l1);
        taps_add(acc, &base, &n, i0, 1.0 - l1);
        taps_add(acc, &base, &n, i1, l1);
    } else {
        int a0, a1;
        double m1;
        bilinear_src(dst, out, img, &a0, &a1, &m1);
        /* B row: entries at a0 (1 - m1) and a1 (m1), accumulated when a0 == a1 */
        int ks[2];
        double bw[2];
        int nk = 0;
        ks[nk] = a0;
        bw[nk++] = 1.0 - m1;
        if (a1 == a0) bw[0] += m1;
        else { ks[nk] = a1; bw[nk++] = m1; }
        /* M[f] = sum_k B[k] * U[k, f] over the distinct k, ascending */
        double part[2][UP_MAX_TAPS];
        int pbase[2], pn[2];
        for (int j = 0; j < nk; ++j) {
            int i0, i1;
            double l1;
            pn[j] = 0;
            pbase[j] = 0;
            for (int t = 0; t < UP_MAX_TAPS; ++t) part[j][t] = 0.0;
            bilinear_src(ks[j], 4 * feat, feat, &i0, &i1, &l1);
            taps_add(part[j], &pbase[j], &pn[j], i0, 1.0 - l1);
            taps_add(part[j], &pbase[j], &pn[j], i1, l1);
        }
        int lo = pbase[0], hi = pbase[0] + pn[0] - 1;
        for (int j = 1; j < nk; ++j) {
            if (pbase[j] < lo) lo = pbase[j];
            if (pbase[j] + pn[j] - 1 > hi) hi = pbase[j] + pn[j] - 1;
        }
        for (int f = lo; f <= hi; ++f) {
            double s = 0.0;
            for (int j = 0; j < nk; ++j) {
                const int t = f - pbase[j];
                if (t >= 0 && t < pn[j]) s += bw[j] * part[j][t];
            }
            taps_add(acc, &base, &n, f, s);
        }
    }
    Taps r;
    r.start = base;
    r.n = n;
    for (int t = 0; t < UP_MAX_TAPS; ++t) r.w[t] = t < n ? (float)acc[t] : 0.0f;
    return r;
}

/* Does the row reach [lo, hi) with a nonzero weight?  (decode.py: r.abs().sum(1) > 0 over the box) */
UP_HD bool taps_reach(const Taps& t, int lo, int hi) {
    for (int k = 0; k < t.n; ++k) {
        const int f = t.start + k;
        if (f >= lo && f < hi && t.w[k] != 0.0f) return true;
    }
    return false;
}

/* argmax update: strictly greater wins, so the lowest class index wins ties. */
UP_HD void better(float v, int k, float* best, int* arg) {
    if (v > *best) {
        *best = v;
        *arg = k;
    }
}

/* label of the best kept class (class id c -> label c + 1) where its confidence is > mask_thr, else 0 */
UP_HD unsigned char part_label(float best, int best_class, float mask_thr) {
    return best > mask_thr ? (unsigned char)(best_class + 1) : (unsigned char)0;
}

/* maskness numerator / denominator tests of one part confidence P (inside the instance mask) */
UP_HD bool maskness_pos(float p, float mask_thr) { return p > mask_thr; }
UP_HD bool maskness_count(float p) { return p > UP_COUNT_THR; }

/* Final resize direction (DESIGN §3 step 5), by AREAS: shrink (bilinear on the confidences before the argmax)
 * when ori_h*ori_w < img_h*img_w; nearest on the labels when ori_h*ori_w > img_h*img_w; NO resize when the areas
 * are equal (pixel (y, x) stays at (y, x): equal areas with other shapes are cropped / zero-padded to (H, W),
 * like uniparser_sdk/model/decode.py). */
UP_HD bool final_shrink(int img_h, int img_w, int ori_h, int ori_w) {
    return (int64_t)ori_h * ori_w < (int64_t)img_h * img_w;
}

/* Label-map source index of output index dst on one axis when not shrinking: torch nearest when enlarging, the
 * identity (-1 = outside, background) when the areas are equal. */
UP_HD int label_src(int dst, int out_size, int in_size, bool equal_area) {
    if (equal_area) return dst < in_size ? dst : -1;
    return nearest_src(dst, out_size, in_size);
}

/* ---- host only (plain functions: nvcc compiles them for the host) ------------------------------------------ */

/* The argument checks shared by uniparser_decode_cpu and uniparser_decode_cuda, in this order: the input
 * pointers, the dimensions, the class count, max_maps and part_maps, the geometry, NaN thresholds. Each entry
 * point adds its own output-pointer and size-overflow checks. */
static inline int check_decode_args(const float* center_logits, int S, const float* ins, const float* sem,
                                    const float* seg_kernels, int D, int h, int w, int C, int K, float ctr_score,
                                    float mask_thr, float cate_score_thr, int img_h, int img_w, int ori_h,
                                    int ori_w, const unsigned char* part_maps, int max_maps) {
    if (!center_logits || !ins || !sem || !seg_kernels) return UNIPARSER_ERR_NULL_POINTER;
    if (S < 1 || D < 1 || h < 1 || w < 1 || C < 1 || K < 1) return UNIPARSER_ERR_BAD_DIMS;
    if (C > 255) return UNIPARSER_ERR_TOO_MANY_CLASSES;
    if (max_maps < 0) return UNIPARSER_ERR_BAD_MAX_MAPS;
    if (max_maps > 0 && !part_maps) return UNIPARSER_ERR_NULL_POINTER;
    if (img_h < 1 || img_w < 1 || ori_h < 1 || ori_w < 1 || (int64_t)img_h > 4 * (int64_t)h ||
        (int64_t)img_w > 4 * (int64_t)w)
        return UNIPARSER_ERR_BAD_GEOMETRY;
    if (ctr_score != ctr_score || mask_thr != mask_thr || cate_score_thr != cate_score_thr)  /* NaN */
        return UNIPARSER_ERR_BAD_THRESHOLD;
    /* mask_thr < 0 would make every zero confidence outside a mask "foreground" (the box-restricted work of
     * every implementation assumes 0 > mask_thr is false): refused rather than silently different. */
    if (mask_thr < 0.0f) return UNIPARSER_ERR_BAD_THRESHOLD;
    return UNIPARSER_OK;
}

/* Human-readable text of a return code (static storage; never NULL): uniparser_decode_error_string and
 * uniparser_decode_cuda_error_string. */
static inline const char* error_string(int code) {
    switch (code) {
        case UNIPARSER_OK: return "ok";
        case UNIPARSER_ERR_NULL_POINTER: return "a required pointer is NULL";
        case UNIPARSER_ERR_BAD_DIMS: return "bad dimensions: S, D, h, w, C and K must be >= 1";
        case UNIPARSER_ERR_BAD_GEOMETRY:
            return "bad geometry: need 1 <= img_h <= 4*h, 1 <= img_w <= 4*w, ori_h >= 1, ori_w >= 1";
        case UNIPARSER_ERR_TOO_MANY_CLASSES: return "too many classes: C must be <= 255 (uint8 labels c+1)";
        case UNIPARSER_ERR_BAD_MAX_MAPS: return "max_maps must be >= 0";
        case UNIPARSER_ERR_BAD_THRESHOLD: return "a threshold is NaN, or mask_thr < 0";
        case UNIPARSER_ERR_OUT_OF_MEMORY: return "host memory allocation failed";
        case UNIPARSER_ERR_CUDA: return "a CUDA call failed";
        case UNIPARSER_ERR_WORKSPACE: return "workspace is NULL or too small";
        case UNIPARSER_ERR_SIZE_OVERFLOW: return "a buffer size overflows";
        default: return "unknown error code";
    }
}

}  // namespace core
}  // namespace uniparser

#endif /* UNIPARSER_DECODE_CORE_H */
