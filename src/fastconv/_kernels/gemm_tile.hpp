/*
 * The register-blocked GEMM tile, shared by the direct convolution and
 * Winograd's GEMMs.
 *
 * One tile computes C[MR x NR] (+)= A[MR x kc] . B[kc x NR] where
 *   A is MR weight rows (MR output channels), read in place `lda` apart, or
 *     for Winograd a packed panel laid out [kc][MR],
 *   B is a packed input panel laid out [kc][NR] (NR output pixels per step),
 *     or input rows read in place (rows.hpp),
 *   C is the output, rows MR output channels apart by `ldc` elements.
 * The MR x NR accumulators live in vector registers for the whole reduction,
 * so every B vector loaded is reused MR times and every broadcast weight NR
 * times. The direct tiles and Winograd's GEMM tile are one template on
 * different A and B accessors; the channel-lanes tile
 * (channel_lanes_tile.hpp) is the same template again, with pixels as A.
 *
 * This header holds the templates and the macros that define one function
 * per (instruction set, dtype); cpu_kernels.hpp instantiates them and
 * cpu_dispatch.hpp calls the level in use. Floating-point contraction
 * (a*b+c -> fma) is the only liberty taken; no -ffast-math, so NaN and Inf
 * propagate as IEEE arithmetic says.
 */
#ifndef FASTCONV_GEMM_TILE_HPP
#define FASTCONV_GEMM_TILE_HPP

#include "platform.hpp"

/* Where A(k, m), the weight of the tile's output channel m for reduction
 * step k, is: the direct convolution reads the weight rows in place, `lda`
 * apart (no packing, so a one-off call never copies its weights); Winograd's
 * transformed weights are packed panels [kc][MR]. Both read as fast:
 * each broadcast is one load, and MR row streams prefetch as well as one. */
template <typename T>
struct fc_strided_a {
    const T *a;
    fc_index lda;
    FC_ALWAYS_INLINE T at(fc_index k, int m) const { return a[m * lda + k]; }
};

template <typename T, int MR>
struct fc_packed_a {
    const T *a;
    FC_ALWAYS_INLINE T at(fc_index k, int m) const { return a[k * MR + m]; }
};

/* Where row k of a tile's B panel starts: rows of a packed panel are NR
 * apart; in place (rows.hpp), row k is the input row segment of kernel tap
 * k, at base + offsets[k], so the input is never copied once per tap. */
template <typename T, int NR>
struct fc_packed_rows {
    const T *b;
    FC_ALWAYS_INLINE const T *row(fc_index k) const { return b + k * NR; }
};


template <typename T>
struct fc_offset_rows {
    const T *base;
    const fc_index *offsets;
    FC_ALWAYS_INLINE const T *row(fc_index k) const { return base + offsets[k]; }
};

#if FC_HAVE_VECTOR_EXTENSIONS
/* VLEN elements of T in one vector register; NV vectors span NR = NV*VLEN
 * output pixels. `accumulate` = 0 starts from bias[m] (first reduction chunk),
 * 1 adds to what C already holds (later chunks). */
template <typename T, int MR, int NV, int VLEN, typename A, typename Rows>
static FC_ALWAYS_INLINE void fc_tile_vec(fc_index kc, A a, Rows b, T *c, fc_index ldc,
                                         int accumulate, const T *bias)
{
    typedef T vec __attribute__((vector_size(VLEN * sizeof(T))));
    /* Output rows and packed panels need not be vector-aligned. */
    typedef T uvec __attribute__((vector_size(VLEN * sizeof(T)), aligned(sizeof(T))));
    vec acc[MR][NV];
    if (accumulate) {
        for (int m = 0; m < MR; ++m)
            for (int v = 0; v < NV; ++v)
                acc[m][v] = *(const uvec *)(c + m * ldc + v * VLEN);
    } else {
        for (int m = 0; m < MR; ++m)
            for (int v = 0; v < NV; ++v)
                acc[m][v] = (vec){} + bias[m];
    }
    for (fc_index k = 0; k < kc; ++k) {
        const T *row = b.row(k);
        vec bv[NV];
        for (int v = 0; v < NV; ++v)
            bv[v] = *(const uvec *)(row + v * VLEN);
        for (int m = 0; m < MR; ++m) {
            const T w = a.at(k, m);
            for (int v = 0; v < NV; ++v)
                acc[m][v] += w * bv[v];
        }
    }
    for (int m = 0; m < MR; ++m)
        for (int v = 0; v < NV; ++v)
            *(uvec *)(c + m * ldc + v * VLEN) = acc[m][v];
}
#endif

/* Scalar fallback, also the exact int64 kernel. */
template <typename T, int MR, int NR, typename A, typename Rows>
static FC_ALWAYS_INLINE void fc_tile_scalar(fc_index kc, A a, Rows b, T *c, fc_index ldc,
                                            int accumulate, const T *bias)
{
    T acc[MR][NR];
    for (int m = 0; m < MR; ++m)
        for (int n = 0; n < NR; ++n)
            acc[m][n] = accumulate ? c[m * ldc + n] : bias[m];
    for (fc_index k = 0; k < kc; ++k) {
        const T *row = b.row(k);
        for (int m = 0; m < MR; ++m) {
            const T w = a.at(k, m);
            for (int n = 0; n < NR; ++n)
                acc[m][n] += w * row[n];
        }
    }
    for (int m = 0; m < MR; ++m)
        for (int n = 0; n < NR; ++n)
            c[m * ldc + n] = acc[m][n];
}

/* ------------------------------------------------------------------------ */
/* Three functions per (instruction set, dtype): the direct convolution's    */
/* tile on a packed B panel (fc_tile) and on B rows in place                 */
/* (fc_tile_indirect), both with the weights in place, and the GEMM tile on  */
/* packed A and B panels (fc_gemm_tile, for Winograd). Tile shapes leave     */
/* room in the register file: 16 (8 x 32) or 24 (12 x 32) of 32 zmm          */
/* accumulators for AVX-512, 12 of 16 ymm for AVX2.                          */

#define FC_TILE_ARGS(T)                                                        \
    fc_index kc, const T *a, fc_index lda, const T *b, T *c, fc_index ldc,    \
        int accumulate, const T *bias
#define FC_TILE_INDIRECT_ARGS(T)                                               \
    fc_index kc, const T *a, fc_index lda, const T *base,                     \
        const fc_index *offsets, T *c, fc_index ldc, int accumulate,          \
        const T *bias
#define FC_GEMM_ARGS(T)                                                        \
    fc_index kc, const T *a, const T *b, T *c, fc_index ldc, int accumulate,  \
        const T *bias
#define FC_TILE_REST c, ldc, accumulate, bias
typedef void (*fc_tile_f32_fn)(FC_TILE_ARGS(float));
typedef void (*fc_tile_f64_fn)(FC_TILE_ARGS(double));
typedef void (*fc_tile_indirect_f32_fn)(FC_TILE_INDIRECT_ARGS(float));
typedef void (*fc_tile_indirect_f64_fn)(FC_TILE_INDIRECT_ARGS(double));
typedef void (*fc_gemm_f32_fn)(FC_GEMM_ARGS(float));
typedef void (*fc_gemm_f64_fn)(FC_GEMM_ARGS(double));

/* `KERNEL` is fc_tile_vec<T, MR, NV, VLEN> or fc_tile_scalar<T, MR, NR>.
 * Winograd's GEMM also has a tile of half the width (NARROW, on the same A
 * panels), for batches of few tiles: 16 tiles fill half of a 32-wide panel. */
#define FC_DEFINE_GEMM_TILE(SUFFIX, ATTR, T, MR, NR, KERNEL, NARROW)           \
    ATTR static void fc_gemm_##SUFFIX(FC_GEMM_ARGS(T))                         \
    { KERNEL(kc, (fc_packed_a<T, MR>{a}), (fc_packed_rows<T, NR>{b}), FC_TILE_REST); } \
    ATTR static void fc_gemm_narrow_##SUFFIX(FC_GEMM_ARGS(T))                  \
    { NARROW(kc, (fc_packed_a<T, MR>{a}), (fc_packed_rows<T, NR / 2>{b}), FC_TILE_REST); }
#define FC_DEFINE_DIRECT_TILES(SUFFIX, ATTR, T, NR, KERNEL)                    \
    ATTR static void fc_tile_##SUFFIX(FC_TILE_ARGS(T))                         \
    { KERNEL(kc, (fc_strided_a<T>{a, lda}), (fc_packed_rows<T, NR>{b}), FC_TILE_REST); } \
    ATTR static void fc_tile_indirect_##SUFFIX(FC_TILE_INDIRECT_ARGS(T))       \
    { KERNEL(kc, (fc_strided_a<T>{a, lda}), (fc_offset_rows<T>{base, offsets}),          \
             FC_TILE_REST); }
/* A wider tile on B rows in place for the strided rows' reduction chunks
 * (AVX-512 float32, 8 x 48: 24 accumulators, each B row's three vectors
 * meet eight broadcasts): 7% faster than 8 x 32 with B in L1. */
#define FC_DEFINE_WIDE_INDIRECT_TILE(SUFFIX, ATTR, T, KERNEL)                  \
    ATTR static void fc_tile_indirect_wide_##SUFFIX(FC_TILE_INDIRECT_ARGS(T))  \
    { KERNEL(kc, (fc_strided_a<T>{a, lda}), (fc_offset_rows<T>{base, offsets}),          \
             FC_TILE_REST); }
#define FC_DEFINE_TILE_SET(SUFFIX, ATTR, T, MR, NR, KERNEL, NARROW)            \
    FC_DEFINE_DIRECT_TILES(SUFFIX, ATTR, T, NR, KERNEL)                        \
    FC_DEFINE_GEMM_TILE(SUFFIX, ATTR, T, MR, NR, KERNEL, NARROW)
/* NV even: the narrow GEMM tile is NV / 2 vectors wide. */
#define FC_DEFINE_TILES(SUFFIX, ATTR, T, MR, NV, VLEN)                        \
    FC_DEFINE_TILE_SET(SUFFIX, ATTR, T, MR, NV * VLEN, (fc_tile_vec<T, MR, NV, VLEN>), \
                       (fc_tile_vec<T, MR, NV / 2, VLEN>))


#endif /* FASTCONV_GEMM_TILE_HPP */
