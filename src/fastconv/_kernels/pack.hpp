/*
 * Packing of input blocks for the direct convolution's GEMM tile (gemm_tile.hpp).
 *
 * The direct convolution of one image and group is the matrix product
 * out[k, p] = sum_r weight[k, r] * col[r, p] over kernel taps r = (c, i, j)
 * and output pixels p = (oh, ow). fc_pack_input gathers rows [r0, r1) of the
 * block col[tap0 : tap0 + kc, pixel0 : pixel0 + n_pixels] into panels laid
 * out [panel][tap][nr] (the layout the GEMM tile streams), reading the
 * padding as zeros, so no padded copy of the input is ever made. (Several
 * threads may fill one block, each its own rows.)
 *
 * Compiled per instruction set like the GEMM tiles (cpu_kernels.hpp): the
 * copies along an output row are contiguous (stride 1) or fixed-step
 * (stride 2) loops that vectorise; other strides take a generic loop.
 */
#ifndef FASTCONV_PACK_HPP
#define FASTCONV_PACK_HPP

#include "geometry.hpp"


/* Write `count` pixels from block pixel q on into the panels: src[t * step]
 * or, with src == NULL, zeros. The run may straddle panels of nr pixels. */
template <typename T, int STEP>
static FC_ALWAYS_INLINE void fc_put_run(T *row_of_panel0, fc_index q, fc_index count,
                                        const T *src, fc_index step, fc_index nr,
                                        fc_index panel_stride)
{
    if (STEP > 0) step = STEP;
    while (count > 0) {
        const fc_index panel = q / nr, offset = q - panel * nr;
        fc_index n = nr - offset;
        if (n > count) n = count;
        T *dst = row_of_panel0 + panel * panel_stride + offset;
        if (src == NULL) {
            for (fc_index t = 0; t < n; ++t) dst[t] = 0;
        } else {
            for (fc_index t = 0; t < n; ++t) dst[t] = src[t * step];
            src += n * step;
        }
        q += n;
        count -= n;
    }
}

template <typename T, int STEP>
static FC_ALWAYS_INLINE void fc_pack_impl(const fc_geometry *g, fc_index nr, const T *image,
                                          fc_index tap0, fc_index kc, fc_index r0,
                                          fc_index r1, fc_index pixel0, fc_index n_pixels,
                                          T *dst)
{
    const fc_index n_panels = (n_pixels + nr - 1) / nr;
    const fc_index panel_stride = kc * nr;
    const fc_index kernel_area = g->kernel_h * g->kernel_w;
    const fc_index H = g->height, W = g->width, Wo = g->out_w;
    const fc_index sw = STEP > 0 ? STEP : g->stride_w;
    /* Tap (c, i, j) of row r0 by division, then counters (divisions per
     * row cost as much as copying a short row). */
    fc_index c = (tap0 + r0) / kernel_area;
    fc_index i = (tap0 + r0 - c * kernel_area) / g->kernel_w;
    fc_index j = tap0 + r0 - c * kernel_area - i * g->kernel_w;
    const fc_index first_oh = pixel0 / Wo, first_ow = pixel0 - first_oh * Wo;
    for (fc_index r = r0; r < r1; ++r, ++j) {
        if (j == g->kernel_w) {
            j = 0;
            if (++i == g->kernel_h) {
                i = 0;
                ++c;
            }
        }
        T *dst_row = dst + r * nr;
        fc_index q = 0, oh = first_oh, ow = first_ow;
        for (; q < n_pixels; ++oh, ow = 0) {
            /* One output row segment: pixels (oh, ow .. ow + seg). */
            fc_index seg = Wo - ow;
            if (seg > n_pixels - q) seg = n_pixels - q;
            const fc_index ih = oh * g->stride_h - g->pad_top + i * g->dil_h;
            if (ih < 0 || ih >= H) {
                fc_put_run<T, STEP>(dst_row, q, seg, (const T *)NULL, sw, nr, panel_stride);
            } else {
                const T *row = image + (c * H + ih) * W;
                /* Input column of the first pixel, then the pixels t whose
                 * column iw0 + t*sw falls inside [0, W). */
                const fc_index iw0 = ow * sw - g->pad_left + j * g->dil_w;
                fc_index t_lo = iw0 >= 0 ? 0 : (-iw0 + sw - 1) / sw;
                fc_index t_hi = iw0 > W - 1 ? 0 : (W - 1 - iw0) / sw + 1;
                if (t_lo > seg) t_lo = seg;
                if (t_hi > seg) t_hi = seg;
                if (t_hi < t_lo) t_hi = t_lo;
                fc_put_run<T, STEP>(dst_row, q, t_lo, (const T *)NULL, sw, nr, panel_stride);
                fc_put_run<T, STEP>(dst_row, q + t_lo, t_hi - t_lo, row + iw0 + t_lo * sw, sw,
                                    nr, panel_stride);
                fc_put_run<T, STEP>(dst_row, q + t_hi, seg - t_hi, (const T *)NULL, sw, nr,
                                    panel_stride);
            }
            q += seg;
        }
        fc_put_run<T, STEP>(dst_row, n_pixels, n_panels * nr - n_pixels, (const T *)NULL, sw,
                            nr, panel_stride);
    }
}

#define FC_PACK_ARGS(T)                                                        \
    const fc_geometry *g, fc_index nr, const T *image, fc_index tap0,         \
        fc_index kc, fc_index r0, fc_index r1, fc_index pixel0,               \
        fc_index n_pixels, T *dst
#define FC_PACK_PASS g, nr, image, tap0, kc, r0, r1, pixel0, n_pixels, dst

/* A pointwise, stride-1, unpadded layer: block pixel q of tap (channel) r is
 * input element pixel0 + q of that channel, so each row of the block is one
 * contiguous run, copied a panel row at a time with no per-segment index
 * arithmetic. */
template <typename T>
static FC_ALWAYS_INLINE void fc_pack_pointwise(FC_PACK_ARGS(T))
{
    const fc_index plane = g->height * g->width;
    const fc_index panel_stride = kc * nr;
    const fc_index n_full = n_pixels / nr, rest = n_pixels - n_full * nr;
    for (fc_index r = r0; r < r1; ++r) {
        const T *src = image + (tap0 + r) * plane + pixel0;
        T *out = dst + r * nr;
        for (fc_index p = 0; p < n_full; ++p, src += nr, out += panel_stride)
            for (fc_index t = 0; t < nr; ++t) out[t] = src[t];
        if (rest) {
            for (fc_index t = 0; t < rest; ++t) out[t] = src[t];
            for (fc_index t = rest; t < nr; ++t) out[t] = 0;
        }
    }
}

static FC_ALWAYS_INLINE int fc_is_pointwise_contiguous(const fc_geometry *g)
{
    return g->kernel_h == 1 && g->kernel_w == 1 && g->stride_h == 1 && g->stride_w == 1 &&
           g->pad_top == 0 && g->pad_left == 0 && g->out_h == g->height &&
           g->out_w == g->width;
}

template <typename T>
static FC_ALWAYS_INLINE void fc_pack_any(FC_PACK_ARGS(T))
{
    if (fc_is_pointwise_contiguous(g)) fc_pack_pointwise<T>(FC_PACK_PASS);
    else if (g->stride_w == 1) fc_pack_impl<T, 1>(FC_PACK_PASS);
    else if (g->stride_w == 2) fc_pack_impl<T, 2>(FC_PACK_PASS);
    else fc_pack_impl<T, 0>(FC_PACK_PASS);
}

typedef void (*fc_pack_f32_fn)(FC_PACK_ARGS(float));
typedef void (*fc_pack_f64_fn)(FC_PACK_ARGS(double));

#endif /* FASTCONV_PACK_HPP */
