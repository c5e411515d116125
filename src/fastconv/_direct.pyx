# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""The direct convolution (private): weights as its paths read them, the
plane path and the channel-lanes path.

The GEMM paths (packed, shared columns, rows) are in
:mod:`fastconv._direct_gemm`. Which path runs, and how its work is cut for
the threads, is the plan's (``fastconv._plan.direct``); each driver executes
its blocking and decides nothing. Every output element is produced by one
work item with the same reduction order whatever the blocking and thread
count, so results are bit-identical for any ``num_threads``.
"""

from cython cimport floating
from libc.stdint cimport int64_t

from ._cpu cimport kernel_table
from ._kernels cimport *
from ._parallel cimport THREAD_STATE_BYTES, SLOT_SHARED, ceil_div, numeric_t, run_work_items

import numpy as np

# Kernels of the level in use: fastconv._cpu's one table.
fc_use_kernel_table(kernel_table())

#: Pixels of one channel-lanes tile.
CHANNEL_LANES_TILE_PIXELS = FC_CHANNEL_LANES_PIXELS
#: Elements past the right end of each of the plane kernel's padded rows.
PLANE_ROW_SLACK = FC_PLANE_SLACK


def scratch_peak_bytes(bint reset=False):
    """The most scratch one thread of the package's kernels asked to hold at
    once since the last reset, in bytes (for tests of the scratch budgets
    and of the planner's workspace). ``reset=True`` returns it and starts
    again from zero."""
    return fc_scratch_peak_bytes(reset)


def tile_shape(dtype):
    """``(MR, NR)`` of the GEMM tile of the direct paths for ``dtype``."""
    cdef int mr = 0, nr = 0
    if dtype == "float32":
        fc_tile_shape(<const float *>NULL, &mr, &nr)
    elif dtype == "float64":
        fc_tile_shape(<const double *>NULL, &mr, &nr)
    else:
        fc_tile_shape(<const int64_t *>NULL, &mr, &nr)
    return mr, nr


def wide_tile_width(dtype):
    """NR of the wide tile the strided rows' reduction chunks may take for
    ``dtype`` (its MR is the direct tile's), or 0 where the level has none."""
    if dtype == "float32":
        return fc_wide_nr(<const float *>NULL)
    if dtype == "float64":
        return fc_wide_nr(<const double *>NULL)
    return fc_wide_nr(<const int64_t *>NULL)


def pack_weights(const numeric_t[:, :, :, ::1] weight, const numeric_t[::1] bias,
                 Py_ssize_t groups, bint planes=False):
    """Weights and bias as the direct kernels read them.

    The micro-kernel reads MR weight rows in place (no transposed copy, so a
    one-off call never rewrites its weights); only a group's last panel of
    fewer than MR output channels is copied, zero-padded to MR rows.

    Parameters
    ----------
    weight : ndarray of shape (K, C // groups, kH, kW)
    bias : ndarray of shape (K,)
    groups : int
    planes : bool, default=False
        For :func:`conv2d_planes`, which reads the weights and bias as they
        are; else for the GEMM paths (``fastconv._direct_gemm``).

    Returns
    -------
    weight : ndarray of shape (K * C // groups * kH * kW,)
        The weights, flattened (a view of ``weight``).
    tails : ndarray of shape (groups * MR * C // groups * kH * kW,)
        Per group, the rows of its last, partial panel and zero rows; empty
        when MR divides K/groups, and for the planes.
    padded_bias : ndarray of shape (groups * K_pad,)
        ``K_pad`` = K/groups rounded up to MR, zeros past K/groups; ``(K,)``
        for the plane kernel.
    """
    dtype = np.asarray(weight).dtype
    flat = np.asarray(weight).reshape(-1)
    if planes:
        return flat, np.empty(0, dtype), np.asarray(bias)
    cdef int mr = 0, nr = 0
    fc_tile_shape(<const numeric_t *>NULL, &mr, &nr)
    cdef Py_ssize_t taps = weight.shape[1] * weight.shape[2] * weight.shape[3]
    cdef Py_ssize_t group_out = weight.shape[0] // groups
    cdef Py_ssize_t full = group_out // mr * mr
    cdef Py_ssize_t group_out_padded = ceil_div(group_out, mr) * mr
    padded_bias = np.zeros((groups, group_out_padded), dtype)
    padded_bias[:, :group_out] = np.asarray(bias).reshape(groups, group_out)
    if full == group_out:
        return flat, np.empty(0, dtype), padded_bias.reshape(-1)
    tails = np.zeros((groups, mr, taps), dtype)
    tails[:, :group_out - full] = flat.reshape(groups, group_out, taps)[:, full:]
    return flat, tails.reshape(-1), padded_bias.reshape(-1)


# -- planes: one output plane at a time, no GEMM ----------------------------------

cdef struct PlanesJob:
    fc_geometry conv
    Py_ssize_t taps, row_blocks
    const void *x
    const void *weight
    const void *bias
    void *out


def conv2d_planes(const numeric_t[:, :, :, ::1] x, const numeric_t[::1] weight,
                  const numeric_t[::1] bias, numeric_t[:, :, :, ::1] out,
                  Py_ssize_t kernel_h, Py_ssize_t kernel_w, Py_ssize_t stride_h,
                  Py_ssize_t stride_w, Py_ssize_t pad_top, Py_ssize_t pad_left,
                  Py_ssize_t dil_h, Py_ssize_t dil_w, Py_ssize_t groups, int num_threads,
                  blocking, bint relu=False):
    """Groups of few input channels (depthwise): work items (image, output
    channel, block of rows), each summing its plane's taps directly from a
    zero-padded copy of the rows it reads (``_kernels/planes.hpp``).

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    weight, bias : ndarray
        From :func:`pack_weights` with ``planes=True``.
    out : ndarray of shape (N, K, H_out, W_out)
        Written in full; the caller has checked the geometry.
    kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, dil_h, dil_w, groups : int
    num_threads : int
        The plan's threads, started as they are.
    blocking : mapping
        The plan's ``row_blocks``.
    relu : bool, default=False
        Apply ``max(y, 0)`` to the result in the same pass.
    """
    cdef PlanesJob job
    job.conv = fc_geometry_of(x.shape[1], x.shape[2], x.shape[3], out.shape[1],
                              out.shape[2], out.shape[3], kernel_h, kernel_w, stride_h,
                              stride_w, pad_top, pad_left, dil_h, dil_w, groups, relu)
    job.taps = job.conv.group_in * kernel_h * kernel_w
    if (weight.shape[0] != job.conv.out_channels * job.taps
            or bias.shape[0] != job.conv.out_channels or x.shape[0] != out.shape[0]):
        raise ValueError("packed weights do not match this geometry")
    job.row_blocks = blocking["row_blocks"]
    if not 1 <= job.row_blocks <= job.conv.out_h:
        raise ValueError(f"blocking['row_blocks'] = {job.row_blocks} is not in "
                         f"[1, {job.conv.out_h}]")
    job.x, job.weight, job.bias, job.out = &x[0, 0, 0, 0], &weight[0], &bias[0], &out[0, 0, 0, 0]
    cdef size_t padded_bytes = <size_t>fc_plane_scratch(
        &job.conv, ceil_div(job.conv.out_h, job.row_blocks)) * sizeof(numeric_t)
    run_work_items(_planes_item[numeric_t], &job, x.shape[0] * job.conv.out_channels
                   * job.row_blocks, num_threads, padded_bytes)


cdef bint _planes_item(const void *job_ptr, Py_ssize_t item, char *scratch,
                       const numeric_t *dtype) noexcept nogil:
    """Rows of block ``item % row_blocks`` of one output plane. A thread's
    items are contiguous, so after the first plane the padded copy already
    holds the zero borders of the same rows (its thread state keeps the
    last block, plus one)."""
    cdef const PlanesJob *job = <const PlanesJob *>job_ptr
    cdef Py_ssize_t *last_block = <Py_ssize_t *>scratch
    cdef Py_ssize_t plane = item // job.row_blocks
    cdef Py_ssize_t block = item - plane * job.row_blocks
    cdef Py_ssize_t n = plane // job.conv.out_channels
    cdef Py_ssize_t k = plane - n * job.conv.out_channels
    cdef Py_ssize_t g = k // job.conv.group_out
    cdef Py_ssize_t in_plane = job.conv.height * job.conv.width
    cdef const numeric_t *x = <const numeric_t *>job.x
    fc_plane_rows(&job.conv, x + (n * job.conv.channels + g * job.conv.group_in) * in_plane,
                  <const numeric_t *>job.weight + k * job.taps,
                  (<const numeric_t *>job.bias)[k],
                  <numeric_t *>job.out + plane * job.conv.out_h * job.conv.out_w,
                  block * job.conv.out_h // job.row_blocks,
                  (block + 1) * job.conv.out_h // job.row_blocks,
                  <numeric_t *>(scratch + THREAD_STATE_BYTES), last_block[0] == block + 1)
    last_block[0] = block + 1
    return False


# -- channel lanes: output channels in the vector lanes ---------------------------
#
# On a small image the pixel panels of the GEMM paths are mostly empty (49
# pixels of a 7x7 image fill 64 lanes) while the weights, read once per MR
# output channels, stream from memory. The channel-lanes tile turns the
# product around: KB output channels (4 vectors) in the lanes, 7 pixels
# broadcast from a zero-padded copy of the input, so no lane is wasted on
# 7x7, 14x14, 28x28 or 56x56 images, and every weight vector loaded serves 7
# pixels. It needs the weights transposed to [K / KB][C * kH * kW][KB], which
# a prepared layer (Conv2d) does once.

def lanes_width(dtype):
    """KB, the output channels of one channel-lanes tile, for ``dtype``; 0
    where the instruction-set level in use has no such tile (below AVX-512)."""
    return (fc_channel_lanes_width(<const float *>NULL) if np.dtype(dtype) == np.float32
            else fc_channel_lanes_width(<const double *>NULL))


def pack_channel_lanes(weight):
    """Weights of a groups=1 layer as the channel-lanes tile reads them.

    Parameters
    ----------
    weight : ndarray of shape (K, C, kH, kW), float32 or float64

    Returns
    -------
    packed : ndarray of shape (ceil(K / KB), C * kH * kW, KB)
        Block b holds output channels b*KB .. b*KB + KB (zeros past K), one row
        per reduction step (input channel, kernel row, kernel column).
    """
    weight = np.asarray(weight)
    kb = lanes_width(weight.dtype)
    if kb == 0:
        raise ValueError("no channel-lanes tile at this instruction-set level")
    out_channels = weight.shape[0]
    blocks = ceil_div(out_channels, kb)
    rows = np.zeros((blocks * kb, weight[0].size), weight.dtype)
    rows[:out_channels] = weight.reshape(out_channels, -1)
    return np.ascontiguousarray(rows.reshape(blocks, kb, -1).transpose(0, 2, 1))


cdef struct ChannelLanesJob:
    Py_ssize_t channels, plane, out_channels, pixels, taps, kb
    Py_ssize_t n_kblocks, n_tiles, pixel_groups, channel_chunk
    bint relu
    const Py_ssize_t *k_offsets       # per reduction step (c, i, j)
    const Py_ssize_t *pixel_offsets   # per pixel of the tiles
    const void *x
    const void *packed
    const void *bias
    void *out


def conv2d_channel_lanes(const floating[:, :, :, ::1] x, const floating[:, :, ::1] packed,
                         const floating[::1] bias, floating[:, :, :, ::1] out,
                         Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                         Py_ssize_t stride_h, Py_ssize_t stride_w,
                         Py_ssize_t dil_h, Py_ssize_t dil_w, int num_threads, blocking,
                         bint relu=False):
    """Direct convolution (groups=1) with output channels in the vector lanes:
    work items (image, block of KB output channels, group of pixel tiles).

    Parameters
    ----------
    x : ndarray of shape (N, C, H_pad, W_pad)
        The input with its padding, at least ``(H_out - 1) * stride_h +
        (kH - 1) * dil_h + 1`` rows and the like for columns.
    packed : ndarray
        From :func:`pack_channel_lanes` at the current instruction-set level.
    bias : ndarray of shape (K,)
    out : ndarray of shape (N, K, H_out, W_out)
        Written in full.
    kernel_h, kernel_w, stride_h, stride_w, dil_h, dil_w : int
    num_threads : int
        The plan's threads, started as they are.
    blocking : mapping
        The plan's ``pixel_groups`` and ``channel_chunk`` (input channels per
        reduction chunk).
    relu : bool, default=False
        Apply ``max(y, 0)`` to the result.
    """
    cdef ChannelLanesJob job
    job.kb = fc_channel_lanes_width(<const floating *>NULL)
    if job.kb == 0:
        raise ValueError("no channel-lanes tile at this instruction-set level")
    job.channels, job.plane = x.shape[1], x.shape[2] * x.shape[3]
    job.out_channels, job.pixels = out.shape[1], out.shape[2] * out.shape[3]
    job.taps, job.relu = kernel_h * kernel_w, relu
    job.n_kblocks = ceil_div(job.out_channels, job.kb)
    if (packed.shape[0] != job.n_kblocks or packed.shape[1] != job.channels * job.taps
            or packed.shape[2] != job.kb):
        raise ValueError("packed weights do not match this geometry or ISA level")
    if bias.shape[0] != job.out_channels or out.shape[0] != x.shape[0]:
        raise ValueError("bias or out does not match the weights or the input")
    if ((out.shape[2] - 1) * stride_h + (kernel_h - 1) * dil_h >= x.shape[2]
            or (out.shape[3] - 1) * stride_w + (kernel_w - 1) * dil_w >= x.shape[3]):
        raise ValueError("the padded input is smaller than the output needs")
    job.n_tiles = ceil_div(job.pixels, FC_CHANNEL_LANES_PIXELS)
    job.pixel_groups, job.channel_chunk = blocking["pixel_groups"], blocking["channel_chunk"]
    if not (1 <= job.pixel_groups <= job.n_tiles and job.channel_chunk >= 1):
        raise ValueError(f"blocking {dict(blocking)} does not fit {job.n_tiles} pixel tiles")
    job.x, job.packed, job.bias, job.out = (&x[0, 0, 0, 0], &packed[0, 0, 0], &bias[0],
                                            &out[0, 0, 0, 0])
    cdef Py_ssize_t steps = job.channels * job.taps
    cdef Py_ssize_t *offsets = <Py_ssize_t *>fc_scratch_acquire(
        SLOT_SHARED, <size_t>(steps + job.n_tiles * FC_CHANNEL_LANES_PIXELS) * sizeof(Py_ssize_t))
    if offsets == NULL:
        raise MemoryError("fastconv: cannot allocate the channel-lanes offsets")
    try:
        _channel_lanes_offsets(offsets, job.channels, x.shape[2], x.shape[3], kernel_h,
                               kernel_w, dil_h, dil_w, stride_h, stride_w, out.shape[3],
                               job.pixels, job.n_tiles * FC_CHANNEL_LANES_PIXELS)
        job.k_offsets, job.pixel_offsets = offsets, offsets + steps
        run_work_items(_channel_lanes_item[floating], &job, x.shape[0] * job.n_kblocks
                       * job.pixel_groups, num_threads,
                       <size_t>(ceil_div(job.n_tiles, job.pixel_groups)
                                * FC_CHANNEL_LANES_PIXELS * job.kb) * sizeof(floating))
    finally:
        fc_scratch_release(SLOT_SHARED)


cdef void _channel_lanes_offsets(Py_ssize_t *offsets, Py_ssize_t channels, Py_ssize_t height,
                                 Py_ssize_t width, Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                                 Py_ssize_t dil_h, Py_ssize_t dil_w, Py_ssize_t stride_h,
                                 Py_ssize_t stride_w, Py_ssize_t out_w, Py_ssize_t pixels,
                                 Py_ssize_t tile_pixels) noexcept nogil:
    """Reduction step (c, i, j) reads the input at c*H*W + i*dil_h*W +
    j*dil_w from a pixel's origin, pixel p at its row and column times the
    strides; pixels past the last read the last one again."""
    cdef Py_ssize_t c, i, j, p, q, step = 0
    for c in range(channels):
        for i in range(kernel_h):
            for j in range(kernel_w):
                offsets[step] = c * height * width + i * dil_h * width + j * dil_w
                step += 1
    for q in range(tile_pixels):
        p = min(q, pixels - 1)
        offsets[step + q] = (p // out_w) * (stride_h * width) + (p % out_w) * stride_w


cdef bint _channel_lanes_item(const void *job_ptr, Py_ssize_t item, char *scratch,
                              const floating *dtype) noexcept nogil:
    """Pixel tiles t0 .. t1 of one image and block of output channels: the
    results, [pixel][KB] in the scratch from the bias on, gather the
    reduction chunk by chunk, then go to ``out`` transposed."""
    cdef const ChannelLanesJob *job = <const ChannelLanesJob *>job_ptr
    cdef floating *buf = <floating *>(scratch + THREAD_STATE_BYTES)
    cdef const floating *bias = <const floating *>job.bias
    cdef floating *out = <floating *>job.out
    cdef Py_ssize_t mr = FC_CHANNEL_LANES_PIXELS, kb = job.kb, taps = job.taps
    cdef Py_ssize_t group = item % job.pixel_groups
    cdef Py_ssize_t rest = item // job.pixel_groups
    cdef Py_ssize_t kblock = rest % job.n_kblocks
    cdef Py_ssize_t n = rest // job.n_kblocks
    cdef Py_ssize_t t0 = group * job.n_tiles // job.pixel_groups
    cdef Py_ssize_t t1 = (group + 1) * job.n_tiles // job.pixel_groups
    cdef Py_ssize_t k0 = kblock * kb
    cdef Py_ssize_t lanes = min(kb, job.out_channels - k0)
    cdef const floating *image = <const floating *>job.x + n * job.channels * job.plane
    cdef const floating *w = <const floating *>job.packed + kblock * job.channels * taps * kb
    cdef Py_ssize_t q, lane, c0, t, p, p_end
    cdef floating value
    for q in range((t1 - t0) * mr):
        for lane in range(kb):
            buf[q * kb + lane] = bias[k0 + lane] if lane < lanes else 0
    c0 = 0
    while c0 < job.channels:
        for t in range(t0, t1):
            fc_channel_lanes_tile(min(job.channel_chunk, job.channels - c0) * taps, image,
                                  job.k_offsets + c0 * taps, job.pixel_offsets + t * mr,
                                  w + c0 * taps * kb, buf + (t - t0) * mr * kb)
        c0 = c0 + job.channel_chunk
    p_end = min(t1 * mr, job.pixels)
    for lane in range(lanes):
        for p in range(t0 * mr, p_end):
            value = buf[(p - t0 * mr) * kb + lane]
            if job.relu and value < 0:
                value = 0
            out[(n * job.out_channels + k0 + lane) * job.pixels + p] = value
    return False
