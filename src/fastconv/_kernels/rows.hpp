/*
 * Row-panel direct convolution: the GEMM tile reads its B rows in place.
 *
 * For a block of output rows of one image and group, the input rows they
 * read are copied once, zero-padded and split by column phase (column
 * u * stride_w + phase) into a scratch. Then for kernel tap (c, i, j) and
 * the output pixels ow0 .. ow0 + NR of output row r of the block, the B row
 * is the NR contiguous elements at
 *     base(r, ow0) + offset(c, i, j),
 *     base   = scratch + r * out_row_stride + ow0,
 *     offset = c * channel_stride + i * kernel_row_stride
 *              + ((j * dil_w) % stride_w) * phase_stride + (j * dil_w) / stride_w.
 * Unlike im2col, nothing is copied once per kernel tap: a k x k kernel reads
 * each input element from the scratch k * k times instead of storing it
 * k * k times.
 *
 * Two layouts:
 * - stride 1: [channel][input row][u]; output row r reads input rows r + i *
 *   dil_h, so consecutive output rows are one input row apart and every
 *   input row is held once;
 * - strided: [channel][kernel row i][phase][output row r][u], the input row
 *   that output row r reads through kernel row i held once per (r, i). Rows
 *   are copied up to kernel_h / stride_h times, but consecutive output rows
 *   are then phase_len apart here too.
 * Either way out_row_stride == phase_len, so the output rows of a block are
 * one run of virtual pixels v = r * phase_len + ow, and a "dense" panel may
 * run across row ends, wasting only the phase_len - out_w columns of the
 * kernel's reach. Rows of whole panels (out_w_padded a multiple of NR) let
 * every panel stay inside one row instead.
 */
#ifndef FASTCONV_ROWS_HPP
#define FASTCONV_ROWS_HPP

#include "geometry.hpp"

struct fc_rows_layout {
    fc_index out_rows;          /* output rows of the block */
    fc_index phase_len;         /* u positions per phase = out_row_stride */
    fc_index phase_stride;      /* between the phases of one input row */
    fc_index kernel_row_stride; /* between kernel rows i (i * dil_h input rows) */
    fc_index channel_stride;
    int per_kernel_row;         /* the strided layout */
    int dense;                  /* panels run across row ends */
};

/* Scratch layout for `out_rows` output rows; out_w_padded is the output
 * width, or for whole-panel rows that width rounded up to whole panels. */
static inline fc_rows_layout fc_rows_plan(const fc_geometry *g, fc_index out_rows,
                                          fc_index out_w_padded)
{
    const fc_index kernel_h = g->kernel_h, kernel_w = g->kernel_w;
    const fc_index stride_h = g->stride_h, stride_w = g->stride_w;
    const fc_index dil_h = g->dil_h, dil_w = g->dil_w;
    fc_rows_layout l;
    l.out_rows = out_rows;
    l.phase_len = out_w_padded + ((kernel_w - 1) * dil_w) / stride_w;
    l.per_kernel_row = stride_h != 1 || stride_w != 1;
    if (l.per_kernel_row) {
        l.phase_stride = out_rows * l.phase_len;
        l.kernel_row_stride = stride_w * l.phase_stride;
        l.channel_stride = kernel_h * l.kernel_row_stride;
    } else {
        l.phase_stride = 0; /* one phase */
        l.kernel_row_stride = dil_h * l.phase_len;
        l.channel_stride = ((out_rows - 1) + (kernel_h - 1) * dil_h + 1) * l.phase_len;
    }
    l.dense = 0;
    return l;
}

/* Input row ih of one channel (zeros outside the image), split by phase:
 * phase p's len elements at dst + p * phase_stride. */
template <typename T>
static inline void fc_rows_fill_row(const T *channel, fc_index height, fc_index width,
                                    fc_index ih, fc_index stride_w, fc_index pad_left,
                                    fc_index len, fc_index phase_stride, T *dst)
{
    for (fc_index phase = 0; phase < stride_w; ++phase) {
        T *d = dst + phase * phase_stride;
        if (ih < 0 || ih >= height) {
            for (fc_index u = 0; u < len; ++u) d[u] = 0;
            continue;
        }
        const T *in_row = channel + ih * width;
#if defined(__GNUC__)
        /* The same row of the next channel plane, copied next: the hardware
         * prefetcher does not follow the jump between planes. Past the last
         * plane the hint is harmless: prefetches do not fault. */
        if (phase == 0)
            for (fc_index q = 0; q < width; q += 64 / (fc_index)sizeof(T))
                __builtin_prefetch(in_row + height * width + q);
#endif
        /* u with column u * stride_w + phase - pad_left in [0, width). */
        const fc_index first = phase - pad_left;
        fc_index lo = first >= 0 ? 0 : (-first + stride_w - 1) / stride_w;
        fc_index hi = width - 1 - first >= 0 ? (width - 1 - first) / stride_w + 1 : 0;
        if (lo > len) lo = len;
        if (hi > len) hi = len;
        if (hi < lo) hi = lo;
        for (fc_index u = 0; u < lo; ++u) d[u] = 0;
        if (stride_w == 1) {
            for (fc_index u = lo; u < hi; ++u) d[u] = in_row[u + first];
        } else if (stride_w == 2) {
            /* A constant stride, which compilers vectorise. */
            for (fc_index u = lo; u < hi; ++u) d[u] = in_row[2 * u + first];
        } else {
            for (fc_index u = lo; u < hi; ++u) d[u] = in_row[u * stride_w + first];
        }
        for (fc_index u = hi; u < len; ++u) d[u] = 0;
    }
}

/* Copy the rows that output rows oh0 .. oh0 + out_rows read, of the
 * group's input planes at `x`, into `dst`. */
template <typename T>
static inline void fc_rows_fill(const fc_rows_layout *l, const fc_geometry *g, const T *x,
                                fc_index oh0, T *dst)
{
    const fc_index channels = g->group_in, height = g->height, width = g->width;
    const fc_index kernel_h = g->kernel_h, stride_h = g->stride_h, stride_w = g->stride_w;
    const fc_index dil_h = g->dil_h, pad_top = g->pad_top, pad_left = g->pad_left;
    const fc_index len = l->phase_len;
    for (fc_index c = 0; c < channels; ++c) {
        const T *channel = x + c * height * width;
        T *dst_c = dst + c * l->channel_stride;
        if (l->per_kernel_row) {
            for (fc_index i = 0; i < kernel_h; ++i)
                for (fc_index r = 0; r < l->out_rows; ++r)
                    fc_rows_fill_row(channel, height, width,
                                     (oh0 + r) * stride_h - pad_top + i * dil_h, stride_w,
                                     pad_left, len, l->phase_stride,
                                     dst_c + i * l->kernel_row_stride + r * len);
        } else {
            const fc_index n_rows = l->channel_stride / len;
            for (fc_index r = 0; r < n_rows; ++r)
                fc_rows_fill_row(channel, height, width, oh0 - pad_top + r, 1, pad_left,
                                 len, 0, dst_c + r * len);
        }
    }
}

/* Offsets of taps tap0 .. tap0 + kc (tap = (c * kernel_h + i) * kernel_w + j). */
static inline void fc_rows_offsets(const fc_rows_layout *l, const fc_geometry *g,
                                   fc_index tap0, fc_index kc, fc_index *offsets)
{
    const fc_index kernel_w = g->kernel_w, stride_w = g->stride_w, dil_w = g->dil_w;
    const fc_index area = g->kernel_h * kernel_w;
    /* The first tap's (c, i, j) by division, then counters: a division per
     * tap (four, 64-bit) took 50-90 us per call for the 2304 taps of a
     * 256-channel 3x3 layer, as long as its rows' whole copy. */
    fc_index c = tap0 / area;
    fc_index i = (tap0 - c * area) / kernel_w;
    fc_index j = tap0 - c * area - i * kernel_w;
    /* Column j * dil_w of the kernel: its phase and its step in that phase. */
    fc_index phase = (j * dil_w) % stride_w, step = (j * dil_w) / stride_w;
    for (fc_index r = 0; r < kc; ++r) {
        offsets[r] = c * l->channel_stride + i * l->kernel_row_stride +
                     phase * l->phase_stride + step;
        if (++j == kernel_w) {
            j = phase = step = 0;
            if (++i == g->kernel_h) {
                i = 0;
                ++c;
            }
        } else if (stride_w == 1) {
            step += dil_w;
        } else {
            phase += dil_w;
            step += phase / stride_w;
            phase %= stride_w;
        }
    }
}

#endif /* FASTCONV_ROWS_HPP */
