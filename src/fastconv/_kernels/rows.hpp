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
 * - polyphase: [channel][row phase a][column phase][phase row q][u], phase
 *   row q of row phase a holding input row (oh0 + q) * stride_h + a
 *   (- pad_top). Output row r reads, through kernel row i, phase row
 *   r + (i * dil_h) / stride_h of row phase (i * dil_h) % stride_h, so
 *   consecutive output rows are one phase row apart and every input row is
 *   held once. At stride 1 this is [channel][input row][u];
 * - per kernel row: [channel][kernel row i][column phase][output row r][u],
 *   the input row that output row r reads through kernel row i held once
 *   per (r, i), up to kernel_h / stride_h copies of it. Taken where it
 *   copies less: blocks of one or two output rows of a strided layer, and
 *   kernels that skip row phases (kernel_h < stride_h, or a dilation that
 *   is a multiple of the stride), whose polyphase copy would hold rows
 *   nothing reads.
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
    fc_index phase_stride;      /* between the column phases of one input row */
    fc_index kernel_row_stride; /* between kernel rows i (per kernel row) */
    fc_index phase_rows;        /* rows of each phase (polyphase) */
    fc_index row_phase_stride;  /* between row phases (polyphase) */
    fc_index channel_stride;
    int per_kernel_row;         /* the per-kernel-row layout, else polyphase */
    int dense;                  /* panels run across row ends */
};

/* Whether the per-kernel-row layout copies fewer elements than the
 * polyphase one for `out_rows` output rows (rows_layout in
 * fastconv._plan.direct mirrors this). */
static inline int fc_rows_per_kernel_row(const fc_geometry *g, fc_index out_rows)
{
    const fc_index stride_h = g->stride_h;
    if (stride_h == 1 && g->stride_w == 1) return 0;
    /* Row phases some kernel row reads: all of them, or fall back. */
    fc_index used = 0;
    for (fc_index a = 0; a < stride_h; ++a)
        for (fc_index i = 0; i < g->kernel_h; ++i)
            if ((i * g->dil_h) % stride_h == a) {
                ++used;
                break;
            }
    if (used < stride_h) return 1;
    const fc_index polyphase = stride_h * (out_rows + ((g->kernel_h - 1) * g->dil_h) / stride_h);
    return g->kernel_h * out_rows < polyphase;
}

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
    l.per_kernel_row = fc_rows_per_kernel_row(g, out_rows);
    l.phase_stride = out_rows * l.phase_len;
    if (l.per_kernel_row) {
        l.phase_rows = 0;
        l.row_phase_stride = 0;
        l.kernel_row_stride = stride_w * l.phase_stride;
        l.channel_stride = kernel_h * l.kernel_row_stride;
    } else {
        l.phase_rows = out_rows + ((kernel_h - 1) * dil_h) / stride_h;
        l.phase_stride = l.phase_rows * l.phase_len;
        l.row_phase_stride = stride_w * l.phase_stride;
        l.kernel_row_stride = 0;
        l.channel_stride = stride_h * l.row_phase_stride;
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
            for (fc_index a = 0; a < stride_h; ++a)
                for (fc_index q = 0; q < l->phase_rows; ++q)
                    fc_rows_fill_row(channel, height, width, (oh0 + q) * stride_h + a - pad_top,
                                     stride_w, pad_left, len, l->phase_stride,
                                     dst_c + a * l->row_phase_stride + q * len);
        }
    }
}

/* Offsets of taps tap0 .. tap0 + kc (tap = (c * kernel_h + i) * kernel_w + j). */
static inline void fc_rows_offsets(const fc_rows_layout *l, const fc_geometry *g,
                                   fc_index tap0, fc_index kc, fc_index *offsets)
{
    const fc_index kernel_w = g->kernel_w, stride_w = g->stride_w, dil_w = g->dil_w;
    const fc_index area = g->kernel_h * kernel_w;
    for (fc_index r = 0; r < kc; ++r) {
        const fc_index tap = tap0 + r;
        const fc_index c = tap / area;
        const fc_index i = (tap - c * area) / kernel_w;
        const fc_index j = tap - c * area - i * kernel_w;
        const fc_index col = j * dil_w, row = i * g->dil_h, stride_h = g->stride_h;
        const fc_index rows = l->per_kernel_row
                                  ? i * l->kernel_row_stride
                                  : (row % stride_h) * l->row_phase_stride +
                                        (row / stride_h) * l->phase_len;
        offsets[r] = c * l->channel_stride + rows + (col % stride_w) * l->phase_stride +
                     col / stride_w;
    }
}

#endif /* FASTCONV_ROWS_HPP */
