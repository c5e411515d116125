/*
 * Winograd minimal filtering F(m x m, 3 x 3) for m = 2, 4, 6 (Lavin & Gray,
 * "Fast Algorithms for Convolutional Neural Networks", 2016).
 *
 * For an alpha x alpha input tile d (alpha = m + 2) and a 3 x 3 filter g,
 *     Y = A^T [ (G g G^T) (.) (B^T d B) ] A          ((.) = element-wise)
 * is the m x m cross-correlation output of the tile. Over C channels the
 * element-wise products become alpha^2 independent GEMMs (K x C) . (C x tiles),
 * done by the register-blocked micro-kernels of microkernel.hpp.
 *
 * The matrices below are the Toom-Cook construction over the listed points
 * (the last one infinity): A^T[i][j] = p_j^i, G[j][k] = p_j^k / prod_{l!=j}
 * (p_j - p_l), row j of B^T the coefficients of prod_{l!=j} (x - p_l), the
 * last row those of prod_l (x - p_l). They were generated with exact
 * fractions; every entry of B^T and A^T is a dyadic rational, so the data
 * transforms are exact up to rounding of the sums. tests/test_winograd.py
 * re-derives them independently.
 *
 * This file holds the data transforms; they run on blocks of NR tiles at once
 * (the micro-kernel's pixel width) with the tiles in the vector lanes.
 * Coefficients that are zero are skipped at compile time, so a NaN or Inf in
 * the input reaches the outputs of its tile through every nonzero path
 * (the whole tile, in practice) but is never silently dropped.
 */
#ifndef FASTCONV_WINOGRAD_HPP
#define FASTCONV_WINOGRAD_HPP

#include "microkernel.hpp"
#if FC_HAVE_X86_DISPATCH
#include <immintrin.h>
#endif

template <int M> struct fc_winograd_matrices;

/* F(2x2, 3x3), interpolation points 0, +1, -1, inf. */
template <> struct fc_winograd_matrices<2> {
    static constexpr int alpha = 4;
    static constexpr double BT[4][4] = {
        {-1.0, 0.0, 1.0, 0.0},
        {0.0, 1.0, 1.0, 0.0},
        {0.0, -1.0, 1.0, 0.0},
        {0.0, -1.0, 0.0, 1.0}};
    static constexpr double G[4][3] = {
        {-1.0, 0.0, 0.0},
        {1.0 / 2.0, 1.0 / 2.0, 1.0 / 2.0},
        {1.0 / 2.0, -1.0 / 2.0, 1.0 / 2.0},
        {0.0, 0.0, 1.0}};
    static constexpr double AT[2][4] = {
        {1.0, 1.0, 1.0, 0.0},
        {0.0, 1.0, -1.0, 1.0}};
};

/* F(4x4, 3x3), interpolation points 0, +1, -1, +2, -2, inf. */
template <> struct fc_winograd_matrices<4> {
    static constexpr int alpha = 6;
    static constexpr double BT[6][6] = {
        {4.0, 0.0, -5.0, 0.0, 1.0, 0.0},
        {0.0, -4.0, -4.0, 1.0, 1.0, 0.0},
        {0.0, 4.0, -4.0, -1.0, 1.0, 0.0},
        {0.0, -2.0, -1.0, 2.0, 1.0, 0.0},
        {0.0, 2.0, -1.0, -2.0, 1.0, 0.0},
        {0.0, 4.0, 0.0, -5.0, 0.0, 1.0}};
    static constexpr double G[6][3] = {
        {1.0 / 4.0, 0.0, 0.0},
        {-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0},
        {-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0},
        {1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0},
        {1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0},
        {0.0, 0.0, 1.0}};
    static constexpr double AT[4][6] = {
        {1.0, 1.0, 1.0, 1.0, 1.0, 0.0},
        {0.0, 1.0, -1.0, 2.0, -2.0, 0.0},
        {0.0, 1.0, 1.0, 4.0, 4.0, 0.0},
        {0.0, 1.0, -1.0, 8.0, -8.0, 1.0}};
};

/* F(6x6, 3x3), interpolation points 0, +1, -1, +2, -2, +1/2, -1/2, inf. */
template <> struct fc_winograd_matrices<6> {
    static constexpr int alpha = 8;
    static constexpr double BT[8][8] = {
        {-1.0, 0.0, 21.0 / 4.0, 0.0, -21.0 / 4.0, 0.0, 1.0, 0.0},
        {0.0, 1.0, 1.0, -17.0 / 4.0, -17.0 / 4.0, 1.0, 1.0, 0.0},
        {0.0, -1.0, 1.0, 17.0 / 4.0, -17.0 / 4.0, -1.0, 1.0, 0.0},
        {0.0, 1.0 / 2.0, 1.0 / 4.0, -5.0 / 2.0, -5.0 / 4.0, 2.0, 1.0, 0.0},
        {0.0, -1.0 / 2.0, 1.0 / 4.0, 5.0 / 2.0, -5.0 / 4.0, -2.0, 1.0, 0.0},
        {0.0, 2.0, 4.0, -5.0 / 2.0, -5.0, 1.0 / 2.0, 1.0, 0.0},
        {0.0, -2.0, 4.0, 5.0 / 2.0, -5.0, -1.0 / 2.0, 1.0, 0.0},
        {0.0, -1.0, 0.0, 21.0 / 4.0, 0.0, -21.0 / 4.0, 0.0, 1.0}};
    static constexpr double G[8][3] = {
        {-1.0, 0.0, 0.0},
        {-2.0 / 9.0, -2.0 / 9.0, -2.0 / 9.0},
        {-2.0 / 9.0, 2.0 / 9.0, -2.0 / 9.0},
        {1.0 / 90.0, 1.0 / 45.0, 2.0 / 45.0},
        {1.0 / 90.0, -1.0 / 45.0, 2.0 / 45.0},
        {32.0 / 45.0, 16.0 / 45.0, 8.0 / 45.0},
        {32.0 / 45.0, -16.0 / 45.0, 8.0 / 45.0},
        {0.0, 0.0, 1.0}};
    static constexpr double AT[6][8] = {
        {1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0},
        {0.0, 1.0, -1.0, 2.0, -2.0, 1.0 / 2.0, -1.0 / 2.0, 0.0},
        {0.0, 1.0, 1.0, 4.0, 4.0, 1.0 / 4.0, 1.0 / 4.0, 0.0},
        {0.0, 1.0, -1.0, 8.0, -8.0, 1.0 / 8.0, -1.0 / 8.0, 0.0},
        {0.0, 1.0, 1.0, 16.0, 16.0, 1.0 / 16.0, 1.0 / 16.0, 0.0},
        {0.0, 1.0, -1.0, 32.0, -32.0, 1.0 / 32.0, -1.0 / 32.0, 1.0}};
};

/* Tiles are numbered row-major over a tiles_h x tiles_w grid. The gathers and
 * scatters go through a block of them run by run: the tiles from `tile` to
 * the end of its tile row (at most `left` of them) read one stretch of each
 * input row and write one stretch of each output row. */
struct fc_tile_run {
    fc_index th, tw, run;
};

static inline fc_tile_run fc_tile_run_at(fc_index tile, fc_index left, fc_index tiles_w)
{
    fc_tile_run r;
    r.th = tile / tiles_w;
    r.tw = tile - r.th * tiles_w;
    r.run = tiles_w - r.tw < left ? tiles_w - r.tw : left;
    return r;
}

/* ------------------------------------------------------------------------ */
/* Gather: the alpha x alpha input tiles of one channel into scratch.        */
/*                                                                          */
/* Tiles are numbered row-major over a tiles_h x tiles_w grid; tile t covers */
/* input rows t_h*m - pad_top + [0, alpha) and columns t_w*m - pad_left +    */
/* [0, alpha), zero outside the image. Tiles tile0 .. tile0 + n_tiles go to  */
/* lanes lane0 .. lane0 + n_tiles of scratch[a][b][NR], zeros included (a  */
/* panel may hold tiles of several images; the caller zeroes unused lanes).  */

template <int M, typename T>
static FC_ALWAYS_INLINE void fc_wino_gather(const T *channel, fc_index height, fc_index width,
                                  fc_index pad_top, fc_index pad_left, fc_index tiles_w,
                                  fc_index tile0, fc_index n_tiles, fc_index lane0,
                                  fc_index nr, T *scratch)
{
    const int alpha = M + 2;
    for (fc_index q = 0; q < n_tiles;) {
        const fc_tile_run r = fc_tile_run_at(tile0 + q, n_tiles - q, tiles_w);
        const fc_index th = r.th, tw = r.tw, run = r.run;
        /* Tiles [t_lo, t_hi) of the run lie inside the image columns. */
        const fc_index col0 = tw * M - pad_left;
        fc_index t_lo = col0 >= 0 ? 0 : (-col0 + M - 1) / M;
        fc_index t_hi = width - alpha - col0 >= 0 ? (width - alpha - col0) / M + 1 : 0;
        if (t_lo > run) t_lo = run;
        if (t_hi > run) t_hi = run;
        if (t_hi < t_lo) t_hi = t_lo;
        for (int a = 0; a < alpha; ++a) {
            const fc_index ih = th * M - pad_top + a;
            T *dst = scratch + (fc_index)a * alpha * nr + lane0 + q;
            if (ih < 0 || ih >= height) {
                for (int b = 0; b < alpha; ++b)
                    std::memset(dst + (fc_index)b * nr, 0, sizeof(T) * run);
                continue;
            }
            const T *row = channel + ih * width;
#if defined(__GNUC__)
            /* The same row of the next channel plane, read next: the
             * hardware prefetcher does not follow the jump between planes
             * (the gather stalled on these loads). Past the last plane the
             * hint is harmless: prefetches do not fault. */
            for (fc_index q = 0; q < run * M + 2; q += 64 / (fc_index)sizeof(T))
                __builtin_prefetch(row + height * width + col0 + q);
#endif
            for (int b = 0; b < alpha; ++b) {
                const T *src = row + col0 + b;
                T *d = dst + (fc_index)b * nr;
                for (fc_index t = t_lo; t < t_hi; ++t)
                    d[t] = src[t * M];
                /* Tiles that straddle the left [0, t_lo) or right [t_hi, run)
                 * image border. */
                for (fc_index t = 0; t < run; ++t) {
                    if (t == t_lo) t = t_hi;
                    if (t >= run) break;
                    const fc_index iw = col0 + t * M + b;
                    d[t] = (iw >= 0 && iw < width) ? row[iw] : (T)0;
                }
            }
        }
        q += run;
    }
}

/* ------------------------------------------------------------------------ */
/* Input transform of a gathered panel: v[xi * xi_stride + q] = (B^T d B)[xi] */
/* for the NR lanes q. The scratch is overwritten.                           */

template <typename T, int M, int LANES>
static FC_ALWAYS_INLINE void fc_wino_input_impl(fc_index nr, T *scratch, T *v,
                                                fc_index xi_stride)
{
    typedef fc_winograd_matrices<M> W;
    const int alpha = W::alpha;
    typedef T vec __attribute__((vector_size(LANES * sizeof(T))));
    typedef T uvec __attribute__((vector_size(LANES * sizeof(T)), aligned(sizeof(T))));
    /* Rows: scratch[a][j] = sum_b d[a][b] * B[b][j] = sum_b BT[j][b] d[a][b]. */
    for (int a = 0; a < alpha; ++a) {
        T *rowp = scratch + (fc_index)a * alpha * nr;
        for (fc_index q0 = 0; q0 < nr; q0 += LANES) {
            vec x[alpha], y[alpha];
#pragma GCC unroll 8
            for (int b = 0; b < alpha; ++b) x[b] = *(const uvec *)(rowp + b * nr + q0);
#pragma GCC unroll 8
            for (int j = 0; j < alpha; ++j) {
                y[j] = (vec){};
#pragma GCC unroll 8
                for (int b = 0; b < alpha; ++b)
                    if (W::BT[j][b] != 0.0) y[j] += (T)W::BT[j][b] * x[b];
            }
#pragma GCC unroll 8
            for (int j = 0; j < alpha; ++j) *(uvec *)(rowp + j * nr + q0) = y[j];
        }
    }
    /* Columns: v[i][j] = sum_a BT[i][a] scratch[a][j]. */
    for (int j = 0; j < alpha; ++j) {
        for (fc_index q0 = 0; q0 < nr; q0 += LANES) {
            vec x[alpha];
#pragma GCC unroll 8
            for (int a = 0; a < alpha; ++a)
                x[a] = *(const uvec *)(scratch + ((fc_index)a * alpha + j) * nr + q0);
#pragma GCC unroll 8
            for (int i = 0; i < alpha; ++i) {
                vec y = (vec){};
#pragma GCC unroll 8
                for (int a = 0; a < alpha; ++a)
                    if (W::BT[i][a] != 0.0) y += (T)W::BT[i][a] * x[a];
                *(uvec *)(v + (fc_index)(i * alpha + j) * xi_stride + q0) = y;
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Output transform of one output channel for a panel of NR tiles.          */
/* m_k[xi * xi_stride + q] holds the GEMM result of lane q for this channel; */
/* y[i][j][q] = (A^T M A)[i][j] + bias (then max(., 0) if relu) goes to      */
/* scratch + alpha * m * NR, laid out [m][m][NR]. Returns whether any y is   */
/* NaN or infinite: the transforms can overflow where the direct sum is      */
/* finite, and "auto" then recomputes the call directly (y * 0 is 0 for      */
/* every finite y and NaN otherwise; one multiply-add per output vector).    */

template <typename T, int M, int LANES>
static FC_ALWAYS_INLINE int fc_wino_output_impl(const T *m_k, fc_index xi_stride,
                                                 T bias, fc_index nr, T *scratch,
                                                 int relu)
{
    typedef fc_winograd_matrices<M> W;
    const int alpha = W::alpha;
    typedef T vec __attribute__((vector_size(LANES * sizeof(T))));
    typedef T uvec __attribute__((vector_size(LANES * sizeof(T)), aligned(sizeof(T))));
    /* scratch[a][j][q] = sum_b M[a][b] AT[j][b]   (alpha x m), then
     * y[i][j][q] = bias + sum_a AT[i][a] scratch[a][j]   (m x m). */
    for (int a = 0; a < alpha; ++a) {
        for (fc_index q0 = 0; q0 < nr; q0 += LANES) {
            vec x[alpha];
#pragma GCC unroll 8
            for (int b = 0; b < alpha; ++b)
                x[b] = *(const uvec *)(m_k + (fc_index)(a * alpha + b) * xi_stride + q0);
#pragma GCC unroll 8
            for (int j = 0; j < M; ++j) {
                vec y = (vec){};
#pragma GCC unroll 8
                for (int b = 0; b < alpha; ++b)
                    if (W::AT[j][b] != 0.0) y += (T)W::AT[j][b] * x[b];
                *(uvec *)(scratch + ((fc_index)a * M + j) * nr + q0) = y;
            }
        }
    }
    T *y_out = scratch + (fc_index)alpha * M * nr;
    vec nonfinite = (vec){};
    for (int j = 0; j < M; ++j) {
        for (fc_index q0 = 0; q0 < nr; q0 += LANES) {
            vec x[alpha];
#pragma GCC unroll 8
            for (int a = 0; a < alpha; ++a)
                x[a] = *(const uvec *)(scratch + ((fc_index)a * M + j) * nr + q0);
#pragma GCC unroll 8
            for (int i = 0; i < M; ++i) {
                vec y = (vec){} + bias;
#pragma GCC unroll 8
                for (int a = 0; a < alpha; ++a)
                    if (W::AT[i][a] != 0.0) y += (T)W::AT[i][a] * x[a];
                if (relu) {
                    /* max(y, 0) that keeps NaN, as torch.relu does. */
                    y = y < 0 ? (vec){} : y;
                }
                nonfinite += y * (T)0;
                *(uvec *)(y_out + ((fc_index)i * M + j) * nr + q0) = y;
            }
        }
    }
    for (int q = 0; q < LANES; ++q)
        if (nonfinite[q] != nonfinite[q]) return 1;
    return 0;
}

/* Scatter lanes lane0 .. lane0 + n_tiles of y[m][m][NR] (the output
 * transform's result) to tiles tile0 .. of one output channel, clipping the
 * last row/column of tiles to out_h x out_w. */
template <int M, typename T>
static FC_ALWAYS_INLINE void fc_wino_scatter(const T *y, T *out_channel, fc_index out_h,
                                   fc_index out_w, fc_index tiles_w, fc_index tile0,
                                   fc_index n_tiles, fc_index lane0, fc_index nr)
{
    for (fc_index q = 0; q < n_tiles;) {
        const fc_tile_run r = fc_tile_run_at(tile0 + q, n_tiles - q, tiles_w);
        const fc_index th = r.th, tw = r.tw, run = r.run;
        fc_index full = (out_w - tw * M) / M; /* tiles of the run with m columns */
        if (full > run) full = run;
        for (int i = 0; i < M; ++i) {
            const fc_index oh = th * M + i;
            if (oh >= out_h) break;
            T *row = out_channel + oh * out_w + tw * M;
            const T *src = y + (fc_index)i * M * nr + lane0 + q;
#if defined(__GNUC__)
            /* The same output row of the next channel, written next (for
             * writing): the hardware prefetcher does not follow the jump
             * between planes. Past the last plane the hint is harmless. */
            for (fc_index p = 0; p < run * M; p += 64 / (fc_index)sizeof(T))
                __builtin_prefetch(row + out_h * out_w + p, 1);
#endif
            for (fc_index t = 0; t < full; ++t)
#pragma GCC unroll 8
                for (int j = 0; j < M; ++j) row[t * M + j] = src[(fc_index)j * nr + t];
            for (fc_index t = full; t < run; ++t)
                for (int j = 0; j < M && (tw + t) * M + j < out_w; ++j)
                    row[t * M + j] = src[(fc_index)j * nr + t];
        }
        q += run;
    }
}

/* Weight transform of one 3x3 filter to alpha x alpha, in double. */
template <int M>
static inline void fc_wino_filter(const double g[9], double u[(M + 2) * (M + 2)])
{
    typedef fc_winograd_matrices<M> W;
    const int alpha = W::alpha;
    double tmp[alpha][3];
    for (int i = 0; i < alpha; ++i)
        for (int k = 0; k < 3; ++k)
            tmp[i][k] = W::G[i][0] * g[0 * 3 + k] + W::G[i][1] * g[1 * 3 + k] +
                        W::G[i][2] * g[2 * 3 + k];
    for (int i = 0; i < alpha; ++i)
        for (int j = 0; j < alpha; ++j)
            u[i * alpha + j] = tmp[i][0] * W::G[j][0] + tmp[i][1] * W::G[j][1] +
                               tmp[i][2] * W::G[j][2];
}

static inline int fc_wino_alpha(int m) { return m + 2; }

/* Transform the filters of one MR-row panel of a group into the packed
 * U[xi][K_padded / mr][C][mr] (the micro-kernel's A panels, xi planes
 * xi_stride apart). `weight` points at the group's (K/groups, C, 3, 3) slab;
 * rows past `out_channels` are zero. Computed in double with the mr filters
 * of a panel in the lanes of two 8-double vectors (zero coefficients of G
 * skipped at compile time); each (c, xi) then writes mr contiguous values,
 * so the 16-64 planes fill as sequential streams. */
#define FC_MR_MAX 16
template <int M, typename T>
static FC_ALWAYS_INLINE void fc_wino_pack_panel(const T *weight, fc_index out_channels,
                                                fc_index channels, int mr, fc_index panel,
                                                T *u_packed, fc_index xi_stride)
{
    typedef fc_winograd_matrices<M> W;
    const int alpha = W::alpha;
    typedef double dvec __attribute__((vector_size(64)));
    const int NV = FC_MR_MAX / 8;
    const fc_index k0 = panel * mr;
    const int lanes = out_channels - k0 < mr ? (int)(out_channels - k0) : mr;
    double g_lanes[9][FC_MR_MAX] __attribute__((aligned(64)));
    T u_lanes[FC_MR_MAX];
    for (int i = 0; i < 9; ++i)
        for (int lane = lanes; lane < FC_MR_MAX; ++lane) g_lanes[i][lane] = 0.0;
    for (fc_index c = 0; c < channels; ++c) {
        for (int lane = 0; lane < lanes; ++lane) {
            const T *filter = weight + ((k0 + lane) * channels + c) * 9;
            for (int i = 0; i < 9; ++i) g_lanes[i][lane] = (double)filter[i];
        }
        T *dst = u_packed + (panel * channels + c) * mr;
        for (int h = 0; h < NV; ++h) {
            dvec g[9], tmp[alpha][3];
            for (int i = 0; i < 9; ++i) g[i] = *(const dvec *)&g_lanes[i][8 * h];
            /* tmp = G g (alpha x 3), then u = tmp G^T (alpha x alpha). */
#pragma GCC unroll 8
            for (int i = 0; i < alpha; ++i)
                for (int k = 0; k < 3; ++k) {
                    tmp[i][k] = (dvec){};
                    for (int l = 0; l < 3; ++l)
                        if (W::G[i][l] != 0.0) tmp[i][k] += W::G[i][l] * g[l * 3 + k];
                }
#pragma GCC unroll 8
            for (int i = 0; i < alpha; ++i)
#pragma GCC unroll 8
                for (int j = 0; j < alpha; ++j) {
                    dvec u = (dvec){};
                    for (int k = 0; k < 3; ++k)
                        if (W::G[j][k] != 0.0) u += W::G[j][k] * tmp[i][k];
                    const int n = mr - 8 * h < 8 ? mr - 8 * h : 8;
                    for (int lane = 0; lane < n; ++lane) u_lanes[lane] = (T)u[lane];
                    if (n > 0)
                        std::memcpy(dst + (fc_index)(i * alpha + j) * xi_stride + 8 * h,
                                    u_lanes, sizeof(T) * n);
                }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Instantiation per (instruction set, dtype, m) and run-time dispatch.     */

typedef void (*fc_wino_input_f32_fn)(fc_index, float *, float *, fc_index);
typedef void (*fc_wino_input_f64_fn)(fc_index, double *, double *, fc_index);
typedef int (*fc_wino_output_f32_fn)(const float *, fc_index, float, fc_index, float *, int);
typedef int (*fc_wino_output_f64_fn)(const double *, fc_index, double, fc_index, double *, int);
#define FC_WINO_GATHER_ARGS(T)                                                 \
    const T *channel, fc_index height, fc_index width, fc_index pad_top,      \
        fc_index pad_left, fc_index tiles_w, fc_index tile0, fc_index n_tiles, \
        fc_index lane0, fc_index nr, T *scratch
#define FC_WINO_GATHER_PASS                                                    \
    channel, height, width, pad_top, pad_left, tiles_w, tile0, n_tiles, lane0, \
        nr, scratch
#define FC_WINO_SCATTER_ARGS(T)                                                \
    const T *y, T *out_channel, fc_index out_h, fc_index out_w,               \
        fc_index tiles_w, fc_index tile0, fc_index n_tiles, fc_index lane0,   \
        fc_index nr
#define FC_WINO_SCATTER_PASS                                                   \
    y, out_channel, out_h, out_w, tiles_w, tile0, n_tiles, lane0, nr
#define FC_WINO_PACK_ARGS(T)                                                   \
    const T *weight, fc_index out_channels, fc_index channels, int mr,        \
        fc_index panel, T *u_packed, fc_index xi_stride
#define FC_WINO_PACK_PASS weight, out_channels, channels, mr, panel, u_packed, xi_stride
typedef void (*fc_wino_pack_f32_fn)(FC_WINO_PACK_ARGS(float));
typedef void (*fc_wino_pack_f64_fn)(FC_WINO_PACK_ARGS(double));
typedef void (*fc_wino_gather_f32_fn)(FC_WINO_GATHER_ARGS(float));
typedef void (*fc_wino_gather_f64_fn)(FC_WINO_GATHER_ARGS(double));
typedef void (*fc_wino_scatter_f32_fn)(FC_WINO_SCATTER_ARGS(float));
typedef void (*fc_wino_scatter_f64_fn)(FC_WINO_SCATTER_ARGS(double));

/* The transforms for m = 2, 4, 6 per ISA and dtype; VBYTES is the vector
 * width in bytes. */
#define FC_WINO_DEFINE(SUFFIX, ATTR, T, VBYTES)                                \
    template <int M> ATTR static void fc_wino_input_##SUFFIX(                  \
        fc_index nr, T *scratch, T *v, fc_index xi_stride)                     \
    { fc_wino_input_impl<T, M, VBYTES / sizeof(T)>(nr, scratch, v, xi_stride); } \
    template <int M> ATTR static int fc_wino_output_##SUFFIX(                  \
        const T *m_k, fc_index xi_stride, T bias, fc_index nr, T *scratch, int relu) \
    { return fc_wino_output_impl<T, M, VBYTES / sizeof(T)>(m_k, xi_stride, bias, nr, scratch, relu); } \
    /* The strided copies vectorise (with permutes) at each ISA too. */      \
    template <int M> ATTR static void fc_wino_gather_##SUFFIX(                 \
        FC_WINO_GATHER_ARGS(T))                                                \
    { fc_wino_gather<M, T>(FC_WINO_GATHER_PASS); }                             \
    template <int M> ATTR static void fc_wino_scatter_##SUFFIX(                \
        FC_WINO_SCATTER_ARGS(T))                                               \
    { fc_wino_scatter<M, T>(FC_WINO_SCATTER_PASS); }                           \
    template <int M> ATTR static void fc_wino_pack_##SUFFIX(                   \
        FC_WINO_PACK_ARGS(T))                                                  \
    { fc_wino_pack_panel<M, T>(FC_WINO_PACK_PASS); }

#if FC_HAVE_VECTOR_EXTENSIONS
FC_WINO_DEFINE(f32_baseline, , float, 16)
FC_WINO_DEFINE(f64_baseline, , double, 16)
#if FC_HAVE_X86_DISPATCH
FC_WINO_DEFINE(f32_avx2, __attribute__((target("avx2,fma"))), float, 32)
FC_WINO_DEFINE(f64_avx2, __attribute__((target("avx2,fma"))), double, 32)
FC_WINO_DEFINE(f32_avx512, __attribute__((target("avx512f,avx2,fma"))), float, 64)
FC_WINO_DEFINE(f64_avx512, __attribute__((target("avx512f,avx2,fma"))), double, 64)

/* ------------------------------------------------------------------------ */
/* AVX-512 float32 gather and scatter for F(2x2) and F(4x4).                 */
/*                                                                          */
/* A run of tiles in one tile row reads one contiguous stretch of each input */
/* row: tile t, column b is element t * M + b. The generic loops copy that    */
/* element by element (the runs of 7-28 tiles of typical layers are too      */
/* short for GCC's vectorised loop), which took a fifth of a 64-channel      */
/* layer's time. Here 16 tiles at a time are loaded as M + 1 vectors (masked */
/* at the image border, so padding reads as zero), split into the alpha      */
/* columns with permutes, and stored with a lane mask; the scatter is the    */
/* same in reverse. F(6x6) (stride 6) keeps the generic loops.              */

#define FC_AVX512_ATTR __attribute__((target("avx512f,avx2,fma")))
/* GCC 12 reports the intrinsics' deliberately undefined pass-through
 * operands as maybe-uninitialized. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

/* Lanes [lo, hi) of 16, clipped. */
FC_AVX512_ATTR static inline __mmask16 fc_lanes(fc_index lo, fc_index hi)
{
    if (lo < 0) lo = 0;
    if (hi > 16) hi = 16;
    if (hi <= lo) return 0;
    return (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

/* x shifted down one lane, with lane 15 taken from lane `from` of `next`. */
template <int from>
FC_AVX512_ATTR static inline __m512 fc_shift_in(__m512 x, __m512 next)
{
    const __m512i n = _mm512_castps_si512(next);
    const __m512i top = from == 0 ? n : _mm512_alignr_epi32(n, n, from);
    return _mm512_castsi512_ps(_mm512_alignr_epi32(top, _mm512_castps_si512(x), 1));
}

/* x[b][t] = seg[t * M + b] for b < M + 2, t < 16, from seg = v[0 .. M]. */
template <int M>
FC_AVX512_ATTR static inline void fc_deinterleave(const __m512 *v, __m512 *x)
{
    if (M == 2) {
        const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22,
                                               24, 26, 28, 30);
        const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
        x[0] = _mm512_permutex2var_ps(v[0], even, v[1]);
        x[1] = _mm512_permutex2var_ps(v[0], odd, v[1]);
    } else {
        /* Every fourth of 32 elements into the low half, then the halves of
         * v[0..1] and v[2..3] side by side. */
        const __m512i step4 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12,
                                                16, 20, 24, 28);
        for (int b = 0; b < 4; ++b) {
            const __m512i idx = _mm512_add_epi32(step4, _mm512_set1_epi32(b));
            const __m512 lo = _mm512_permutex2var_ps(v[0], idx, v[1]);
            const __m512 hi = _mm512_permutex2var_ps(v[2], idx, v[3]);
            x[b] = _mm512_shuffle_f32x4(lo, hi, _MM_SHUFFLE(1, 0, 1, 0));
        }
    }
    x[M] = fc_shift_in<0>(x[0], v[M]);
    x[M + 1] = fc_shift_in<1>(x[1], v[M]);
}

template <int M>
FC_AVX512_ATTR static void fc_wino_gather_f32_avx512_runs(FC_WINO_GATHER_ARGS(float))
{
    const int alpha = M + 2;
    for (fc_index q = 0; q < n_tiles;) {
        const fc_tile_run r = fc_tile_run_at(tile0 + q, n_tiles - q, tiles_w);
        const fc_index th = r.th, tw = r.tw, run = r.run;
        const fc_index col0 = tw * M - pad_left;
        for (fc_index t = 0; t < run; t += 16) {
            /* The same columns in every row of the tiles: masks once. */
            const __mmask16 store = fc_lanes(0, run - t);
            const fc_index c = col0 + t * M;
            __mmask16 load[M + 1];
            for (int j = 0; j <= M; ++j) load[j] = fc_lanes(-(c + 16 * j), width - (c + 16 * j));
            float *dst = scratch + lane0 + q + t;
            for (int a = 0; a < alpha; ++a, dst += (fc_index)alpha * nr) {
                const fc_index ih = th * M - pad_top + a;
                __m512 v[M + 1], x[alpha];
                if (ih >= 0 && ih < height) {
                    const float *row = channel + ih * width;
                    if (t == 0) {
                        /* As in the generic gather: the next plane's row. */
                        for (fc_index p = 0; p < run * M + 2; p += 16)
                            __builtin_prefetch(row + height * width + col0 + p);
                    }
#pragma GCC unroll 8
                    for (int j = 0; j <= M; ++j)
                        v[j] = _mm512_maskz_loadu_ps(load[j], row + c + 16 * j);
                } else {
#pragma GCC unroll 8
                    for (int j = 0; j <= M; ++j) v[j] = _mm512_setzero_ps();
                }
                fc_deinterleave<M>(v, x);
#pragma GCC unroll 8
                for (int b = 0; b < alpha; ++b)
                    _mm512_mask_storeu_ps(dst + (fc_index)b * nr, store, x[b]);
            }
        }
        q += run;
    }
}

/* out[t * M + j] = y[j][t] for t < 16, as M vectors of 16 columns. */
template <int M>
FC_AVX512_ATTR static inline void fc_interleave(const __m512 *y, __m512 *out)
{
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22,
                                         7, 23);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
    if (M == 2) {
        out[0] = _mm512_permutex2var_ps(y[0], lo, y[1]);
        out[1] = _mm512_permutex2var_ps(y[0], hi, y[1]);
    } else {
        /* Pairs (y0, y1) and (y2, y3) per tile, then the pairs of four tiles
         * per vector as 64-bit elements. */
        const __m512 p01[2] = {_mm512_permutex2var_ps(y[0], lo, y[1]),
                               _mm512_permutex2var_ps(y[0], hi, y[1])};
        const __m512 p23[2] = {_mm512_permutex2var_ps(y[2], lo, y[3]),
                               _mm512_permutex2var_ps(y[2], hi, y[3])};
        const __m512i first = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
        const __m512i second = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
        for (int h = 0; h < 2; ++h) {
            const __m512d a = _mm512_castps_pd(p01[h]), b = _mm512_castps_pd(p23[h]);
            out[2 * h] = _mm512_castpd_ps(_mm512_permutex2var_pd(a, first, b));
            out[2 * h + 1] = _mm512_castpd_ps(_mm512_permutex2var_pd(a, second, b));
        }
    }
}

template <int M>
FC_AVX512_ATTR static void fc_wino_scatter_f32_avx512_runs(FC_WINO_SCATTER_ARGS(float))
{
    for (fc_index q = 0; q < n_tiles;) {
        const fc_tile_run r = fc_tile_run_at(tile0 + q, n_tiles - q, tiles_w);
        const fc_index th = r.th, tw = r.tw, run = r.run;
        /* Columns of the run inside the output (the last tile may be clipped). */
        fc_index columns = out_w - tw * M;
        if (columns > run * M) columns = run * M;
        fc_index rows = out_h - th * M;
        if (rows > M) rows = M;
        for (fc_index t = 0; t < run; t += 16) {
            /* The same columns in every output row of the tiles: masks once. */
            const __mmask16 load = fc_lanes(0, run - t);
            __mmask16 store[M];
            for (int k = 0; k < M; ++k) store[k] = fc_lanes(0, columns - t * M - 16 * k);
            for (fc_index i = 0; i < rows; ++i) {
                float *row = out_channel + (th * M + i) * out_w + tw * M + t * M;
                const float *src = y + i * M * nr + lane0 + q + t;
                if (t == 0) {
                    for (fc_index p = 0; p < run * M; p += 16)
                        __builtin_prefetch(row + out_h * out_w + p, 1);
                }
                __m512 yj[M], out[M];
#pragma GCC unroll 8
                for (int j = 0; j < M; ++j)
                    yj[j] = _mm512_maskz_loadu_ps(load, src + (fc_index)j * nr);
                fc_interleave<M>(yj, out);
#pragma GCC unroll 8
                for (int k = 0; k < M; ++k)
                    _mm512_mask_storeu_ps(row + 16 * k, store[k], out[k]);
            }
        }
        q += run;
    }
}

template <> FC_AVX512_ATTR void fc_wino_gather_f32_avx512<2>(FC_WINO_GATHER_ARGS(float))
{ fc_wino_gather_f32_avx512_runs<2>(FC_WINO_GATHER_PASS); }
template <> FC_AVX512_ATTR void fc_wino_gather_f32_avx512<4>(FC_WINO_GATHER_ARGS(float))
{ fc_wino_gather_f32_avx512_runs<4>(FC_WINO_GATHER_PASS); }
template <> FC_AVX512_ATTR void fc_wino_scatter_f32_avx512<2>(FC_WINO_SCATTER_ARGS(float))
{ fc_wino_scatter_f32_avx512_runs<2>(FC_WINO_SCATTER_PASS); }
template <> FC_AVX512_ATTR void fc_wino_scatter_f32_avx512<4>(FC_WINO_SCATTER_ARGS(float))
{ fc_wino_scatter_f32_avx512_runs<4>(FC_WINO_SCATTER_PASS); }
#pragma GCC diagnostic pop
#endif
#endif

struct fc_wino_table {
    fc_wino_input_f32_fn input_f32[3];
    fc_wino_output_f32_fn output_f32[3];
    fc_wino_input_f64_fn input_f64[3];
    fc_wino_output_f64_fn output_f64[3];
    fc_wino_gather_f32_fn gather_f32[3];
    fc_wino_scatter_f32_fn scatter_f32[3];
    fc_wino_gather_f64_fn gather_f64[3];
    fc_wino_scatter_f64_fn scatter_f64[3];
    fc_wino_pack_f32_fn pack_f32[3];
    fc_wino_pack_f64_fn pack_f64[3];
};

#define FC_WINO_TABLE(S32, S64)                                                \
    {{fc_wino_input_##S32<2>, fc_wino_input_##S32<4>, fc_wino_input_##S32<6>}, \
     {fc_wino_output_##S32<2>, fc_wino_output_##S32<4>, fc_wino_output_##S32<6>}, \
     {fc_wino_input_##S64<2>, fc_wino_input_##S64<4>, fc_wino_input_##S64<6>}, \
     {fc_wino_output_##S64<2>, fc_wino_output_##S64<4>, fc_wino_output_##S64<6>}, \
     {fc_wino_gather_##S32<2>, fc_wino_gather_##S32<4>, fc_wino_gather_##S32<6>}, \
     {fc_wino_scatter_##S32<2>, fc_wino_scatter_##S32<4>, fc_wino_scatter_##S32<6>}, \
     {fc_wino_gather_##S64<2>, fc_wino_gather_##S64<4>, fc_wino_gather_##S64<6>}, \
     {fc_wino_scatter_##S64<2>, fc_wino_scatter_##S64<4>, fc_wino_scatter_##S64<6>}, \
     {fc_wino_pack_##S32<2>, fc_wino_pack_##S32<4>, fc_wino_pack_##S32<6>},    \
     {fc_wino_pack_##S64<2>, fc_wino_pack_##S64<4>, fc_wino_pack_##S64<6>}}

static fc_wino_table fc_wino_active = FC_WINO_TABLE(f32_baseline, f64_baseline);

/* Follow the level chosen for the micro-kernels. */
static int fc_wino_select_isa(int requested)
{
    int level = fc_select_isa(requested);
    fc_wino_table t = FC_WINO_TABLE(f32_baseline, f64_baseline);
#if FC_HAVE_X86_DISPATCH
    if (level == FC_ISA_AVX512) {
        fc_wino_table t512 = FC_WINO_TABLE(f32_avx512, f64_avx512);
        t = t512;
    } else if (level == FC_ISA_AVX2) {
        fc_wino_table t2 = FC_WINO_TABLE(f32_avx2, f64_avx2);
        t = t2;
    }
#endif
    fc_wino_active = t;
    return level;
}

static inline int fc_wino_index(int m) { return m == 2 ? 0 : (m == 4 ? 1 : 2); }

static inline void fc_wino_input(int m, fc_index nr, float *scratch, float *v, fc_index xi_stride)
{ fc_wino_active.input_f32[fc_wino_index(m)](nr, scratch, v, xi_stride); }
static inline void fc_wino_input(int m, fc_index nr, double *scratch, double *v, fc_index xi_stride)
{ fc_wino_active.input_f64[fc_wino_index(m)](nr, scratch, v, xi_stride); }
static inline int fc_wino_output(int m, const float *m_k, fc_index xi_stride, float bias,
                                 fc_index nr, float *scratch, int relu)
{ return fc_wino_active.output_f32[fc_wino_index(m)](m_k, xi_stride, bias, nr, scratch, relu); }
static inline int fc_wino_output(int m, const double *m_k, fc_index xi_stride, double bias,
                                 fc_index nr, double *scratch, int relu)
{ return fc_wino_active.output_f64[fc_wino_index(m)](m_k, xi_stride, bias, nr, scratch, relu); }

static inline void fc_wino_gather_m(int m, FC_WINO_GATHER_ARGS(float))
{ fc_wino_active.gather_f32[fc_wino_index(m)](FC_WINO_GATHER_PASS); }
static inline void fc_wino_gather_m(int m, FC_WINO_GATHER_ARGS(double))
{ fc_wino_active.gather_f64[fc_wino_index(m)](FC_WINO_GATHER_PASS); }
static inline void fc_wino_scatter_m(int m, FC_WINO_SCATTER_ARGS(float))
{ fc_wino_active.scatter_f32[fc_wino_index(m)](FC_WINO_SCATTER_PASS); }
static inline void fc_wino_scatter_m(int m, FC_WINO_SCATTER_ARGS(double))
{ fc_wino_active.scatter_f64[fc_wino_index(m)](FC_WINO_SCATTER_PASS); }
static inline void fc_wino_pack_panel_m(int m, FC_WINO_PACK_ARGS(float))
{ fc_wino_active.pack_f32[fc_wino_index(m)](FC_WINO_PACK_PASS); }
static inline void fc_wino_pack_panel_m(int m, FC_WINO_PACK_ARGS(double))
{ fc_wino_active.pack_f64[fc_wino_index(m)](FC_WINO_PACK_PASS); }

/* The matrices, for tests: which = 0 B^T, 1 G, 2 A^T; row-major. */
static inline int fc_wino_matrix(int m, int which, double *dst)
{
    int rows, cols;
    const double *src;
#define FC_WINO_PICK(MM)                                                       \
    if (m == MM) {                                                             \
        typedef fc_winograd_matrices<MM> W;                                    \
        if (which == 0) { src = &W::BT[0][0]; rows = MM + 2; cols = MM + 2; }  \
        else if (which == 1) { src = &W::G[0][0]; rows = MM + 2; cols = 3; }   \
        else { src = &W::AT[0][0]; rows = MM; cols = MM + 2; }                 \
        std::memcpy(dst, src, sizeof(double) * rows * cols);                   \
        return rows * cols;                                                    \
    }
    FC_WINO_PICK(2)
    FC_WINO_PICK(4)
    FC_WINO_PICK(6)
#undef FC_WINO_PICK
    return 0;
}

#endif /* FASTCONV_WINOGRAD_HPP */
