/*
 * Test-only host build of uniparser_decode_core.h (the rules shared by the CPU twin and the CUDA kernels), so
 * that tests can compare each rule with PyTorch directly: tests/test_kernels.py loads it with ctypes.
 * Not part of any shipped library.
 */
#include "../uniparser_decode_core.h"

using namespace uniparser::core;

extern "C" {

__attribute__((visibility("default"))) void probe_nearest_table(int out_size, int in_size, int* dst) {
    for (int i = 0; i < out_size; ++i) dst[i] = nearest_src(i, out_size, in_size);
}

__attribute__((visibility("default"))) void probe_grid_to_feature(int S, int h, int w, long long* dst) {
    for (int g = 0; g < S * S; ++g) dst[g] = (long long)grid_to_feature(g, S, h, w);
}

/* survives_2x2 and is_local_max_5x5 over a whole S x S map: out[i] = 1 / 0 */
__attribute__((visibility("default"))) void probe_peak_tests(const float* s, int S, unsigned char* surv,
                                                             unsigned char* lmax) {
    for (int y = 0; y < S; ++y)
        for (int x = 0; x < S; ++x) {
            surv[y * S + x] = survives_2x2(s, S, y, x) ? 1 : 0;
            lmax[y * S + x] = is_local_max_5x5(s, S, y, x) ? 1 : 0;
        }
}

__attribute__((visibility("default"))) int probe_final_shrink(int img_h, int img_w, int ori_h, int ori_w) {
    return final_shrink(img_h, img_w, ori_h, ori_w) ? 1 : 0;
}

__attribute__((visibility("default"))) int probe_part_label(float best, int best_class, float mask_thr) {
    return part_label(best, best_class, mask_thr);
}

__attribute__((visibility("default"))) int probe_maskness_tests(float p, float mask_thr) {
    return (maskness_pos(p, mask_thr) ? 1 : 0) | (maskness_count(p) ? 2 : 0);
}

}  // extern "C"
