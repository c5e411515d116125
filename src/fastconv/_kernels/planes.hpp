/*
 * Direct convolution for groups with few input channels (depthwise and
 * similar): one output plane at a time, no GEMM.
 *
 * With one to four input channels per group there is no reduction worth
 * blocking, so packing panels for the GEMM tile would cost more than the
 * arithmetic. The input rows a block of output rows reads are copied with
 * their zero padding into a scratch (one extra pass over the input, no
 * bounds checks after it); then each run of output pixels sums all its taps
 * in one vector register. Summation order: bias, then taps in (channel, row,
 * column) order.
 *
 * The "plane kernel" of fastconv._direct; compiled per instruction set with
 * VLEN (the vector width in elements) to match (cpu_kernels.hpp).
 */
#ifndef FASTCONV_PLANES_HPP
#define FASTCONV_PLANES_HPP

#include "geometry.hpp"


/* Rows of the group's input planes that output rows [row0, row1) read,
 * copied with their zero padding into `padded` ([channel][row][column]),
 * so that the loops below need no bounds checks. Extra zero columns after
 * each row let the last run of a row be computed with a full vector (the
 * surplus outputs are dropped). With `borders_ready`, `padded` holds the
 * copy made for the same rows of another plane: the zeros are in place and
 * only the image's values are copied. Returns the row stride. */
#define FC_PLANE_SLACK 16

/* Plain loops: rows are short (7-56 elements), and a libc call per row
 * would dominate. GCC would turn these loops back into memcpy/memset calls
 * (measured: 29% of a 512-channel depthwise 3x3 on 14x14), hence the
 * attribute; the function is not inlined so that it can carry it. */
#if defined(__GNUC__) && !defined(__clang__)
#define FC_PLAIN_LOOPS __attribute__((noinline, optimize("no-tree-loop-distribute-patterns")))
#else
#define FC_PLAIN_LOOPS
#endif

template <typename T>
static FC_PLAIN_LOOPS fc_index fc_plane_pad(const fc_geometry *geo, const T *x,
                                            fc_index row0, fc_index row1, T *padded,
                                            int borders_ready, fc_index *first_row)
{
    const fc_index H = geo->height, W = geo->width;
    const fc_index span_w = (geo->out_w - 1) * geo->stride_w + (geo->kernel_w - 1) * geo->dil_w + 1;
    const fc_index r0 = row0 * geo->stride_h - geo->pad_top;
    const fc_index rows = (row1 - 1 - row0) * geo->stride_h + (geo->kernel_h - 1) * geo->dil_h + 1;
    const fc_index left = geo->pad_left;
    const fc_index ld = span_w + FC_PLANE_SLACK;
    fc_index copy = W;
    if (copy > span_w - left) copy = span_w - left;
    for (fc_index c = 0; c < geo->group_in; ++c)
        for (fc_index r = 0; r < rows; ++r) {
            T *dst = padded + (c * rows + r) * ld;
            const fc_index ih = r0 + r;
            if (ih < 0 || ih >= H || copy <= 0) {
                if (!borders_ready)
                    for (fc_index q = 0; q < ld; ++q) dst[q] = 0;
                continue;
            }
            const T *src = x + (c * H + ih) * W;
#if defined(__GNUC__)
            /* The same row of the next plane, which the next call (or
             * channel) copies: the hardware prefetcher does not follow the
             * jump between planes. Past the last plane the hint is
             * harmless: prefetches do not fault. */
            for (fc_index q = 0; q < copy; q += 64 / (fc_index)sizeof(T))
                __builtin_prefetch(src + H * W + q);
#endif
            for (fc_index q = 0; q < copy; ++q) dst[left + q] = src[q];
            if (!borders_ready) {
                for (fc_index q = 0; q < left; ++q) dst[q] = 0;
                for (fc_index q = left + copy; q < ld; ++q) dst[q] = 0;
            }
        }
    *first_row = rows;
    return ld;
}

/* Output rows [row0, row1) of one output channel. `x` is the group's first
 * input plane, `w` the channel's (group_in, kH, kW) filter, `padded` a
 * scratch of fc_plane_scratch() elements. KH, KW > 0 fix the kernel size at
 * compile time, so all taps of a run of VLEN outputs sum in one register;
 * 0 means any size (read from geo). */
template <typename T, int KH, int KW, int VLEN>
static FC_ALWAYS_INLINE void fc_plane_rows_impl(const fc_geometry *geo,
                                                const T *x, const T *w, T bias,
                                                T *out, fc_index row0, fc_index row1,
                                                T *padded, int borders_ready)
{
    fc_index rows_per_channel;
    const fc_index ld = fc_plane_pad(geo, x, row0, row1, padded, borders_ready,
                                     &rows_per_channel);
    const fc_index Wo = geo->out_w, sh = geo->stride_h, sw = geo->stride_w;
    const fc_index dh = geo->dil_h, dw = geo->dil_w;
    const fc_index kh = KH > 0 ? KH : geo->kernel_h, kw = KW > 0 ? KW : geo->kernel_w;
    const fc_index channel_stride = rows_per_channel * ld;
    for (fc_index oh = row0; oh < row1; ++oh) {
        T *acc = out + oh * Wo;
        const T *base = padded + (oh - row0) * sh * ld;
        fc_index ow = 0;
#if FC_HAVE_VECTOR_EXTENSIONS
        if (KH > 0 && KW > 0 && sw == 1 && VLEN > 1 && VLEN <= FC_PLANE_SLACK) {
            typedef T vec __attribute__((vector_size(VLEN * sizeof(T))));
            typedef T uvec __attribute__((vector_size(VLEN * sizeof(T)), aligned(sizeof(T))));
            for (; ow < Wo; ow += VLEN) {
                vec s = (vec){} + bias;
                for (fc_index c = 0; c < geo->group_in; ++c)
                    for (int i = 0; i < KH; ++i)
                        for (int j = 0; j < KW; ++j)
                            s += w[(c * KH + i) * KW + j] *
                                 *(const uvec *)(base + c * channel_stride + i * dh * ld + ow + j * dw);
                if (geo->relu) s = s < 0 ? (vec){} : s;
                if (ow + VLEN <= Wo) {
                    *(uvec *)(acc + ow) = s;
                } else {
                    /* The row's last run reads into the slack; keep its head
                     * (a fixed-length loop: a masked store, not a memcpy). */
                    T tail[VLEN];
                    *(uvec *)tail = s;
                    for (int q = 0; q < VLEN; ++q)
                        if (ow + q < Wo) acc[ow + q] = tail[q];
                }
            }
        }
#endif
        for (; ow < Wo; ++ow) {
            T s = bias;
            for (fc_index c = 0; c < geo->group_in; ++c)
                for (fc_index i = 0; i < kh; ++i) {
                    const T *row = base + c * channel_stride + i * dh * ld + ow * sw;
                    for (fc_index j = 0; j < kw; ++j) s += w[(c * kh + i) * kw + j] * row[j * dw];
                }
            if (geo->relu && s < 0) s = 0;
            acc[ow] = s;
        }
    }
}

/* Scratch elements one call of fc_plane_rows needs for `rows` output rows. */
static inline fc_index fc_plane_scratch(const fc_geometry *geo, fc_index rows)
{
    const fc_index span_w = (geo->out_w - 1) * geo->stride_w + (geo->kernel_w - 1) * geo->dil_w + 1;
    const fc_index span_h = (rows - 1) * geo->stride_h + (geo->kernel_h - 1) * geo->dil_h + 1;
    return geo->group_in * span_h * (span_w + FC_PLANE_SLACK);
}

/* Kernel sizes with a compiled fast path; others take the general one. */
template <typename T, int VLEN>
static FC_ALWAYS_INLINE void fc_plane_rows_any(const fc_geometry *geo, const T *x,
                                               const T *w, T bias, T *out,
                                               fc_index row0, fc_index row1, T *padded,
                                               int borders_ready)
{
    if (geo->kernel_h == 3 && geo->kernel_w == 3) {
        /* Narrow rows (7, 14 wide) use half vectors rather than scalars. */
        if (geo->out_w <= VLEN / 2 && VLEN >= 8)
            fc_plane_rows_impl<T, 3, 3, (VLEN >= 2 ? VLEN / 2 : 1)>(geo, x, w, bias, out, row0, row1, padded, borders_ready);
        else
            fc_plane_rows_impl<T, 3, 3, VLEN>(geo, x, w, bias, out, row0, row1, padded, borders_ready);
    } else if (geo->kernel_h == 5 && geo->kernel_w == 5) {
        fc_plane_rows_impl<T, 5, 5, VLEN>(geo, x, w, bias, out, row0, row1, padded, borders_ready);
    } else {
        fc_plane_rows_impl<T, 0, 0, VLEN>(geo, x, w, bias, out, row0, row1, padded, borders_ready);
    }
}

#define FC_PLANE_ARGS(T)                                                       \
    const fc_geometry *geo, const T *x, const T *w, T bias, T *out,     \
        fc_index row0, fc_index row1, T *padded, int borders_ready
#define FC_PLANE_PASS geo, x, w, bias, out, row0, row1, padded, borders_ready

typedef void (*fc_plane_f32_fn)(FC_PLANE_ARGS(float));
typedef void (*fc_plane_f64_fn)(FC_PLANE_ARGS(double));

#endif /* FASTCONV_PLANES_HPP */
