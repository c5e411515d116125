/*
 * Winograd's gathers and scatters: the alpha x alpha input tiles of one
 * channel into the blocks of NR tiles the input transform reads
 * (winograd_transforms.hpp), and the m x m output tiles the output transform
 * writes back into the output planes, clipped at the last row and column of
 * tiles.
 *
 * Generic loops for every instruction set and filter size r, and for
 * AVX-512 float32 with output tiles m = 2 and 4 (any r) a version that moves
 * 16 tiles at a time with permutes (the generic copy took a fifth of a
 * 64-channel layer's time); cpu_kernels.hpp picks which per level.
 */
#ifndef FASTCONV_WINOGRAD_GATHER_HPP
#define FASTCONV_WINOGRAD_GATHER_HPP

#include "geometry.hpp"
#if FC_HAVE_X86_DISPATCH
#include <immintrin.h>
#endif

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

/* `g` is the call's geometry (input height, width and padding for the
 * gather, output height and width for the scatter), `channel` one input
 * plane, `out_channel` one output plane. */
#define FC_WINO_GATHER_ARGS(T)                                                 \
    const fc_geometry *g, const T *channel, fc_index tiles_w, fc_index tile0, \
        fc_index n_tiles, fc_index lane0, fc_index nr, T *scratch
#define FC_WINO_GATHER_PASS g, channel, tiles_w, tile0, n_tiles, lane0, nr, scratch
#define FC_WINO_SCATTER_ARGS(T)                                                \
    const fc_geometry *g, const T *y, T *out_channel, fc_index tiles_w,       \
        fc_index tile0, fc_index n_tiles, fc_index lane0, fc_index nr
#define FC_WINO_SCATTER_PASS g, y, out_channel, tiles_w, tile0, n_tiles, lane0, nr

/* ------------------------------------------------------------------------ */
/* Gather: the alpha x alpha input tiles of one channel into scratch.        */
/*                                                                          */
/* Tiles are numbered row-major over a tiles_h x tiles_w grid; tile t covers */
/* input rows t_h*m - pad_top + [0, alpha) and columns t_w*m - pad_left +    */
/* [0, alpha) (alpha = m + r - 1), zero outside the image. Tiles tile0 .. tile0 + n_tiles go to  */
/* lanes lane0 .. lane0 + n_tiles of scratch[a][b][NR], zeros included (a  */
/* panel may hold tiles of several images; the caller zeroes unused lanes).  */

template <int M, int R, typename T>
static FC_ALWAYS_INLINE void fc_wino_gather(FC_WINO_GATHER_ARGS(T))
{
    const fc_index height = g->height, width = g->width;
    const fc_index pad_top = g->pad_top, pad_left = g->pad_left;
    const int alpha = M + R - 1;
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
            for (fc_index q = 0; q < run * M + R - 1; q += 64 / (fc_index)sizeof(T))
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



/* Scatter lanes lane0 .. lane0 + n_tiles of y[m][m][NR] (the output
 * transform's result) to tiles tile0 .. of one output channel, clipping the
 * last row/column of tiles to out_h x out_w. */
template <int M, typename T>
static FC_ALWAYS_INLINE void fc_wino_scatter(FC_WINO_SCATTER_ARGS(T))
{
    const fc_index out_h = g->out_h, out_w = g->out_w;
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
#if defined(__GNUC__)
#pragma GCC unroll 8
#endif
                for (int j = 0; j < M; ++j) row[t * M + j] = src[(fc_index)j * nr + t];
            for (fc_index t = full; t < run; ++t)
                for (int j = 0; j < M && (tw + t) * M + j < out_w; ++j)
                    row[t * M + j] = src[(fc_index)j * nr + t];
        }
        q += run;
    }
}

typedef void (*fc_wino_gather_f32_fn)(FC_WINO_GATHER_ARGS(float));
typedef void (*fc_wino_gather_f64_fn)(FC_WINO_GATHER_ARGS(double));
typedef void (*fc_wino_scatter_f32_fn)(FC_WINO_SCATTER_ARGS(float));
typedef void (*fc_wino_scatter_f64_fn)(FC_WINO_SCATTER_ARGS(double));

#if FC_HAVE_X86_DISPATCH
/* ------------------------------------------------------------------------ */
/* AVX-512 float32 gather and scatter for output tiles m = 2 and 4.         */
/*                                                                          */
/* A run of tiles in one tile row reads one contiguous stretch of each input */
/* row: tile t, column b is element t * M + b. The generic loops copy that    */
/* element by element (the runs of 7-28 tiles of typical layers are too      */
/* short for GCC's vectorised loop), which took a fifth of a 64-channel      */
/* layer's time. Here 16 tiles at a time are loaded as M + 1 vectors (masked */
/* at the image border, so padding reads as zero), split into the alpha      */
/* columns with permutes, and stored with a lane mask; the scatter is the    */
/* same in reverse. F(6x6) (stride 6) keeps the generic loops.              */
/* The columns past the first m are the earlier ones shifted by a lane, so  */
/* the larger filters' alpha = m + r - 1 columns come from the same loads.  */

/* GCC 12 reports the intrinsics' deliberately undefined pass-through
 * operands as maybe-uninitialized (clang has no such warning, and warns about
 * the unknown option). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

/* The mask of lanes [lo, hi) of 16, clipped. */
FC_TARGET_AVX512 static inline __mmask16 fc_lane_mask(fc_index lo, fc_index hi)
{
    if (lo < 0) lo = 0;
    if (hi > 16) hi = 16;
    if (hi <= lo) return 0;
    return (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

/* x shifted down one lane, with lane 15 taken from lane `from` of `next`. */
template <int from>
FC_TARGET_AVX512 static inline __m512 fc_shift_in(__m512 x, __m512 next)
{
    const __m512i n = _mm512_castps_si512(next);
    const __m512i top = from == 0 ? n : _mm512_alignr_epi32(n, n, from);
    return _mm512_castsi512_ps(_mm512_alignr_epi32(top, _mm512_castps_si512(x), 1));
}

/* Columns b = B .. ALPHA - 1 of the tiles: x[b][t] = seg[t * M + b] =
 * x[b - M][t + 1], so each is the column M before it shifted down one lane,
 * its last lane seg[15 M + b] = v[M][b - M] (b - M < r - 1 < 16). */
template <int M, int B, int ALPHA>
FC_TARGET_AVX512 static inline void fc_shift_columns(const __m512 *v, __m512 *x)
{
    if constexpr (B < ALPHA) {
        x[B] = fc_shift_in<B - M>(x[B - M], v[M]);
        fc_shift_columns<M, B + 1, ALPHA>(v, x);
    }
}

/* x[b][t] = seg[t * M + b] for b < alpha = M + R - 1, t < 16, from
 * seg = v[0 .. M]. */
template <int M, int R>
FC_TARGET_AVX512 static inline void fc_deinterleave(const __m512 *v, __m512 *x)
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
    fc_shift_columns<M, M, M + R - 1>(v, x);
}

template <int M, int R>
FC_TARGET_AVX512 static void fc_wino_gather_f32_avx512_runs(FC_WINO_GATHER_ARGS(float))
{
    const fc_index height = g->height, width = g->width;
    const fc_index pad_top = g->pad_top, pad_left = g->pad_left;
    const int alpha = M + R - 1;
    for (fc_index q = 0; q < n_tiles;) {
        const fc_tile_run r = fc_tile_run_at(tile0 + q, n_tiles - q, tiles_w);
        const fc_index th = r.th, tw = r.tw, run = r.run;
        const fc_index col0 = tw * M - pad_left;
        for (fc_index t = 0; t < run; t += 16) {
            /* The same columns in every row of the tiles: masks once. */
            const __mmask16 store = fc_lane_mask(0, run - t);
            const fc_index c = col0 + t * M;
            __mmask16 load[M + 1];
            for (int j = 0; j <= M; ++j) load[j] = fc_lane_mask(-(c + 16 * j), width - (c + 16 * j));
            float *dst = scratch + lane0 + q + t;
            for (int a = 0; a < alpha; ++a, dst += (fc_index)alpha * nr) {
                const fc_index ih = th * M - pad_top + a;
                __m512 v[M + 1], x[alpha];
                if (ih >= 0 && ih < height) {
                    const float *row = channel + ih * width;
                    if (t == 0) {
                        /* As in the generic gather: the next plane's row. */
                        for (fc_index p = 0; p < run * M + R - 1; p += 16)
                            __builtin_prefetch(row + height * width + col0 + p);
                    }
#pragma GCC unroll 8
                    for (int j = 0; j <= M; ++j)
                        v[j] = _mm512_maskz_loadu_ps(load[j], row + c + 16 * j);
                } else {
#pragma GCC unroll 8
                    for (int j = 0; j <= M; ++j) v[j] = _mm512_setzero_ps();
                }
                fc_deinterleave<M, R>(v, x);
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
FC_TARGET_AVX512 static inline void fc_interleave(const __m512 *y, __m512 *out)
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
FC_TARGET_AVX512 static void fc_wino_scatter_f32_avx512_runs(FC_WINO_SCATTER_ARGS(float))
{
    const fc_index out_h = g->out_h, out_w = g->out_w;
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
            const __mmask16 load = fc_lane_mask(0, run - t);
            __mmask16 store[M];
            for (int k = 0; k < M; ++k) store[k] = fc_lane_mask(0, columns - t * M - 16 * k);
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

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

#endif /* FASTCONV_WINOGRAD_GATHER_HPP */
