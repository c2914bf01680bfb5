/*
 * UniParser fused decode, CPU twin of uniparser_decode.cu. C ABI in uniparser_decode.h.
 *
 * Same algorithm and numbers as uniparser_sdk/model/decode.py::decode_single:
 *   peaks -> count (only the `count` valid slots are computed further, never K x C x P)
 *   Q_ins (count x P) -> instance masks, their union and bounding boxes
 *   Q_cat (C x P), only on pixel tiles that some instance mask touches, stored pixel-major (P x C)
 *   maskness = two (count x P) @ (P x C) products restricted to each instance's box -> keep
 *   finishing per instance over the output rows/columns its feature box reaches: separable interpolation
 *   taps (<= 3 per axis) + argmax + threshold fused per output pixel, uint8 written at (ori_h, ori_w).
 * The run-time mask_thr is used for the instance masks, the maskness numerator and the final foreground test.
 * Nearest resize: torch's float32 index rule (core.h nearest_src).
 * Float32 arithmetic like the reference (sums of the maskness numerator in double); interpolation weights
 * in double cast to float like the reference. Results are identical to the reference except where a value
 * sits within float rounding (~1e-6 relative) of a threshold or of a tie between two classes.
 *
 * Build: g++ -O3 -fPIC -shared [-fopenmp] uniparser_decode_cpu.cpp -o libuniparser_decode_cpu.so
 * (uniparser_sdk/fused/build.py does this; kernels/CMakeLists.txt too).
 */
#include "uniparser_decode.h"
#include "uniparser_decode_core.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <numeric>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace uniparser::core;

/* Hot loops get an AVX2/FMA clone selected at load time on x86-64 with GCC (function multiversioning);
 * the default clone is plain x86-64, so the library runs on any x86-64 CPU. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(UNIPARSER_NO_CLONES)
#define UP_CLONES __attribute__((target_clones("arch=haswell", "default")))
#else
#define UP_CLONES
#endif

/* Development aid: -DUNIPARSER_PROFILE prints the wall and process-CPU time of each stage to stderr. */
#ifdef UNIPARSER_PROFILE
#include <chrono>
#include <cstdio>
#include <ctime>
#define UP_TIC(name)                                   \
    auto name = std::chrono::steady_clock::now();      \
    const std::clock_t name##_cpu = std::clock()
#define UP_TOC(name, label)                                                                                   \
    std::fprintf(stderr, "%-12s wall %8.2f ms  cpu %8.2f ms\n", label,                                       \
                 std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - name).count(), \
                 1000.0 * (double)(std::clock() - name##_cpu) / CLOCKS_PER_SEC)
#else
#define UP_TIC(name)
#define UP_TOC(name, label)
#endif

namespace {

constexpr int kTile = 64;  // pixels per tile of the cosine products
constexpr int kRB = 4;     // rows (kernels) per register block
constexpr int kJB = 16;    // pixels per register block

inline int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

inline int thread_id() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* out[r * kTile + j] = sum_d A[r * D + d] * X[d * ldx + j] for r < R, j < np (np <= kTile). */
UP_CLONES
void tile_dots(const float* A, int R, int D, const float* X, int64_t ldx, int np, float* out) {
    int r0 = 0;
    for (; r0 + kRB <= R; r0 += kRB) {
        const float* a0p = A + (int64_t)(r0 + 0) * D;
        const float* a1p = A + (int64_t)(r0 + 1) * D;
        const float* a2p = A + (int64_t)(r0 + 2) * D;
        const float* a3p = A + (int64_t)(r0 + 3) * D;
        int j0 = 0;
        for (; j0 + kJB <= np; j0 += kJB) {
            float c0[kJB] = {}, c1[kJB] = {}, c2[kJB] = {}, c3[kJB] = {};
            for (int d = 0; d < D; ++d) {
                const float* x = X + (int64_t)d * ldx + j0;
                const float a0 = a0p[d], a1 = a1p[d], a2 = a2p[d], a3 = a3p[d];
                for (int j = 0; j < kJB; ++j) {
                    const float xv = x[j];
                    c0[j] += a0 * xv;
                    c1[j] += a1 * xv;
                    c2[j] += a2 * xv;
                    c3[j] += a3 * xv;
                }
            }
            for (int j = 0; j < kJB; ++j) {
                out[(r0 + 0) * kTile + j0 + j] = c0[j];
                out[(r0 + 1) * kTile + j0 + j] = c1[j];
                out[(r0 + 2) * kTile + j0 + j] = c2[j];
                out[(r0 + 3) * kTile + j0 + j] = c3[j];
            }
        }
        for (; j0 < np; ++j0) {
            float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
            for (int d = 0; d < D; ++d) {
                const float xv = X[(int64_t)d * ldx + j0];
                s0 += a0p[d] * xv;
                s1 += a1p[d] * xv;
                s2 += a2p[d] * xv;
                s3 += a3p[d] * xv;
            }
            out[(r0 + 0) * kTile + j0] = s0;
            out[(r0 + 1) * kTile + j0] = s1;
            out[(r0 + 2) * kTile + j0] = s2;
            out[(r0 + 3) * kTile + j0] = s3;
        }
    }
    for (; r0 < R; ++r0) {
        const float* ap = A + (int64_t)r0 * D;
        int j0 = 0;
        for (; j0 + kJB <= np; j0 += kJB) {
            float c0[kJB] = {};
            for (int d = 0; d < D; ++d) {
                const float* x = X + (int64_t)d * ldx + j0;
                const float a = ap[d];
                for (int j = 0; j < kJB; ++j) c0[j] += a * x[j];
            }
            for (int j = 0; j < kJB; ++j) out[r0 * kTile + j0 + j] = c0[j];
        }
        for (; j0 < np; ++j0) {
            float s = 0.f;
            for (int d = 0; d < D; ++d) s += ap[d] * X[(int64_t)d * ldx + j0];
            out[r0 * kTile + j0] = s;
        }
    }
}

/* nrm[j] = max(sqrt(sum_d X[d, j]^2), eps) for j < np. */
UP_CLONES
void tile_norms(int D, const float* X, int64_t ldx, int np, float* nrm) {
    float acc[kTile];
    for (int j = 0; j < np; ++j) acc[j] = 0.f;
    for (int d = 0; d < D; ++d) {
        const float* x = X + (int64_t)d * ldx;
        for (int j = 0; j < np; ++j) acc[j] += x[j] * x[j];
    }
    for (int j = 0; j < np; ++j) nrm[j] = std::max(std::sqrt(acc[j]), UP_NORM_EPS);
}

/* Normalised copy of `rows` vectors of length D taken with stride `stride` between elements. */
void normalize_rows(const float* src, int rows, int D, int64_t row_stride, int64_t elem_stride, float* dst) {
    for (int r = 0; r < rows; ++r) {
        const float* v = src + (int64_t)r * row_stride;
        double ss = 0.0;
        for (int d = 0; d < D; ++d) {
            const double x = v[(int64_t)d * elem_stride];
            ss += x * x;
        }
        const float nrm = std::max((float)std::sqrt(ss), UP_NORM_EPS);
        for (int d = 0; d < D; ++d) dst[(int64_t)r * D + d] = v[(int64_t)d * elem_stride] / nrm;
    }
}

int peaks_impl(const float* logits, int S, int K, float ctr_score, float* scores, int* grid_index, int* count) {
    const int n = S * S;
    std::vector<float> s(n), hv(n), v(n);
    for (int i = 0; i < n; ++i) s[i] = sigmoid(logits[i]);
    for (int y = 0; y < S; ++y)
        for (int x = 0; x < S; ++x) hv[y * S + x] = survives_2x2(s.data(), S, y, x) ? s[y * S + x] : 0.0f;
    int npeak = 0;
    for (int y = 0; y < S; ++y)
        for (int x = 0; x < S; ++x) {
            const float hval = hv[y * S + x];
            const bool peak = is_local_max_5x5(hv.data(), S, y, x) && hval > ctr_score;
            v[y * S + x] = peak ? hval : 0.0f;
            npeak += peak ? 1 : 0;
        }
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return v[a] > v[b]; });
    const int cnt = std::min(npeak, std::min(K, n));
    for (int k = 0; k < K; ++k) {
        scores[k] = k < cnt ? v[order[k]] : 0.0f;
        grid_index[k] = k < cnt ? order[k] : -1;
    }
    *count = cnt;
    return UNIPARSER_OK;
}

bool is_nan(float x) { return x != x; }

struct Box {
    int y0, y1, x0, x1;  // [y0, y1) x [x0, x1); empty when y0 >= y1
};

/* A tap restricted to an instance box: (offset inside the box, weight). */
struct BoxTap {
    int off;
    float w;
};

inline int box_taps(const Taps& t, int lo, int hi, BoxTap* out) {
    int m = 0;
    for (int k = 0; k < t.n; ++k) {
        const int f = t.start + k;
        if (f >= lo && f < hi && t.w[k] != 0.0f) out[m++] = BoxTap{f - lo, t.w[k]};
    }
    return m;
}

/* Labels of one output row segment [x_lo, x_hi] of an instance: fused separable interpolation of the kept
 * categories' confidences z (box-local, (hb, wb, nk) layout, zero outside the mask), argmax (lowest class wins
 * ties) and threshold. The row pass T[xx, k] = sum_a rw_a * z[ya, xx, k] is shared by the output pixels of the
 * row, then conf[k] = sum_b cw_b * T[xb, k]: the same float operations, in the same order, as evaluating each
 * pixel directly. Columns whose row taps all miss the mask have T = 0 and are skipped (adding 0 changes
 * nothing); a pixel whose taps all miss the mask is background. */
inline void label_row(const BoxTap* rt, int nr, const BoxTap* ctaps, const int* cn, int x_lo, int x_hi,
                      const float* z, const unsigned char* on, int wb, int nk, const int* cats, float mask_thr,
                      float* T, unsigned char* colon, float* conf, unsigned char* dst /* indexed by X - x_lo */) {
    if (nr == 0) {
        std::memset(dst, 0, (size_t)(x_hi - x_lo + 1));
        return;
    }
    for (int xx = 0; xx < wb; ++xx) {
        unsigned char any = 0;
        for (int a = 0; a < nr; ++a) any |= on[(size_t)rt[a].off * wb + xx];
        colon[xx] = any;
        if (!any) continue;
        float* t = T + (size_t)xx * nk;
        for (int k = 0; k < nk; ++k) t[k] = 0.0f;
        for (int a = 0; a < nr; ++a) {
            const float* zz = z + ((size_t)rt[a].off * wb + xx) * nk;
            const float rw = rt[a].w;
            for (int k = 0; k < nk; ++k) t[k] += rw * zz[k];
        }
    }
    for (int X = x_lo; X <= x_hi; ++X) {
        const int nc = cn[X];
        const BoxTap* ct = ctaps + (size_t)X * UP_MAX_TAPS;
        unsigned char any = 0;
        for (int b = 0; b < nc; ++b) any |= colon[ct[b].off];
        if (!any) {
            dst[X - x_lo] = 0;
            continue;
        }
        for (int k = 0; k < nk; ++k) conf[k] = 0.0f;
        for (int b = 0; b < nc; ++b) {
            if (!colon[ct[b].off]) continue;
            const float* t = T + (size_t)ct[b].off * nk;
            const float cw = ct[b].w;
            for (int k = 0; k < nk; ++k) conf[k] += cw * t[k];
        }
        float best = conf[0];
        int arg = 0;
        for (int k = 1; k < nk; ++k) better(conf[k], k, &best, &arg);
        dst[X - x_lo] = part_label(best, cats[arg], mask_thr);
    }
}

int decode_impl(const float* center_logits, int S, const float* ins, const float* sem, const float* seg_kernels,
                int D, int h, int w, int C, int K, float ctr_score, float mask_thr, float cate_score_thr, int img_h,
                int img_w, int ori_h, int ori_w, float* scores, int* grid_index, int* count, unsigned char* keep,
                unsigned char* part_maps, int max_maps) {
    const int64_t P = (int64_t)h * w;
    const int64_t HW = (int64_t)ori_h * ori_w;

    UP_TIC(t0);
    peaks_impl(center_logits, S, K, ctr_score, scores, grid_index, count);
    const int n = *count;
    std::memset(keep, 0, (size_t)K * C);
    if (max_maps > 0) std::memset(part_maps, 0, (size_t)max_maps * HW);
    UP_TOC(t0, "peaks+zero");
    if (n == 0) return UNIPARSER_OK;

    const int nthreads = max_threads();
    const int64_t ntiles = (P + kTile - 1) / kTile;

    // ---- steps 2-3: instance kernels (raw features at the peaks' cells), normalised
    std::vector<float> kn((size_t)n * D);
    for (int i = 0; i < n; ++i) {
        const int64_t f = grid_to_feature(grid_index[i], S, h, w);
        normalize_rows(ins + f, 1, D, 0, P, kn.data() + (size_t)i * D);
    }
    std::vector<float> kc((size_t)C * D);
    normalize_rows(seg_kernels, C, D, D, 1, kc.data());

    // ---- Q_ins -> masks (n x P) and the tiles some mask touches
    UP_TIC(t1);
    std::unique_ptr<unsigned char[]> masks(new unsigned char[(size_t)n * P]);
    std::vector<unsigned char> tile_used((size_t)ntiles, 0);
    const int rmax = std::max(n, C);
    std::vector<float> scratch((size_t)nthreads * ((size_t)rmax * kTile + kTile));
#pragma omp parallel for schedule(dynamic, 8)
    for (int64_t t = 0; t < ntiles; ++t) {
        float* buf = scratch.data() + (size_t)thread_id() * ((size_t)rmax * kTile + kTile);
        float* nrm = buf + (size_t)rmax * kTile;
        const int64_t p0 = t * kTile;
        const int np = (int)std::min<int64_t>(kTile, P - p0);
        tile_norms(D, ins + p0, P, np, nrm);
        tile_dots(kn.data(), n, D, ins + p0, P, np, buf);
        unsigned char any = 0;
        for (int i = 0; i < n; ++i) {
            unsigned char* m = masks.get() + (size_t)i * P + p0;
            const float* q = buf + (size_t)i * kTile;
            for (int j = 0; j < np; ++j) {
                const unsigned char on = (q[j] / nrm[j]) > mask_thr;
                m[j] = on;
                any |= on;
            }
        }
        tile_used[(size_t)t] = any;
    }

    std::vector<Box> boxes(n);
    for (int i = 0; i < n; ++i) {
        Box b{h, 0, w, 0};
        const unsigned char* m = masks.get() + (size_t)i * P;
        for (int y = 0; y < h; ++y) {
            const unsigned char* row = m + (int64_t)y * w;
            int first = -1, last = -1;
            for (int x = 0; x < w; ++x)
                if (row[x]) {
                    if (first < 0) first = x;
                    last = x;
                }
            if (first >= 0) {
                b.y0 = std::min(b.y0, y);
                b.y1 = y + 1;
                b.x0 = std::min(b.x0, first);
                b.x1 = std::max(b.x1, last + 1);
            }
        }
        boxes[i] = b;
    }

    UP_TOC(t1, "q_ins+box");
    // ---- Q_cat at the pixels some instance mask covers (compacted), pixel-major (P x C)
    UP_TIC(t2);
    std::vector<int64_t> upix;
    upix.reserve((size_t)P / 4);
    for (int64_t t = 0; t < ntiles; ++t) {
        if (!tile_used[(size_t)t]) continue;
        const int64_t p0 = t * kTile, p1 = std::min<int64_t>(P, p0 + kTile);
        for (int64_t p = p0; p < p1; ++p) {
            unsigned char any = 0;
            for (int i = 0; i < n; ++i) any |= masks[(size_t)i * P + p];
            if (any) upix.push_back(p);
        }
    }
    const int64_t U = (int64_t)upix.size();
    const int64_t nut = (U + kTile - 1) / kTile;
    std::unique_ptr<float[]> qT(new float[(size_t)P * C]);
    std::vector<float> gather((size_t)nthreads * D * kTile);
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t t = 0; t < nut; ++t) {
        const int tid = thread_id();
        float* buf = scratch.data() + (size_t)tid * ((size_t)rmax * kTile + kTile);
        float* nrm = buf + (size_t)rmax * kTile;
        float* G = gather.data() + (size_t)tid * D * kTile;
        const int64_t u0 = t * kTile;
        const int np = (int)std::min<int64_t>(kTile, U - u0);
        const int64_t* pp = upix.data() + u0;
        for (int d = 0; d < D; ++d) {
            const float* src = sem + (int64_t)d * P;
            float* g = G + (size_t)d * kTile;
            for (int j = 0; j < np; ++j) g[j] = src[pp[j]];
        }
        tile_norms(D, G, kTile, np, nrm);
        tile_dots(kc.data(), C, D, G, kTile, np, buf);
        for (int j = 0; j < np; ++j) {
            float* dst = qT.get() + (size_t)pp[j] * C;
            const float nj = nrm[j];
            for (int c = 0; c < C; ++c) dst[c] = buf[(size_t)c * kTile + j] / nj;
        }
    }
    UP_TOC(t2, "q_cat");
    UP_TIC(t3);
    // ---- step 4: maskness = (M @ (Q [Q > mask_thr])^T) / (M @ [Q > .1]^T + eps), per instance over its box;
    //      the numerator is summed in double (the CUDA kernels do the same)
    std::vector<double> num_all((size_t)n * C, 0.0);
    std::vector<int64_t> den_all((size_t)n * C, 0);
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < n; ++i) {
        const Box b = boxes[i];
        double* num = num_all.data() + (size_t)i * C;
        int64_t* den = den_all.data() + (size_t)i * C;
        const unsigned char* m = masks.get() + (size_t)i * P;
        for (int y = b.y0; y < b.y1; ++y)
            for (int x = b.x0; x < b.x1; ++x) {
                const int64_t p = (int64_t)y * w + x;
                if (!m[p]) continue;
                const float* q = qT.get() + (size_t)p * C;
                for (int c = 0; c < C; ++c) {
                    const float v = q[c];
                    if (maskness_pos(v, mask_thr)) num[c] += v;
                    if (maskness_count(v)) den[c] += 1;
                }
            }
        for (int c = 0; c < C; ++c) {
            const float mk = (float)num[c] / ((float)den[c] + UP_MASKNESS_EPS);
            keep[(size_t)i * C + c] = mk > cate_score_thr ? 1 : 0;
        }
    }

    UP_TOC(t3, "maskness");
    // ---- step 5: finishing
    UP_TIC(t4);
    const int nmaps = std::min(n, max_maps);
    if (nmaps <= 0) return UNIPARSER_OK;
    const bool shrink = final_shrink(img_h, img_w, ori_h, ori_w);
    const int Hout = shrink ? ori_h : img_h, Wout = shrink ? ori_w : img_w;
    std::vector<Taps> rows(Hout), cols(Wout);
    for (int Y = 0; Y < Hout; ++Y) rows[Y] = row_taps(Y, h, img_h, ori_h, shrink);
    for (int X = 0; X < Wout; ++X) cols[X] = row_taps(X, w, img_w, ori_w, shrink);
    std::vector<int> near_r, near_c;
    if (!shrink) {
        near_r.resize(ori_h);
        near_c.resize(ori_w);
        const bool equal = (int64_t)ori_h * ori_w == (int64_t)img_h * img_w;
        for (int Y = 0; Y < ori_h; ++Y) near_r[Y] = label_src(Y, ori_h, img_h, equal);
        for (int X = 0; X < ori_w; ++X) near_c[X] = label_src(X, ori_w, img_w, equal);
    }

    std::vector<int> cats;
    std::vector<float> z, rowbuf;
    std::vector<unsigned char> on, colbuf;
    std::vector<BoxTap> ctaps((size_t)Wout * UP_MAX_TAPS);
    std::vector<int> cn(Wout);
    std::vector<unsigned char> tile;
    std::vector<float> work((size_t)nthreads * 256);
    for (int i = 0; i < nmaps; ++i) {
        const Box b = boxes[i];
        cats.clear();
        for (int c = 0; c < C; ++c)
            if (keep[(size_t)i * C + c]) cats.push_back(c);
        const int nk = (int)cats.size();
        if (nk == 0 || b.y0 >= b.y1) continue;
        const int hb = b.y1 - b.y0, wb = b.x1 - b.x0;
        // box-local confidences of the kept categories, zero outside the mask
        z.assign((size_t)hb * wb * nk, 0.0f);
        on.assign((size_t)hb * wb, 0);
        rowbuf.resize((size_t)nthreads * wb * nk);
        colbuf.resize((size_t)nthreads * wb);
        const unsigned char* m = masks.get() + (size_t)i * P;
        for (int y = 0; y < hb; ++y)
            for (int x = 0; x < wb; ++x) {
                const int64_t p = (int64_t)(b.y0 + y) * w + b.x0 + x;
                if (!m[p]) continue;
                on[(size_t)y * wb + x] = 1;
                const float* q = qT.get() + (size_t)p * C;
                float* dz = z.data() + ((size_t)y * wb + x) * nk;
                for (int k = 0; k < nk; ++k) dz[k] = q[cats[k]];
            }
        // output rows / columns that the box reaches
        int ylo = -1, yhi = -1, xlo = -1, xhi = -1;
        for (int Y = 0; Y < Hout; ++Y)
            if (taps_reach(rows[Y], b.y0, b.y1)) {
                if (ylo < 0) ylo = Y;
                yhi = Y;
            }
        for (int X = 0; X < Wout; ++X) {
            cn[X] = box_taps(cols[X], b.x0, b.x1, &ctaps[(size_t)X * UP_MAX_TAPS]);
            if (cn[X] > 0) {
                if (xlo < 0) xlo = X;
                xhi = X;
            }
        }
        if (ylo < 0 || xlo < 0) continue;
        unsigned char* out = part_maps + (size_t)i * HW;
        const int tw = xhi - xlo + 1;
        if (!shrink) tile.assign((size_t)(yhi - ylo + 1) * tw, 0);
#pragma omp parallel for schedule(static)
        for (int Y = ylo; Y <= yhi; ++Y) {
            const int tid = thread_id();
            BoxTap rt[UP_MAX_TAPS];
            const int nr = box_taps(rows[Y], b.y0, b.y1, rt);
            unsigned char* dst = shrink ? out + (int64_t)Y * ori_w + xlo : tile.data() + (size_t)(Y - ylo) * tw;
            label_row(rt, nr, ctaps.data(), cn.data(), xlo, xhi, z.data(), on.data(), wb, nk, cats.data(), mask_thr,
                      rowbuf.data() + (size_t)tid * wb * nk, colbuf.data() + (size_t)tid * wb,
                      work.data() + (size_t)tid * 256, dst);
        }
        if (!shrink) {
            // nearest on the labels: out[Y, X] = labels[near_r[Y], near_c[X]] (monotone index maps; -1 = outside the
            // labels of an equal-area map of another shape: stays background)
            int X0 = ori_w, X1 = -1;
            for (int X = 0; X < ori_w; ++X)
                if (near_c[X] >= xlo && near_c[X] <= xhi) {
                    X0 = std::min(X0, X);
                    X1 = X;
                }
            if (X1 < 0) continue;
#pragma omp parallel for schedule(static)
            for (int Y = 0; Y < ori_h; ++Y) {
                const int sy = near_r[Y];
                if (sy < ylo || sy > yhi) continue;
                const unsigned char* src = tile.data() + (size_t)(sy - ylo) * tw;
                unsigned char* dst = out + (int64_t)Y * ori_w;
                for (int X = X0; X <= X1; ++X) dst[X] = src[near_c[X] - xlo];
            }
        }
    }
    UP_TOC(t4, "finish");
    return UNIPARSER_OK;
}

}  // namespace

extern "C" {

UNIPARSER_API const char* uniparser_decode_error_string(int code) { return error_string(code); }

UNIPARSER_API int uniparser_decode_abi_version(void) { return UNIPARSER_DECODE_ABI_VERSION; }

UNIPARSER_API int uniparser_decode_cpu_has_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

UNIPARSER_API int uniparser_decode_peaks_cpu(const float* center_logits, int S, int K, float ctr_score,
                                             float* scores, int* grid_index, int* count) {
    if (!center_logits || !scores || !grid_index || !count) return UNIPARSER_ERR_NULL_POINTER;
    if (S < 1 || K < 1) return UNIPARSER_ERR_BAD_DIMS;
    if (S > 46340) return UNIPARSER_ERR_SIZE_OVERFLOW;
    if (is_nan(ctr_score)) return UNIPARSER_ERR_BAD_THRESHOLD;
    try {
        return peaks_impl(center_logits, S, K, ctr_score, scores, grid_index, count);
    } catch (const std::bad_alloc&) {
        return UNIPARSER_ERR_OUT_OF_MEMORY;
    }
}

UNIPARSER_API int uniparser_decode_cpu(const float* center_logits, int S, const float* ins, const float* sem,
                                       const float* seg_kernels, int D, int h, int w, int C, int K, float ctr_score,
                                       float mask_thr, float cate_score_thr, int img_h, int img_w, int ori_h,
                                       int ori_w, float* scores, int* grid_index, int* count, unsigned char* keep,
                                       unsigned char* part_maps, int max_maps) {
    if (!scores || !grid_index || !count || !keep) return UNIPARSER_ERR_NULL_POINTER;  // required here
    const int rc = check_decode_args(center_logits, S, ins, sem, seg_kernels, D, h, w, C, K, ctr_score, mask_thr,
                                     cate_score_thr, img_h, img_w, ori_h, ori_w, part_maps, max_maps);
    if (rc != UNIPARSER_OK) return rc;
    const int64_t lim = std::numeric_limits<int64_t>::max() / 4;
    if (S > 46340 || (int64_t)h * w > lim / D || (int64_t)ori_h * ori_w > lim / std::max(max_maps, 1) ||
        (int64_t)h * w > lim / 256)
        return UNIPARSER_ERR_SIZE_OVERFLOW;
    try {
        return decode_impl(center_logits, S, ins, sem, seg_kernels, D, h, w, C, K, ctr_score, mask_thr,
                           cate_score_thr, img_h, img_w, ori_h, ori_w, scores, grid_index, count, keep, part_maps,
                           max_maps);
    } catch (const std::bad_alloc&) {
        return UNIPARSER_ERR_OUT_OF_MEMORY;
    }
}

}  // extern "C"
