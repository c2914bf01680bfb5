/*
 * UniParser fused decode, CUDA implementation (C ABI in uniparser_decode_cuda.h).
 * Same algorithm as the CPU twin (uniparser_decode_cpu.cpp) and the specification
 * (uniparser_sdk/model/decode.py::decode_single); per-element rules come from uniparser_decode_core.h.
 *
 * Kernels, all on one stream, no host synchronisation (the count stays on the device):
 *   k_peaks            one block: sigmoid, 2x2 and 5x5 tests, rank of every cell in the stable score-descending
 *                      order (ties: lower flat index first), first min(#peaks, K) slots + count
 *   k_norms            per-pixel |F_ins| and |F_sem|
 *   k_kernels          gather + normalise the instance kernels (slots < count) and the category kernels
 *   k_cosine<mask>     tiled (rows x pixels) cosine products: K x P -> uint8 instance masks (slots < count),
 *                      C x P -> pixel-major Q_cat (P x C)
 *   k_bbox             bounding box of each instance mask
 *   k_maskness_partial / k_maskness_final
 *                      the two (count x P) @ (P x C) products over each instance's box, chunked, summed in a
 *                      fixed order (deterministic), keep and the ascending list of kept classes
 *   k_geometry         separable interpolation taps (double, cast to float) and nearest tables
 *   k_finish           per output pixel and slot: interpolation + argmax + threshold, uint8 written at
 *                      (ori_h, ori_w); zeros for slots >= min(count, max_maps) and outside each box's reach
 *
 * Every kernel carries __launch_bounds__ equal to the block size it is launched with, so that even a -G debug
 * build fits its registers (k_peaks: 1024 threads -> <= 64 registers; tests/test_kernels.py checks ptxas -v).
 * Launch errors are checked after EVERY launch (a failed k_peaks must not let k_kernels read a garbage count:
 * the count is also zeroed on the stream first); a CUDA error the caller left pending is peeked at, not
 * cleared, and makes this function return UNIPARSER_ERR_CUDA without launching anything.
 *
 * Compiles for sm_75 .. sm_120 (python -m uniparser_sdk.fused.build --cuda-check).
 */
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>

#include "uniparser_decode_core.h"
#include "uniparser_decode_cuda.h"

using namespace uniparser::core;

namespace {

constexpr int kPeakThreads = 1024;
constexpr int kThreads = 256;  // block size of k_norms, k_kernels, k_bbox, k_geometry (and the maskness kernels' max)
constexpr int kCosPix = 128;   // pixels (threads) per block of the cosine products
constexpr int kCosRows = 32;   // kernels per block (register accumulators per thread)
constexpr int kCosTD = 32;     // feature channels staged in shared memory per step
constexpr int kMaskChunks = 16;
constexpr int kFinishX = 32, kFinishY = 8;
constexpr int kMaxGridYZ = 65535;                        // CUDA: gridDim.y, gridDim.z <= 65,535
constexpr int kMaxInstancesCuda = kMaxGridYZ * kCosRows;  // K: ceil(K / kCosRows) blocks in k_cosine's gridDim.y
static_assert(kMaxInstancesCuda == UNIPARSER_CUDA_MAX_INSTANCES, "uniparser_decode_cuda.h states the K limit");

inline size_t align_up(size_t x) { return (x + 255) & ~(size_t)255; }

struct Layout {
    size_t s, hv, v, scores, grid, count, feat, keep, nrm_ins, nrm_sem, kn_ins, kn_cat, masks, qT, boxes, part_num,
        part_den, kept, nkept, rows, cols, near_r, near_c, total;
};

bool make_layout(int S, int D, int h, int w, int C, int K, int img_h, int img_w, int ori_h, int ori_w, Layout* L) {
    if (S < 1 || D < 1 || h < 1 || w < 1 || C < 1 || K < 1 || img_h < 1 || img_w < 1 || ori_h < 1 || ori_w < 1)
        return false;
    const size_t SS = (size_t)S * S, P = (size_t)h * w;
    const bool shrink = final_shrink(img_h, img_w, ori_h, ori_w);
    const size_t Hout = shrink ? ori_h : img_h, Wout = shrink ? ori_w : img_w;
    size_t off = 0;
    auto take = [&](size_t bytes) {
        const size_t o = off;
        off = align_up(off + bytes);
        return o;
    };
    L->s = take(SS * 4);
    L->hv = take(SS * 4);
    L->v = take(SS * 4);
    L->scores = take((size_t)K * 4);
    L->grid = take((size_t)K * 4);
    L->count = take(4);
    L->feat = take((size_t)K * 4);
    L->keep = take((size_t)K * C);
    L->nrm_ins = take(P * 4);
    L->nrm_sem = take(P * 4);
    L->kn_ins = take((size_t)K * D * 4);
    L->kn_cat = take((size_t)C * D * 4);
    L->masks = take((size_t)K * P);
    L->qT = take(P * C * 4);
    L->boxes = take((size_t)K * 4 * 4);
    L->part_num = take((size_t)kMaskChunks * K * C * sizeof(double));
    L->part_den = take((size_t)kMaskChunks * K * C * 4);
    L->kept = take((size_t)K * C);
    L->nkept = take((size_t)K * 4);
    L->rows = take(Hout * sizeof(Taps));
    L->cols = take(Wout * sizeof(Taps));
    L->near_r = take((size_t)ori_h * 4);
    L->near_c = take((size_t)ori_w * 4);
    L->total = off;
    return true;
}

__global__ void __launch_bounds__(kPeakThreads) k_peaks(const float* __restrict__ logits, int S, int K, float ctr_score, int h, int w,
                        float* s, float* hv, float* v, float* scores, int* grid, int* feat, int* count) {
    __shared__ int s_npeak, s_npos;
    const int n = S * S;
    const int tid = threadIdx.x;
    if (tid == 0) {
        s_npeak = 0;
        s_npos = 0;
    }
    for (int i = tid; i < n; i += blockDim.x) s[i] = sigmoid(logits[i]);
    __syncthreads();
    for (int i = tid; i < n; i += blockDim.x) hv[i] = survives_2x2(s, S, i / S, i % S) ? s[i] : 0.0f;
    __syncthreads();
    int npeak = 0, npos = 0;
    for (int i = tid; i < n; i += blockDim.x) {
        const float hval = hv[i];
        const bool peak = is_local_max_5x5(hv, S, i / S, i % S) && hval > ctr_score;
        const float val = peak ? hval : 0.0f;
        v[i] = val;
        npeak += peak ? 1 : 0;
        npos += val > 0.0f ? 1 : 0;
    }
    atomicAdd(&s_npeak, npeak);
    atomicAdd(&s_npos, npos);
    __syncthreads();
    const int kk = K < n ? K : n;
    const int cnt = s_npeak < kk ? s_npeak : kk;
    const int pos = s_npos;
    for (int k = tid; k < K; k += blockDim.x)
        if (k >= cnt) {
            scores[k] = 0.0f;
            grid[k] = -1;
            feat[k] = 0;
        }
    /* rank of cell i in the stable descending order = #(v_j > v_i) + #(v_j == v_i, j < i) */
    for (int i = tid; i < n; i += blockDim.x) {
        const float vi = v[i];
        if (!(vi > 0.0f) && pos >= cnt) continue; /* zero cells rank after every positive one */
        int rank = 0;
        for (int j = 0; j < n && rank < cnt; ++j) {
            const float vj = v[j];
            rank += (vj > vi || (vj == vi && j < i)) ? 1 : 0;
        }
        if (rank < cnt) {
            scores[rank] = vi;
            grid[rank] = i;
            feat[rank] = (int)grid_to_feature(i, S, h, w);
        }
    }
    if (tid == 0) *count = cnt;
}

__global__ void __launch_bounds__(kThreads) k_norms(const float* __restrict__ ins, const float* __restrict__ sem, int D, int64_t P,
                        float* nrm_ins, float* nrm_sem) {
    const int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= P) return;
    float a = 0.0f, b = 0.0f;
    for (int d = 0; d < D; ++d) {
        const float x = ins[(int64_t)d * P + p], y = sem[(int64_t)d * P + p];
        a += x * x;
        b += y * y;
    }
    nrm_ins[p] = fmaxf(sqrtf(a), UP_NORM_EPS);
    nrm_sem[p] = fmaxf(sqrtf(b), UP_NORM_EPS);
}

__global__ void __launch_bounds__(kThreads)
    k_kernels(const float* __restrict__ ins, const float* __restrict__ seg, const int* feat, const int* count,
              const float* nrm_ins, int K, int C, int D, int64_t P, float* kn_ins, float* kn_cat) {
    __shared__ float red[kThreads];
    const int b = blockIdx.x;
    if (b < K) {
        if (b >= *count) return;
        const int64_t f = feat[b];
        const float nrm = nrm_ins[f];
        for (int d = threadIdx.x; d < D; d += blockDim.x) kn_ins[(int64_t)b * D + d] = ins[(int64_t)d * P + f] / nrm;
        return;
    }
    const int c = b - K;
    float acc = 0.0f;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        const float x = seg[(int64_t)c * D + d];
        acc += x * x;
    }
    red[threadIdx.x] = acc;
    __syncthreads();
    for (int st = blockDim.x / 2; st > 0; st >>= 1) {
        if (threadIdx.x < st) red[threadIdx.x] += red[threadIdx.x + st];
        __syncthreads();
    }
    const float nrm = fmaxf(sqrtf(red[0]), UP_NORM_EPS);
    for (int d = threadIdx.x; d < D; d += blockDim.x) kn_cat[(int64_t)c * D + d] = seg[(int64_t)c * D + d] / nrm;
}

/* rows r0..r0+31 of A (R x D, normalised kernels) against pixel p of X (D x P):
 *   kMask: masks[r * P + p] = (A_r . X_p) / |X_p| > thr      for r < min(count, R)
 *   else : qT[p * R + r]    = (A_r . X_p) / |X_p|            for r < R */
template <bool kMask>
__global__ void __launch_bounds__(kCosPix) k_cosine(const float* __restrict__ X, const float* __restrict__ nrm,
                                                    const float* __restrict__ A, int R, const int* count, int D,
                                                    int64_t P, float thr, unsigned char* masks, float* qT) {
    __shared__ float sA[kCosTD][kCosRows];
    const int r0 = blockIdx.y * kCosRows;
    int rlim = R;
    if (kMask) rlim = min(*count, R);
    if (r0 >= rlim) return; /* block-uniform */
    const int64_t p = (int64_t)blockIdx.x * kCosPix + threadIdx.x;
    float acc[kCosRows];
#pragma unroll
    for (int r = 0; r < kCosRows; ++r) acc[r] = 0.0f;
    for (int d0 = 0; d0 < D; d0 += kCosTD) {
        for (int idx = threadIdx.x; idx < kCosTD * kCosRows; idx += kCosPix) {
            const int dd = idx / kCosRows, rr = idx % kCosRows;
            sA[dd][rr] = (d0 + dd < D && r0 + rr < rlim) ? A[(int64_t)(r0 + rr) * D + d0 + dd] : 0.0f;
        }
        __syncthreads();
        if (p < P) {
            const int nd = min(kCosTD, D - d0);
            for (int dd = 0; dd < nd; ++dd) {
                const float x = X[(int64_t)(d0 + dd) * P + p];
#pragma unroll
                for (int r = 0; r < kCosRows; ++r) acc[r] += sA[dd][r] * x;
            }
        }
        __syncthreads();
    }
    if (p >= P) return;
    const float n = nrm[p];
#pragma unroll
    for (int r = 0; r < kCosRows; ++r) {
        const int row = r0 + r;
        if (row < rlim) {
            const float q = acc[r] / n;
            if (kMask) masks[(int64_t)row * P + p] = q > thr ? 1 : 0;
            else qT[p * R + row] = q;
        }
    }
}

__global__ void __launch_bounds__(kThreads) k_bbox(const unsigned char* __restrict__ masks, const int* count, int h, int w, int* boxes) {
    __shared__ int y0, y1, x0, x1;
    const int b = blockIdx.x;
    if (b >= *count) return;
    if (threadIdx.x == 0) {
        y0 = h;
        y1 = -1;
        x0 = w;
        x1 = -1;
    }
    __syncthreads();
    const int64_t P = (int64_t)h * w;
    int ly0 = h, ly1 = -1, lx0 = w, lx1 = -1;
    for (int64_t p = threadIdx.x; p < P; p += blockDim.x)
        if (masks[(int64_t)b * P + p]) {
            const int y = (int)(p / w), x = (int)(p % w);
            ly0 = min(ly0, y);
            ly1 = max(ly1, y);
            lx0 = min(lx0, x);
            lx1 = max(lx1, x);
        }
    atomicMin(&y0, ly0);
    atomicMax(&y1, ly1);
    atomicMin(&x0, lx0);
    atomicMax(&x1, lx1);
    __syncthreads();
    if (threadIdx.x == 0) {
        const bool empty = y1 < 0;
        boxes[b * 4 + 0] = empty ? h : y0;
        boxes[b * 4 + 1] = empty ? 0 : y1 + 1;
        boxes[b * 4 + 2] = empty ? w : x0;
        boxes[b * 4 + 3] = empty ? 0 : x1 + 1;
    }
}

/* block (slot b, chunk): thread c sums over the chunk's rows of b's box. The numerator is accumulated in DOUBLE,
 * like the CPU twin: a float sum drifts by ~1e-6 relative and can flip `keep` next to cate_score_thr. */
__global__ void __launch_bounds__(kThreads)
    k_maskness_partial(const unsigned char* __restrict__ masks, const float* __restrict__ qT, const int* boxes,
                       const int* count, int K, int C, int w, int64_t P, float mask_thr, double* part_num,
                       int* part_den) {
    const int b = blockIdx.x, chunk = blockIdx.y, c = threadIdx.x;
    if (b >= *count) return;
    const int y0 = boxes[b * 4 + 0], y1 = boxes[b * 4 + 1], x0 = boxes[b * 4 + 2], x1 = boxes[b * 4 + 3];
    const int rows = y1 > y0 ? y1 - y0 : 0;
    const int per = (rows + kMaskChunks - 1) / kMaskChunks;
    const int ya = y0 + chunk * per, yb = min(y1, ya + per);
    double num = 0.0;
    int den = 0;
    if (c < C) {
        for (int y = ya; y < yb; ++y)
            for (int x = x0; x < x1; ++x) {
                const int64_t p = (int64_t)y * w + x;
                if (!masks[(int64_t)b * P + p]) continue;
                const float q = qT[p * C + c];
                if (maskness_pos(q, mask_thr)) num += (double)q;
                if (maskness_count(q)) den += 1;
            }
        part_num[((int64_t)chunk * K + b) * C + c] = num;
        part_den[((int64_t)chunk * K + b) * C + c] = den;
    }
}

__global__ void __launch_bounds__(kThreads)
    k_maskness_final(const double* __restrict__ part_num, const int* __restrict__ part_den, const int* count, int K,
                     int C, float cate_score_thr, unsigned char* keep, unsigned char* kept, int* nkept) {
    __shared__ unsigned char s_keep[256];
    const int b = blockIdx.x, c = threadIdx.x;
    const bool valid = b < *count;
    if (c < C) {
        unsigned char k = 0;
        if (valid) {
            double num = 0.0;
            long long den = 0;
            for (int ch = 0; ch < kMaskChunks; ++ch) {
                num += part_num[((int64_t)ch * K + b) * C + c];
                den += part_den[((int64_t)ch * K + b) * C + c];
            }
            const float mk = (float)num / ((float)den + UP_MASKNESS_EPS);
            k = mk > cate_score_thr ? 1 : 0;
        }
        keep[(int64_t)b * C + c] = k;
        s_keep[c] = k;
    }
    __syncthreads();
    if (c == 0) {
        int m = 0;
        for (int cc = 0; cc < C; ++cc)
            if (s_keep[cc]) kept[(int64_t)b * C + m++] = (unsigned char)cc;
        nkept[b] = m;
    }
}

__global__ void __launch_bounds__(kThreads) k_geometry(int h, int w, int img_h, int img_w, int ori_h, int ori_w, bool shrink, int Hout,
                           int Wout, Taps* rows, Taps* cols, int* near_r, int* near_c) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < Hout) rows[i] = row_taps(i, h, img_h, ori_h, shrink);
    if (i < Wout) cols[i] = row_taps(i, w, img_w, ori_w, shrink);
    if (!shrink) {
        const bool equal = (int64_t)ori_h * ori_w == (int64_t)img_h * img_w;
        if (i < ori_h) near_r[i] = label_src(i, ori_h, img_h, equal);
        if (i < ori_w) near_c[i] = label_src(i, ori_w, img_w, equal);
    }
}

__global__ void __launch_bounds__(kFinishX* kFinishY)
    k_finish(const unsigned char* __restrict__ masks, const float* __restrict__ qT, const int* __restrict__ boxes,
             const unsigned char* __restrict__ kept, const int* __restrict__ nkept, const int* count,
             const Taps* __restrict__ rows, const Taps* __restrict__ cols, const int* __restrict__ near_r,
             const int* __restrict__ near_c, int C, int h, int w, int ori_h, int ori_w, bool shrink, int max_maps,
             float mask_thr, unsigned char* out) {
    const int X = blockIdx.x * kFinishX + threadIdx.x;
    const int Y = blockIdx.y * kFinishY + threadIdx.y;
    const int i = blockIdx.z;
    if (X >= ori_w || Y >= ori_h) return;
    unsigned char* dst = out + ((int64_t)i * ori_h + Y) * ori_w + X;
    const int cnt = min(*count, max_maps);
    const int nk = i < cnt ? nkept[i] : 0;
    if (nk == 0) {
        *dst = 0;
        return;
    }
    const int y0 = boxes[i * 4 + 0], y1 = boxes[i * 4 + 1], x0 = boxes[i * 4 + 2], x1 = boxes[i * 4 + 3];
    if (!shrink && (near_r[Y] < 0 || near_c[X] < 0)) { /* equal areas, other shape: outside the labels */
        *dst = 0;
        return;
    }
    const Taps rt = shrink ? rows[Y] : rows[near_r[Y]];
    const Taps ct = shrink ? cols[X] : cols[near_c[X]];
    int ry[UP_MAX_TAPS], cx[UP_MAX_TAPS];
    float rw[UP_MAX_TAPS], cw[UP_MAX_TAPS];
    int nr = 0, nc = 0;
    for (int k = 0; k < rt.n; ++k) {
        const int f = rt.start + k;
        if (f >= y0 && f < y1 && rt.w[k] != 0.0f) {
            ry[nr] = f;
            rw[nr++] = rt.w[k];
        }
    }
    for (int k = 0; k < ct.n; ++k) {
        const int f = ct.start + k;
        if (f >= x0 && f < x1 && ct.w[k] != 0.0f) {
            cx[nc] = f;
            cw[nc++] = ct.w[k];
        }
    }
    if (nr == 0 || nc == 0) {
        *dst = 0;
        return;
    }
    const int64_t P = (int64_t)h * w;
    int64_t pix[UP_MAX_TAPS][UP_MAX_TAPS];
    bool on[UP_MAX_TAPS][UP_MAX_TAPS];
    for (int a = 0; a < nr; ++a)
        for (int b = 0; b < nc; ++b) {
            pix[a][b] = (int64_t)ry[a] * w + cx[b];
            on[a][b] = masks[(int64_t)i * P + pix[a][b]] != 0;
        }
    const unsigned char* kl = kept + (int64_t)i * C;
    float best = 0.0f;
    int arg = 0;
    for (int k = 0; k < nk; ++k) {
        const int c = kl[k];
        float conf = 0.0f;
        for (int b = 0; b < nc; ++b) {
            float t = 0.0f;
            for (int a = 0; a < nr; ++a) t += rw[a] * (on[a][b] ? qT[pix[a][b] * C + c] : 0.0f);
            conf += cw[b] * t;
        }
        if (k == 0) {
            best = conf;
            arg = c;
        } else {
            better(conf, c, &best, &arg);
        }
    }
    *dst = part_label(best, arg, mask_thr);
}

/* Text of the last CUDA failure of this thread (which call, and cudaGetErrorString), for the plugin's log and the
 * torch op's exception: uniparser_decode_cuda_last_error(). */
thread_local char g_last_error[256] = "";

int set_cuda_error(const char* where, cudaError_t e) {
    snprintf(g_last_error, sizeof(g_last_error), "%s: %s (%s)", where, cudaGetErrorString(e), cudaGetErrorName(e));
    return UNIPARSER_ERR_CUDA;
}

int check_args(const float* center_logits, int S, const float* ins, const float* sem, const float* seg_kernels, int D,
               int h, int w, int C, int K, float ctr_score, float mask_thr, float cate_score_thr, int img_h,
               int img_w, int ori_h, int ori_w, unsigned char* part_maps, int max_maps) {
    const int rc = check_decode_args(center_logits, S, ins, sem, seg_kernels, D, h, w, C, K, ctr_score, mask_thr,
                                     cate_score_thr, img_h, img_w, ori_h, ori_w, part_maps, max_maps);
    if (rc != UNIPARSER_OK) return rc;
    /* device indices of features are int (feat), and every launch must fit CUDA's grid limits: gridDim.y and .z
     * are at most 65,535 (k_cosine<true> puts ceil(K / kCosRows) blocks in y, k_finish ceil(ori_h / kFinishY) in y
     * and max_maps in z); gridDim.x (2^31 - 1) holds K + C, ceil(P / 256) and the geometry blocks. */
    if ((int64_t)h * w > 0x7fffffffLL || (int64_t)S * S > 0x7fffffffLL || ori_h > kMaxGridYZ * kFinishY ||
        max_maps > kMaxGridYZ || K > kMaxInstancesCuda)
        return UNIPARSER_ERR_SIZE_OVERFLOW;
    return UNIPARSER_OK;
}

}  // namespace

extern "C" {

UNIPARSER_API size_t uniparser_decode_cuda_workspace_size(int S, int D, int h, int w, int C, int K, int img_h,
                                                          int img_w, int ori_h, int ori_w) {
    Layout L;
    if (!make_layout(S, D, h, w, C, K, img_h, img_w, ori_h, ori_w, &L)) return 0;
    return L.total;
}

UNIPARSER_API const char* uniparser_decode_cuda_error_string(int code) { return error_string(code); }

UNIPARSER_API int uniparser_decode_cuda(const float* center_logits, int S, const float* ins, const float* sem,
                                        const float* seg_kernels, int D, int h, int w, int C, int K, float ctr_score,
                                        float mask_thr, float cate_score_thr, int img_h, int img_w, int ori_h,
                                        int ori_w, float* scores, int* grid_index, int* count, unsigned char* keep,
                                        unsigned char* part_maps, int max_maps, void* workspace,
                                        size_t workspace_size, cudaStream_t stream) {
    int rc = check_args(center_logits, S, ins, sem, seg_kernels, D, h, w, C, K, ctr_score, mask_thr, cate_score_thr,
                        img_h, img_w, ori_h, ori_w, part_maps, max_maps);
    if (rc != UNIPARSER_OK) return rc;
    Layout L;
    make_layout(S, D, h, w, C, K, img_h, img_w, ori_h, ori_w, &L);
    if (!workspace || workspace_size < L.total) return UNIPARSER_ERR_WORKSPACE;
    char* ws = static_cast<char*>(workspace);
    float* s = reinterpret_cast<float*>(ws + L.s);
    float* hv = reinterpret_cast<float*>(ws + L.hv);
    float* v = reinterpret_cast<float*>(ws + L.v);
    float* d_scores = scores ? scores : reinterpret_cast<float*>(ws + L.scores);
    int* d_grid = grid_index ? grid_index : reinterpret_cast<int*>(ws + L.grid);
    int* d_count = count ? count : reinterpret_cast<int*>(ws + L.count);
    unsigned char* d_keep = keep ? keep : reinterpret_cast<unsigned char*>(ws + L.keep);
    int* feat = reinterpret_cast<int*>(ws + L.feat);
    float* nrm_ins = reinterpret_cast<float*>(ws + L.nrm_ins);
    float* nrm_sem = reinterpret_cast<float*>(ws + L.nrm_sem);
    float* kn_ins = reinterpret_cast<float*>(ws + L.kn_ins);
    float* kn_cat = reinterpret_cast<float*>(ws + L.kn_cat);
    unsigned char* masks = reinterpret_cast<unsigned char*>(ws + L.masks);
    float* qT = reinterpret_cast<float*>(ws + L.qT);
    int* boxes = reinterpret_cast<int*>(ws + L.boxes);
    double* part_num = reinterpret_cast<double*>(ws + L.part_num);
    int* part_den = reinterpret_cast<int*>(ws + L.part_den);
    unsigned char* kept = reinterpret_cast<unsigned char*>(ws + L.kept);
    int* nkept = reinterpret_cast<int*>(ws + L.nkept);
    Taps* rows = reinterpret_cast<Taps*>(ws + L.rows);
    Taps* cols = reinterpret_cast<Taps*>(ws + L.cols);
    int* near_r = reinterpret_cast<int*>(ws + L.near_r);
    int* near_c = reinterpret_cast<int*>(ws + L.near_c);

    const int64_t P = (int64_t)h * w;
    const bool shrink = final_shrink(img_h, img_w, ori_h, ori_w);
    const int Hout = shrink ? ori_h : img_h, Wout = shrink ? ori_w : img_w;
    const int cthreads = ((C + 31) / 32) * 32;

    /* A CUDA error the caller left pending is not ours to clear (cudaGetLastError would swallow it): peek, and
     * refuse to run, so that every error seen after one of our launches below is our own. */
    const cudaError_t pending = cudaPeekAtLastError();
    if (pending != cudaSuccess)
        return set_cuda_error("CUDA state before the first launch (an error the caller left pending, or no usable device)", pending);
    /* The count is zeroed on the stream first: if a kernel is not launched, the next ones read 0, not garbage. */
    cudaError_t e = cudaMemsetAsync(d_count, 0, sizeof(int), stream);
    if (e != cudaSuccess) return set_cuda_error("cudaMemsetAsync(count)", e);
#define UP_CHECK_LAUNCH(name)                                            \
    do {                                                                 \
        const cudaError_t err_ = cudaGetLastError();                     \
        if (err_ != cudaSuccess) return set_cuda_error(name, err_);      \
    } while (0)
    k_peaks<<<1, kPeakThreads, 0, stream>>>(center_logits, S, K, ctr_score, h, w, s, hv, v, d_scores, d_grid, feat,
                                            d_count);
    UP_CHECK_LAUNCH("k_peaks");
    k_norms<<<(unsigned)((P + kThreads - 1) / kThreads), kThreads, 0, stream>>>(ins, sem, D, P, nrm_ins, nrm_sem);
    UP_CHECK_LAUNCH("k_norms");
    k_kernels<<<K + C, kThreads, 0, stream>>>(ins, seg_kernels, feat, d_count, nrm_ins, K, C, D, P, kn_ins, kn_cat);
    UP_CHECK_LAUNCH("k_kernels");
    const unsigned pblocks = (unsigned)((P + kCosPix - 1) / kCosPix);
    k_cosine<true><<<dim3(pblocks, (K + kCosRows - 1) / kCosRows), kCosPix, 0, stream>>>(
        ins, nrm_ins, kn_ins, K, d_count, D, P, mask_thr, masks, nullptr);
    UP_CHECK_LAUNCH("k_cosine<mask>");
    k_cosine<false><<<dim3(pblocks, (C + kCosRows - 1) / kCosRows), kCosPix, 0, stream>>>(
        sem, nrm_sem, kn_cat, C, d_count, D, P, 0.0f, nullptr, qT);
    UP_CHECK_LAUNCH("k_cosine<cat>");
    k_bbox<<<K, kThreads, 0, stream>>>(masks, d_count, h, w, boxes);
    UP_CHECK_LAUNCH("k_bbox");
    k_maskness_partial<<<dim3(K, kMaskChunks), cthreads, 0, stream>>>(masks, qT, boxes, d_count, K, C, w, P,
                                                                      mask_thr, part_num, part_den);
    UP_CHECK_LAUNCH("k_maskness_partial");
    k_maskness_final<<<K, cthreads, 0, stream>>>(part_num, part_den, d_count, K, C, cate_score_thr, d_keep, kept,
                                                 nkept);
    UP_CHECK_LAUNCH("k_maskness_final");
    if (max_maps > 0) {
        const int gmax = Hout > Wout ? Hout : Wout;
        const int gall = gmax > ori_h ? (gmax > ori_w ? gmax : ori_w) : (ori_h > ori_w ? ori_h : ori_w);
        k_geometry<<<(gall + kThreads - 1) / kThreads, kThreads, 0, stream>>>(h, w, img_h, img_w, ori_h, ori_w, shrink,
                                                                             Hout, Wout, rows, cols, near_r, near_c);
        UP_CHECK_LAUNCH("k_geometry");
        const dim3 grid((ori_w + kFinishX - 1) / kFinishX, (ori_h + kFinishY - 1) / kFinishY, max_maps);
        k_finish<<<grid, dim3(kFinishX, kFinishY), 0, stream>>>(masks, qT, boxes, kept, nkept, d_count, rows, cols,
                                                                near_r, near_c, C, h, w, ori_h, ori_w, shrink,
                                                                max_maps, mask_thr, part_maps);
        UP_CHECK_LAUNCH("k_finish");
    }
#undef UP_CHECK_LAUNCH
    g_last_error[0] = '\0';
    return UNIPARSER_OK;
}

UNIPARSER_API const char* uniparser_decode_cuda_last_error(void) { return g_last_error; }

UNIPARSER_API size_t uniparser_decode_cuda_peaks_workspace_size(int S, int K) {
    if (S < 1 || K < 1 || (int64_t)S * S > 0x7fffffffLL) return 0;
    return 3 * align_up((size_t)S * S * 4) + align_up((size_t)K * 4);
}

UNIPARSER_API int uniparser_decode_cuda_peaks(const float* center_logits, int S, int K, float ctr_score, float* scores,
                                              int* grid_index, int* count, void* workspace, size_t workspace_size,
                                              cudaStream_t stream) {
    if (!center_logits || !scores || !grid_index || !count) return UNIPARSER_ERR_NULL_POINTER;
    if (S < 1 || K < 1) return UNIPARSER_ERR_BAD_DIMS;
    if ((int64_t)S * S > 0x7fffffffLL || K > kMaxInstancesCuda) return UNIPARSER_ERR_SIZE_OVERFLOW;
    if (ctr_score != ctr_score) return UNIPARSER_ERR_BAD_THRESHOLD;
    const size_t need = uniparser_decode_cuda_peaks_workspace_size(S, K);
    if (!workspace || workspace_size < need) return UNIPARSER_ERR_WORKSPACE;
    char* ws = static_cast<char*>(workspace);
    const size_t a = align_up((size_t)S * S * 4);
    float* s = reinterpret_cast<float*>(ws);
    float* hv = reinterpret_cast<float*>(ws + a);
    float* v = reinterpret_cast<float*>(ws + 2 * a);
    int* feat = reinterpret_cast<int*>(ws + 3 * a);
    const cudaError_t pending = cudaPeekAtLastError();
    if (pending != cudaSuccess) return set_cuda_error("CUDA state before the first launch", pending);
    cudaError_t e = cudaMemsetAsync(count, 0, sizeof(int), stream);
    if (e != cudaSuccess) return set_cuda_error("cudaMemsetAsync(count)", e);
    k_peaks<<<1, kPeakThreads, 0, stream>>>(center_logits, S, K, ctr_score, 1, 1, s, hv, v, scores, grid_index, feat,
                                            count);
    e = cudaGetLastError();
    if (e != cudaSuccess) return set_cuda_error("k_peaks", e);
    g_last_error[0] = '\0';
    return UNIPARSER_OK;
}

}  // extern "C"
