/*
 * The direct convolution's AVX-512 float32 register tile (8 x 32, the one
 * fc_tile_f32_avx512 runs) on its own, with its operands where a layer's
 * work puts them: the GEMM C[K x P] = A[K x C] . B[C x P] of a pointwise
 * layer, A (the weights) read in place MR rows at a time, B already packed
 * into panels [C][32] and C the output rows. What it measures is the tile's
 * rate when nothing else runs: packing, Python and the kernels' loops are
 * not in it. Sizes pick where the operands live: P = 32 keeps one B panel
 * in L1; P = 256 keeps B (C x 256 floats) in L2; P = 3072 streams B from
 * L3. Compare with `python -m fastconv peak`.
 *
 * Build and run from the repository root (x86-64 with AVX-512):
 *
 *     g++ -O3 -std=c++17 -I src/fastconv/_kernels tools/tuning/gemm_tile_bench.cpp \
 *         -o /tmp/gemm_tile_bench
 *     taskset -c 1 /tmp/gemm_tile_bench 64 256 256    # K C P [repeats]
 */
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "gemm_tile.hpp"

enum { MR = 8, NV = 2, VLEN = 16, NR = NV * VLEN };

__attribute__((target("avx512f,avx2,fma"), noinline)) static void
tile(fc_index kc, const float *a, fc_index lda, const float *b, float *c, fc_index ldc,
     int accumulate)
{
    fc_tile_vec<float, MR, NV, VLEN>(kc, fc_strided_a<float>{a, lda},
                                     fc_packed_rows<float, NR>{b}, c, ldc, accumulate, a);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s K C P [repeats]\n", argv[0]);
        return 2;
    }
    const fc_index K = std::atol(argv[1]) / MR * MR, C = std::atol(argv[2]);
    const fc_index P = std::atol(argv[3]) / NR * NR;
    const fc_index kc = C < 256 ? C : 256; /* the packed path's reduction chunk */
    const fc_index panels = P / NR;
    if (K <= 0 || C <= 0 || panels <= 0) {
        std::fprintf(stderr, "K >= %d, C >= 1 and P >= %d\n", MR, NR);
        return 2;
    }
    const double flop = 2.0 * K * C * P;
    const long repeats = argc > 4 ? std::atol(argv[4]) : (long)(2e10 / flop) + 1;
    float *a = (float *)std::aligned_alloc(64, sizeof(float) * K * C);
    float *b = (float *)std::aligned_alloc(64, sizeof(float) * C * P);
    float *c = (float *)std::aligned_alloc(64, sizeof(float) * K * P);
    for (fc_index i = 0; i < K * C; ++i) a[i] = 1e-3f;
    for (fc_index i = 0; i < C * P; ++i) b[i] = 1e-3f;
    double best = 1e30;
    for (int round = 0; round < 7; ++round) {
        const auto start = std::chrono::steady_clock::now();
        for (long r = 0; r < repeats; ++r)
            for (fc_index k0 = 0; k0 < C; k0 += kc)
                for (fc_index jp = 0; jp < panels; ++jp)
                    for (fc_index m0 = 0; m0 < K; m0 += MR)
                        tile(C - k0 < kc ? C - k0 : kc, a + m0 * C + k0, C,
                             b + k0 * P + jp * kc * NR, c + m0 * P + jp * NR, P, k0 > 0);
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (seconds < best) best = seconds;
    }
    std::printf("8 x 32 tile, K=%ld C=%ld P=%ld: %.1f GFLOP/s (best of 7 rounds of %ld)\n",
                (long)K, (long)C, (long)P, flop * repeats / best / 1e9, repeats);
    std::free(a);
    std::free(b);
    std::free(c);
    return 0;
}
