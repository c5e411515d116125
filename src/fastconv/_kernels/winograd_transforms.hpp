/*
 * Winograd minimal filtering F(m x m, r x r) (Lavin & Gray, "Fast Algorithms
 * for Convolutional Neural Networks", 2016): m = 2, 4, 6 for 3x3 filters,
 * m = 2, 4 for 5x5 and m = 2 for 7x7.
 *
 * For an alpha x alpha input tile d (alpha = m + r - 1) and an r x r filter g,
 *     Y = A^T [ (G g G^T) (.) (B^T d B) ] A          ((.) = element-wise)
 * is the m x m cross-correlation output of the tile. Over C channels the
 * element-wise products become alpha^2 independent GEMMs (K x C) . (C x tiles),
 * done by the register-blocked GEMM tile of gemm_tile.hpp.
 *
 * The matrices below are the Toom-Cook construction over the listed points
 * (the last one infinity): A^T[i][j] = p_j^i, G[j][k] = p_j^k / prod_{l!=j}
 * (p_j - p_l), row j of B^T the coefficients of prod_{l!=j} (x - p_l), the
 * last row those of prod_l (x - p_l). tools/winograd_matrices.py printed them
 * from exact fractions (and estimates the float32 error of other points:
 * with 3, -3 or 1/4, -1/4 in place of 1/2, -1/2 it is 10-100 times larger);
 * every entry of B^T and A^T is a dyadic rational, so the data transforms
 * are exact up to rounding of the sums. tests/test_winograd.py re-derives
 * them independently. The data transforms depend on alpha and the points
 * only, so F(2x2, 5x5) shares F(4x4, 3x3)'s B^T, and F(4x4, 5x5) and
 * F(2x2, 7x7) share F(6x6, 3x3)'s.
 *
 * This file holds the matrices and the transforms: the weight transform
 * (packed as the GEMM tile's A panels), and the input and output transforms,
 * which run on blocks of NR tiles at once (the GEMM tile's pixel width) with
 * the tiles in the vector lanes. The gathers and scatters that move tiles
 * between the image and those blocks are in winograd_gather.hpp;
 * cpu_kernels.hpp instantiates both per instruction set.
 * Coefficients that are zero are skipped at compile time, so a NaN or Inf in
 * the input reaches the outputs of its tile through every nonzero path
 * (the whole tile, in practice) but is never silently dropped.
 */
#ifndef FASTCONV_WINOGRAD_TRANSFORMS_HPP
#define FASTCONV_WINOGRAD_TRANSFORMS_HPP

#include "platform.hpp"

/* The data transforms depend on alpha and the points only: one B^T per
 * alpha, which every F(m, r) of that alpha takes. */
template <int ALPHA> struct fc_winograd_input;
template <int M, int R> struct fc_winograd_matrices;

/* B^T over the points 0, 1, -1, inf. */
template <> struct fc_winograd_input<4> {
    static constexpr int alpha = 4;
    static constexpr double BT[4][4] = {
        {-1.0, 0.0, 1.0, 0.0},
        {0.0, 1.0, 1.0, 0.0},
        {0.0, -1.0, 1.0, 0.0},
        {0.0, -1.0, 0.0, 1.0}};
};

/* F(2x2, 3x3), interpolation points 0, 1, -1, inf. */
template <> struct fc_winograd_matrices<2, 3> : fc_winograd_input<4> {
    static constexpr double G[4][3] = {
        {-1.0, 0.0, 0.0},
        {1.0 / 2.0, 1.0 / 2.0, 1.0 / 2.0},
        {1.0 / 2.0, -1.0 / 2.0, 1.0 / 2.0},
        {0.0, 0.0, 1.0}};
    static constexpr double AT[2][4] = {
        {1.0, 1.0, 1.0, 0.0},
        {0.0, 1.0, -1.0, 1.0}};
};

/* B^T over the points 0, 1, -1, 2, -2, inf. */
template <> struct fc_winograd_input<6> {
    static constexpr int alpha = 6;
    static constexpr double BT[6][6] = {
        {4.0, 0.0, -5.0, 0.0, 1.0, 0.0},
        {0.0, -4.0, -4.0, 1.0, 1.0, 0.0},
        {0.0, 4.0, -4.0, -1.0, 1.0, 0.0},
        {0.0, -2.0, -1.0, 2.0, 1.0, 0.0},
        {0.0, 2.0, -1.0, -2.0, 1.0, 0.0},
        {0.0, 4.0, 0.0, -5.0, 0.0, 1.0}};
};

/* F(4x4, 3x3), interpolation points 0, 1, -1, 2, -2, inf. */
template <> struct fc_winograd_matrices<4, 3> : fc_winograd_input<6> {
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

/* F(2x2, 5x5), interpolation points 0, 1, -1, 2, -2, inf. */
template <> struct fc_winograd_matrices<2, 5> : fc_winograd_input<6> {
    static constexpr double G[6][5] = {
        {1.0 / 4.0, 0.0, 0.0, 0.0, 0.0},
        {-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0},
        {-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0},
        {1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0, 1.0 / 3.0, 2.0 / 3.0},
        {1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0, -1.0 / 3.0, 2.0 / 3.0},
        {0.0, 0.0, 0.0, 0.0, 1.0}};
    static constexpr double AT[2][6] = {
        {1.0, 1.0, 1.0, 1.0, 1.0, 0.0},
        {0.0, 1.0, -1.0, 2.0, -2.0, 1.0}};
};

/* B^T over the points 0, 1, -1, 2, -2, 1/2, -1/2, inf. */
template <> struct fc_winograd_input<8> {
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
};

/* F(6x6, 3x3), interpolation points 0, 1, -1, 2, -2, 1/2, -1/2, inf. */
template <> struct fc_winograd_matrices<6, 3> : fc_winograd_input<8> {
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

/* F(4x4, 5x5), interpolation points 0, 1, -1, 2, -2, 1/2, -1/2, inf. */
template <> struct fc_winograd_matrices<4, 5> : fc_winograd_input<8> {
    static constexpr double G[8][5] = {
        {-1.0, 0.0, 0.0, 0.0, 0.0},
        {-2.0 / 9.0, -2.0 / 9.0, -2.0 / 9.0, -2.0 / 9.0, -2.0 / 9.0},
        {-2.0 / 9.0, 2.0 / 9.0, -2.0 / 9.0, 2.0 / 9.0, -2.0 / 9.0},
        {1.0 / 90.0, 1.0 / 45.0, 2.0 / 45.0, 4.0 / 45.0, 8.0 / 45.0},
        {1.0 / 90.0, -1.0 / 45.0, 2.0 / 45.0, -4.0 / 45.0, 8.0 / 45.0},
        {32.0 / 45.0, 16.0 / 45.0, 8.0 / 45.0, 4.0 / 45.0, 2.0 / 45.0},
        {32.0 / 45.0, -16.0 / 45.0, 8.0 / 45.0, -4.0 / 45.0, 2.0 / 45.0},
        {0.0, 0.0, 0.0, 0.0, 1.0}};
    static constexpr double AT[4][8] = {
        {1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0},
        {0.0, 1.0, -1.0, 2.0, -2.0, 1.0 / 2.0, -1.0 / 2.0, 0.0},
        {0.0, 1.0, 1.0, 4.0, 4.0, 1.0 / 4.0, 1.0 / 4.0, 0.0},
        {0.0, 1.0, -1.0, 8.0, -8.0, 1.0 / 8.0, -1.0 / 8.0, 1.0}};
};

/* F(2x2, 7x7), interpolation points 0, 1, -1, 2, -2, 1/2, -1/2, inf. */
template <> struct fc_winograd_matrices<2, 7> : fc_winograd_input<8> {
    static constexpr double G[8][7] = {
        {-1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0},
        {-2.0 / 9.0, -2.0 / 9.0, -2.0 / 9.0, -2.0 / 9.0, -2.0 / 9.0, -2.0 / 9.0, -2.0 / 9.0},
        {-2.0 / 9.0, 2.0 / 9.0, -2.0 / 9.0, 2.0 / 9.0, -2.0 / 9.0, 2.0 / 9.0, -2.0 / 9.0},
        {1.0 / 90.0, 1.0 / 45.0, 2.0 / 45.0, 4.0 / 45.0, 8.0 / 45.0, 16.0 / 45.0, 32.0 / 45.0},
        {1.0 / 90.0, -1.0 / 45.0, 2.0 / 45.0, -4.0 / 45.0, 8.0 / 45.0, -16.0 / 45.0, 32.0 / 45.0},
        {32.0 / 45.0, 16.0 / 45.0, 8.0 / 45.0, 4.0 / 45.0, 2.0 / 45.0, 1.0 / 45.0, 1.0 / 90.0},
        {32.0 / 45.0, -16.0 / 45.0, 8.0 / 45.0, -4.0 / 45.0, 2.0 / 45.0, -1.0 / 45.0, 1.0 / 90.0},
        {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0}};
    static constexpr double AT[2][8] = {
        {1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0},
        {0.0, 1.0, -1.0, 2.0, -2.0, 1.0 / 2.0, -1.0 / 2.0, 1.0}};
};

#if FC_HAVE_VECTOR_EXTENSIONS

/* ------------------------------------------------------------------------ */
/* Input transform of a gathered panel: v[xi * xi_stride + q] = (B^T d B)[xi] */
/* for the NR lanes q. The scratch is overwritten.                           */

template <typename T, int M, int R, int VLEN>
static FC_ALWAYS_INLINE void fc_wino_input_impl(fc_index nr, T *scratch, T *v,
                                                fc_index xi_stride)
{
    typedef fc_winograd_matrices<M, R> W;
    const int alpha = W::alpha;
    typedef T vec __attribute__((vector_size(VLEN * sizeof(T))));
    typedef T uvec __attribute__((vector_size(VLEN * sizeof(T)), aligned(sizeof(T))));
    /* Rows: scratch[a][j] = sum_b d[a][b] * B[b][j] = sum_b BT[j][b] d[a][b]. */
    for (int a = 0; a < alpha; ++a) {
        T *rowp = scratch + (fc_index)a * alpha * nr;
        for (fc_index q0 = 0; q0 < nr; q0 += VLEN) {
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
        for (fc_index q0 = 0; q0 < nr; q0 += VLEN) {
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

template <typename T, int M, int R, int VLEN>
static FC_ALWAYS_INLINE int fc_wino_output_impl(const T *m_k, fc_index xi_stride,
                                                 T bias, fc_index nr, T *scratch,
                                                 int relu)
{
    typedef fc_winograd_matrices<M, R> W;
    const int alpha = W::alpha;
    typedef T vec __attribute__((vector_size(VLEN * sizeof(T))));
    typedef T uvec __attribute__((vector_size(VLEN * sizeof(T)), aligned(sizeof(T))));
    /* scratch[a][j][q] = sum_b M[a][b] AT[j][b]   (alpha x m), then
     * y[i][j][q] = bias + sum_a AT[i][a] scratch[a][j]   (m x m). */
    for (int a = 0; a < alpha; ++a) {
        for (fc_index q0 = 0; q0 < nr; q0 += VLEN) {
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
        for (fc_index q0 = 0; q0 < nr; q0 += VLEN) {
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
    for (int q = 0; q < VLEN; ++q)
        if (nonfinite[q] != nonfinite[q]) return 1;
    return 0;
}

/* Transform the filters of one MR-row panel of a group into the packed
 * U[xi][K_padded / mr][C][mr] (the GEMM tile's A panels, xi planes
 * xi_stride apart). `weight` points at the group's (K/groups, C, r, r) slab;
 * rows past `out_channels` are zero. Computed in double and rounded once.
 *
 * For one plane xi the panel's block [c][mr] is contiguous, so the vectors
 * run along it: 8 consecutive (channel, row) pairs per vector, every lane
 * used and each result one contiguous store. A block of channels is first
 * transposed into `taps` ([tap][c * mr + row], in double) with scalar
 * copies; the lanes-per-row layout this replaced (a vector per channel over
 * the MR rows) gathered each filter through a store-to-load round trip and
 * left 4 of 16 lanes idle at MR = 12. With the planes written in whole runs
 * (below) and the transposition kept scalar, (256, 256, 3, 3) weights at 1
 * thread took 29-34 -> 14 ns per filter for F(4x4) and 15 -> 8 for F(2x2).
 * What is left is mostly the writes of U (35%: 36/9 the weights' bytes) and
 * the transposition. */
#define FC_MR_MAX 16
#define FC_WINO_PACK_CHANNELS 16

/* taps[i][c * mr + row] = filter (row, c)'s tap i for the `rows` rows of a
 * block (`ld` apart) and zero for the rows past them up to mr. Plain scalar
 * copies: vectorised, GCC turned them into gathers that cost more than the
 * transform's arithmetic. */
template <typename T, int TAPS, int BLOCK>
FC_SCALAR_LOOPS static void fc_wino_transpose_block(const T *filters, fc_index ld, int rows,
                                                    int mr, int cb, T (*taps)[BLOCK])
{
    for (int row = 0; row < mr; ++row) {
        const T *f = filters + row * ld;
        for (int c = 0; c < cb; ++c)
            for (int i = 0; i < TAPS; ++i)
                taps[i][c * mr + row] = row < rows ? f[c * TAPS + i] : (T)0;
    }
}

template <int M, int R, typename T>
static FC_ALWAYS_INLINE void fc_wino_pack_panel(const T *weight, fc_index out_channels,
                                                fc_index channels, int mr, fc_index panel,
                                                T *u_packed, fc_index xi_stride)
{
    typedef fc_winograd_matrices<M, R> W;
    const int alpha = W::alpha;
    /* Channels per block: 16 for 3x3, fewer for larger kernels, so that the
     * transposed taps and the planes stay a few tens of KiB on the stack. */
    enum { TAPS = R * R, CHANNELS = (FC_WINO_PACK_CHANNELS * 9 + TAPS - 1) / TAPS,
           BLOCK = CHANNELS * FC_MR_MAX };
    typedef double dvec __attribute__((vector_size(64)));
    const fc_index k0 = panel * mr;
    const int rows = out_channels - k0 < mr ? (int)(out_channels - k0) : mr;
    T taps[TAPS][BLOCK] __attribute__((aligned(64)));
    T planes[alpha * alpha][BLOCK] __attribute__((aligned(64)));
    for (fc_index c0 = 0; c0 < channels; c0 += CHANNELS) {
        const int cb = channels - c0 < CHANNELS ? (int)(channels - c0) : CHANNELS;
        const int n = cb * mr, n_padded = (n + 7) / 8 * 8;
        fc_wino_transpose_block<T, TAPS, BLOCK>(weight + (k0 * channels + c0) * TAPS,
                                                 channels * TAPS, rows, mr, cb, taps);
        for (int i = 0; i < TAPS; ++i)
            for (int q = n; q < n_padded; ++q) taps[i][q] = 0.0;
        T *dst = u_packed + (panel * channels + c0) * mr;
        for (int q = 0; q < n; q += 8) {
            dvec g[TAPS], tmp[alpha][R];
            typedef T tvec8 __attribute__((vector_size(8 * sizeof(T))));
            for (int i = 0; i < TAPS; ++i)
                g[i] = __builtin_convertvector(*(const tvec8 *)&taps[i][q], dvec);
            /* tmp = G g (alpha x r), then u = tmp G^T (alpha x alpha). */
#pragma GCC unroll 8
            for (int i = 0; i < alpha; ++i)
                for (int k = 0; k < R; ++k) {
                    tmp[i][k] = (dvec){};
                    for (int l = 0; l < R; ++l)
                        if (W::G[i][l] != 0.0) tmp[i][k] += W::G[i][l] * g[l * R + k];
                }
#pragma GCC unroll 8
            for (int i = 0; i < alpha; ++i)
#pragma GCC unroll 8
                for (int j = 0; j < alpha; ++j) {
                    dvec u = (dvec){};
                    for (int k = 0; k < R; ++k)
                        if (W::G[j][k] != 0.0) u += W::G[j][k] * tmp[i][k];
                    typedef T tvec __attribute__((vector_size(8 * sizeof(T))));
                    *(tvec *)&planes[i * alpha + j][q] = __builtin_convertvector(u, tvec);
                }
        }
        /* The planes are a multiple of 4 KB apart for the usual channel
         * counts, so their lines share cache sets: written a vector at a
         * time, 16-64 interleaved streams evicted each other's partial
         * lines (4-5 GB/s). Whole runs per plane complete each line. */
        for (int xi = 0; xi < alpha * alpha; ++xi)
            std::memcpy(dst + (fc_index)xi * xi_stride, planes[xi], (size_t)n * sizeof(T));
    }
}

#else /* !FC_HAVE_VECTOR_EXTENSIONS */

/* ------------------------------------------------------------------------ */
/* The same three transforms as plain loops, for compilers without GNU      */
/* vector extensions (MSVC): the same sums in the same order, one lane at a */
/* time (VLEN is unused).                                                   */

template <typename T, int M, int R, int VLEN>
static inline void fc_wino_input_impl(fc_index nr, T *scratch, T *v, fc_index xi_stride)
{
    typedef fc_winograd_matrices<M, R> W;
    const int alpha = W::alpha;
    for (int a = 0; a < alpha; ++a) {
        T *rowp = scratch + (fc_index)a * alpha * nr;
        for (fc_index q = 0; q < nr; ++q) {
            T x[alpha], y[alpha];
            for (int b = 0; b < alpha; ++b) x[b] = rowp[b * nr + q];
            for (int j = 0; j < alpha; ++j) {
                y[j] = 0;
                for (int b = 0; b < alpha; ++b)
                    if (W::BT[j][b] != 0.0) y[j] += (T)W::BT[j][b] * x[b];
            }
            for (int j = 0; j < alpha; ++j) rowp[j * nr + q] = y[j];
        }
    }
    for (int j = 0; j < alpha; ++j) {
        for (fc_index q = 0; q < nr; ++q) {
            T x[alpha];
            for (int a = 0; a < alpha; ++a) x[a] = scratch[((fc_index)a * alpha + j) * nr + q];
            for (int i = 0; i < alpha; ++i) {
                T y = 0;
                for (int a = 0; a < alpha; ++a)
                    if (W::BT[i][a] != 0.0) y += (T)W::BT[i][a] * x[a];
                v[(fc_index)(i * alpha + j) * xi_stride + q] = y;
            }
        }
    }
}

template <typename T, int M, int R, int VLEN>
static inline int fc_wino_output_impl(const T *m_k, fc_index xi_stride, T bias, fc_index nr,
                                      T *scratch, int relu)
{
    typedef fc_winograd_matrices<M, R> W;
    const int alpha = W::alpha;
    for (int a = 0; a < alpha; ++a) {
        for (fc_index q = 0; q < nr; ++q) {
            T x[alpha];
            for (int b = 0; b < alpha; ++b) x[b] = m_k[(fc_index)(a * alpha + b) * xi_stride + q];
            for (int j = 0; j < M; ++j) {
                T y = 0;
                for (int b = 0; b < alpha; ++b)
                    if (W::AT[j][b] != 0.0) y += (T)W::AT[j][b] * x[b];
                scratch[((fc_index)a * M + j) * nr + q] = y;
            }
        }
    }
    T *y_out = scratch + (fc_index)alpha * M * nr;
    T nonfinite = 0;
    for (int j = 0; j < M; ++j) {
        for (fc_index q = 0; q < nr; ++q) {
            T x[alpha];
            for (int a = 0; a < alpha; ++a) x[a] = scratch[((fc_index)a * M + j) * nr + q];
            for (int i = 0; i < M; ++i) {
                T y = (T)0 + bias;
                for (int a = 0; a < alpha; ++a)
                    if (W::AT[i][a] != 0.0) y += (T)W::AT[i][a] * x[a];
                if (relu && y < 0) y = 0;  /* keeps NaN, as torch.relu does */
                nonfinite += y * (T)0;
                y_out[((fc_index)i * M + j) * nr + q] = y;
            }
        }
    }
    return nonfinite != nonfinite;
}

template <int M, int R, typename T>
static inline void fc_wino_pack_panel(const T *weight, fc_index out_channels,
                                      fc_index channels, int mr, fc_index panel,
                                      T *u_packed, fc_index xi_stride)
{
    typedef fc_winograd_matrices<M, R> W;
    const int alpha = W::alpha;
    const fc_index k0 = panel * mr;
    const int lanes = out_channels - k0 < mr ? (int)(out_channels - k0) : mr;
    for (fc_index c = 0; c < channels; ++c) {
        T *dst = u_packed + (panel * channels + c) * mr;
        for (int lane = 0; lane < mr; ++lane) {
            double g[R * R], tmp[alpha][R];
            const T *filter = weight + ((k0 + lane) * channels + c) * (R * R);
            for (int i = 0; i < R * R; ++i) g[i] = lane < lanes ? (double)filter[i] : 0.0;
            for (int i = 0; i < alpha; ++i)
                for (int k = 0; k < R; ++k) {
                    tmp[i][k] = 0.0;
                    for (int l = 0; l < R; ++l)
                        if (W::G[i][l] != 0.0) tmp[i][k] += W::G[i][l] * g[l * R + k];
                }
            for (int i = 0; i < alpha; ++i)
                for (int j = 0; j < alpha; ++j) {
                    double u = 0.0;
                    for (int k = 0; k < R; ++k)
                        if (W::G[j][k] != 0.0) u += W::G[j][k] * tmp[i][k];
                    dst[(fc_index)(i * alpha + j) * xi_stride + lane] = (T)u;
                }
        }
    }
}

#endif /* FC_HAVE_VECTOR_EXTENSIONS */


typedef void (*fc_wino_input_f32_fn)(fc_index, float *, float *, fc_index);
typedef void (*fc_wino_input_f64_fn)(fc_index, double *, double *, fc_index);
typedef int (*fc_wino_output_f32_fn)(const float *, fc_index, float, fc_index, float *, int);
typedef int (*fc_wino_output_f64_fn)(const double *, fc_index, double, fc_index, double *, int);
#define FC_WINO_PACK_ARGS(T)                                                   \
    const T *weight, fc_index out_channels, fc_index channels, int mr,        \
        fc_index panel, T *u_packed, fc_index xi_stride
#define FC_WINO_PACK_PASS weight, out_channels, channels, mr, panel, u_packed, xi_stride
typedef void (*fc_wino_pack_f32_fn)(FC_WINO_PACK_ARGS(float));
typedef void (*fc_wino_pack_f64_fn)(FC_WINO_PACK_ARGS(double));

/* The matrices, for tests: which = 0 B^T, 1 G, 2 A^T; row-major. Returns the
 * number of entries written, 0 for an (m, r) that is not compiled in. */
static inline int fc_wino_matrix(int m, int r, int which, double *dst)
{
    int rows, cols;
    const double *src;
#define FC_WINO_PICK(MM, RR)                                                   \
    if (m == MM && r == RR) {                                                  \
        typedef fc_winograd_matrices<MM, RR> W;                                \
        const int alpha = W::alpha;                                            \
        if (which == 0) { src = &W::BT[0][0]; rows = alpha; cols = alpha; }    \
        else if (which == 1) { src = &W::G[0][0]; rows = alpha; cols = RR; }   \
        else { src = &W::AT[0][0]; rows = MM; cols = alpha; }                  \
        std::memcpy(dst, src, sizeof(double) * rows * cols);                   \
        return rows * cols;                                                    \
    }
    FC_WINO_PICK(2, 3)
    FC_WINO_PICK(4, 3)
    FC_WINO_PICK(6, 3)
    FC_WINO_PICK(2, 5)
    FC_WINO_PICK(4, 5)
    FC_WINO_PICK(2, 7)
#undef FC_WINO_PICK
    return 0;
}


#endif /* FASTCONV_WINOGRAD_TRANSFORMS_HPP */
