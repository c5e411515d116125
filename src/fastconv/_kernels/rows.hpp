/*
 * Row-panel direct convolution: the micro-kernel reads its B rows in place.
 *
 * For a block of output rows of one image and group, the input rows they
 * read are copied once, zero-padded and split by column phase (column
 * u * stride + phase), into a scratch laid out [channel][row][phase][u].
 * Then for kernel tap (c, i, j) and the output pixels ow0 .. ow0 + NR of
 * output row oh, the B row is the NR contiguous elements at
 *     base(oh, ow0) + offset(c, i, j),
 *     base   = scratch + (oh - oh0) * stride_h * row_stride + ow0,
 *     offset = c * channel_stride + i * dil_h * row_stride
 *              + ((j * dil_w) % stride_w) * phase_len + (j * dil_w) / stride_w.
 * Unlike im2col, nothing is copied once per kernel tap: a k x k kernel reads
 * each input element from the scratch k * k times instead of storing it
 * k * k times. The scratch rows run past the output width (up to a whole
 * number of NR panels) so that the last panel of a row can be computed in
 * full; its surplus columns are dropped.
 */
#ifndef FASTCONV_ROWS_HPP
#define FASTCONV_ROWS_HPP

#include "microkernel.hpp"

struct fc_rows_layout {
    fc_index rows;           /* input rows held per channel */
    fc_index phase_len;      /* u positions per phase */
    fc_index row_stride;     /* stride_w * phase_len */
    fc_index channel_stride; /* rows * row_stride */
    int dense;               /* stride 1: panels run across row ends */
};

/* Scratch layout for `out_rows` output rows; out_w_padded is the output
 * width rounded up to whole panels. */
static inline fc_rows_layout fc_rows_plan(fc_index out_rows, fc_index out_w_padded,
                                          fc_index kernel_h, fc_index kernel_w,
                                          fc_index stride_h, fc_index stride_w,
                                          fc_index dil_h, fc_index dil_w)
{
    fc_rows_layout l;
    l.rows = (out_rows - 1) * stride_h + (kernel_h - 1) * dil_h + 1;
    l.phase_len = out_w_padded + ((kernel_w - 1) * dil_w) / stride_w;
    l.row_stride = stride_w * l.phase_len;
    l.channel_stride = l.rows * l.row_stride;
    l.dense = 0;
    return l;
}

/* Copy the rows that output rows from oh0 on read, of `channels` planes of
 * height x width, into `dst` (zeros outside the image). */
template <typename T>
static inline void fc_rows_fill(const fc_rows_layout *l, const T *x, fc_index channels,
                                fc_index height, fc_index width, fc_index oh0,
                                fc_index stride_h, fc_index stride_w, fc_index pad_top,
                                fc_index pad_left, T *dst)
{
    const fc_index len = l->phase_len;
    for (fc_index c = 0; c < channels; ++c)
        for (fc_index r = 0; r < l->rows; ++r) {
            const fc_index ih = oh0 * stride_h - pad_top + r;
            T *out_row = dst + c * l->channel_stride + r * l->row_stride;
            if (ih < 0 || ih >= height) {
                for (fc_index q = 0; q < l->row_stride; ++q) out_row[q] = 0;
                continue;
            }
            const T *in_row = x + (c * height + ih) * width;
            for (fc_index phase = 0; phase < stride_w; ++phase) {
                T *d = out_row + phase * len;
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
                } else {
                    for (fc_index u = lo; u < hi; ++u) d[u] = in_row[u * stride_w + first];
                }
                for (fc_index u = hi; u < len; ++u) d[u] = 0;
            }
        }
}

/* Offsets of taps tap0 .. tap0 + kc (tap = (c * kernel_h + i) * kernel_w + j). */
static inline void fc_rows_offsets(const fc_rows_layout *l, fc_index tap0, fc_index kc,
                                   fc_index kernel_h, fc_index kernel_w, fc_index stride_w,
                                   fc_index dil_h, fc_index dil_w, fc_index *offsets)
{
    const fc_index area = kernel_h * kernel_w;
    for (fc_index r = 0; r < kc; ++r) {
        const fc_index tap = tap0 + r;
        const fc_index c = tap / area;
        const fc_index i = (tap - c * area) / kernel_w;
        const fc_index j = tap - c * area - i * kernel_w;
        const fc_index col = j * dil_w;
        offsets[r] = c * l->channel_stride + i * dil_h * l->row_stride +
                     (col % stride_w) * l->phase_len + col / stride_w;
    }
}

#endif /* FASTCONV_ROWS_HPP */
