# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Direct 2-D convolution kernel (private): implicit GEMM over packed panels.

For one image ``n`` and group ``g`` the convolution is the matrix product

    out[k, p] = bias[k] + sum_r weight[k, r] * col[r, p]

with ``r = (c, i, j)`` running over the ``C/groups * kH * kW`` kernel taps and
``p = (oh, ow)`` over the output pixels; ``col[r, p]`` is the input value that
tap ``r`` sees from output pixel ``p`` (zero in the padding).  ``col`` is never
built whole: each work item packs one block of it -- at most ``_KC_MAX`` taps
by ``_PIXELS_PER_BLOCK`` pixels, a few hundred KiB that stay in L2 -- into
panels of ``NR`` pixels (or, in the row-panel path, read in place from a
copy of the rows they come from), and the register-blocked micro-kernel
(``_kernels/gemm_tile.hpp``) multiplies them with ``MR`` weight rows read in place.
Padding therefore costs no padded copy of the input, and stride, dilation
and asymmetric padding are just different gathers.

Work items are (image, group, pixel block, output-channel block); OpenMP
threads take them in static chunks.  Every output element is produced by one
work item with the same reduction order whatever the thread count, so results
are bit-identical for any ``num_threads``.
"""

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset

from ._interrupt cimport (fc_interrupt, fc_interrupted, raise_if_interrupted,
                          start_interrupt_checks)
from ._openmp_helpers cimport effective_num_threads
from ._cpu cimport kernel_table
from ._kernels cimport *

from . import _cpu

import numpy as np

# Kernels of the level in use: fastconv._cpu's one table.
fc_use_kernel_table(kernel_table())


ctypedef fused numeric_t:
    float
    double
    int64_t


# Per-thread scratch buffers, kept by each thread for its next call
# (fc_scratch_acquire in _kernels/scratch.hpp); buffers held at once use distinct
# slots.
cdef enum:
    SLOT_INPUT = 0            # packed columns, row scratch or padded planes
    SLOT_OFFSETS = 1          # row offsets of the taps (calling thread)
    SLOT_TILE = 2             # edge tile
    SLOT_SHARED_COLUMNS = 3   # the columns all threads share (calling thread)

# Reduction taps per packed block: a B panel (taps x NR) stays in L1 while it
# meets every weight panel.
cdef Py_ssize_t _KC_MAX = 256
# Output pixels per work item: the packed block (taps x pixels) fits in L2.
cdef Py_ssize_t _PIXELS_PER_BLOCK = 256
# Packed columns of one small image that the threads share (all taps at once
# when they fit).
cdef Py_ssize_t _SHARED_COLUMNS_BYTES = 4 * 1024 * 1024
# Input rows (all channels of a group, padded) one row-panel work item holds;
# the plane kernel's padded rows too.
cdef Py_ssize_t _ROWS_BYTES = 512 * 1024
# Groups with at most this many input channels (depthwise and the like) skip
# the GEMM: there is too little reduction to be worth packing.
cdef Py_ssize_t _PLANE_KERNEL_MAX_GROUP_IN = 4


cdef inline Py_ssize_t _row_blocks_in_budget(Py_ssize_t one_row_bytes,
                                             Py_ssize_t two_rows_bytes,
                                             Py_ssize_t out_height) noexcept nogil:
    """Blocks of output rows whose scratch fits _ROWS_BYTES, from the scratch
    of one and of two output rows. Signed arithmetic: a first row over the
    budget leaves one row per block (the unsigned difference had wrapped, and
    a block took every row)."""
    cdef Py_ssize_t per_row = max(two_rows_bytes - one_row_bytes, 1)
    cdef Py_ssize_t rows_per_block = max(1, min(out_height,
        (_ROWS_BYTES - one_row_bytes) // per_row + 1))
    return _ceil_div(out_height, rows_per_block)


cdef inline bint _uses_plane_kernel(Py_ssize_t groups, Py_ssize_t group_in) noexcept nogil:
    return groups > 1 and group_in <= _PLANE_KERNEL_MAX_GROUP_IN

ISA_LEVELS = _cpu.ISA_LEVELS
#: Pixels of one channel-lanes tile.
CHANNEL_LANES_TILE_PIXELS = FC_CHANNEL_LANES_PIXELS
#: Elements past the right end of each of the plane kernel's padded rows.
PLANE_ROW_SLACK = FC_PLANE_SLACK


def scratch_peak_bytes(bint reset=False):
    """The most per-thread scratch one thread of this module's kernels asked
    to hold at once since the last reset, in bytes (for tests of the scratch
    budgets). ``reset=True`` returns it and starts again from zero."""
    return fc_scratch_peak_bytes(reset)


def select_isa(str name):
    """Use the kernels of level ``name`` (capped at :func:`cpu_isa`) in every
    extension: :func:`fastconv._cpu.select_isa`, the one ISA state.

    Returns the level now in use.
    """
    return _cpu.select_isa(name)


def tile_shape(dtype):
    """``(MR, NR)`` of the active micro-kernel for ``dtype``."""
    cdef int mr = 0, nr = 0
    if dtype == "float32":
        fc_tile_shape(<const float *>NULL, &mr, &nr)
    elif dtype == "float64":
        fc_tile_shape(<const double *>NULL, &mr, &nr)
    else:
        fc_tile_shape(<const int64_t *>NULL, &mr, &nr)
    return mr, nr


cdef struct Geometry:
    fc_geometry conv                  # shapes, hyperparameters, relu (geometry.hpp)
    # Blocking
    Py_ssize_t mr, nr                 # micro-tile: output channels x pixels
    Py_ssize_t taps                   # C/groups * kH * kW (reduction length)
    Py_ssize_t group_out_padded       # K/groups rounded up to MR
    Py_ssize_t kc_max                 # taps per packed block
    Py_ssize_t panels_per_block       # NR-pixel panels per work item
    Py_ssize_t n_pixel_blocks
    Py_ssize_t mpanels_per_block      # MR-channel panels per work item
    Py_ssize_t n_channel_blocks


cdef inline void _relu_rows(numeric_t *c, Py_ssize_t rows, Py_ssize_t cols,
                            Py_ssize_t ld) noexcept nogil:
    """max(c, 0) over a rows x cols block; NaN stays NaN (as torch.relu)."""
    cdef Py_ssize_t i, j
    cdef numeric_t *row
    for i in range(rows):
        row = c + i * ld
        for j in range(cols):
            if row[j] < 0:
                row[j] = 0


cdef inline void _output_tile(Py_ssize_t kc, const numeric_t *a, Py_ssize_t lda,
                              const numeric_t *b,
                              const Py_ssize_t *offsets, numeric_t *c, Py_ssize_t ldc,
                              Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t mr,
                              Py_ssize_t nr, int accumulate, const numeric_t *bias,
                              bint relu, numeric_t *tile) noexcept nogil:
    """One MR x NR output tile: C (+)= A . B, with A the MR weight rows at
    ``a``, ``lda`` apart, and B a packed panel, or read
    in place through ``offsets`` when they are not NULL. A tile cut by the
    edge of the output (``rows`` < MR or ``cols`` < NR) goes through the
    scratch ``tile`` so that only its valid part is written; ``relu`` applies
    the fused epilogue while the tile is still in L1."""
    cdef numeric_t *dst = c
    cdef Py_ssize_t ld = ldc, m
    cdef bint edge = rows < mr or cols < nr
    if edge:
        dst, ld = tile, nr
        if accumulate:
            for m in range(rows):
                memcpy(tile + m * nr, c + m * ldc, <size_t>cols * sizeof(numeric_t))
    if offsets == NULL:
        fc_tile(kc, a, lda, b, dst, ld, accumulate, bias)
    else:
        fc_tile_indirect(kc, a, lda, b, offsets, dst, ld, accumulate, bias)
    if edge:
        for m in range(rows):
            memcpy(c + m * ldc, tile + m * nr, <size_t>cols * sizeof(numeric_t))
    if relu:
        _relu_rows(c, rows, cols, ldc)


cdef inline Py_ssize_t _mpanel_bound(const Geometry *geo, Py_ssize_t channel_block) noexcept nogil:
    """First MR-channel panel of ``channel_block`` (the end of block b is the
    start of b + 1): blocks differ by one panel at most."""
    return channel_block * (geo.group_out_padded // geo.mr) // geo.n_channel_blocks


cdef inline const numeric_t *_weight_rows(const Geometry *geo, const numeric_t *weight,
                                          const numeric_t *tails, Py_ssize_t g,
                                          Py_ssize_t m0) noexcept nogil:
    """The MR weight rows of output channels m0 .. m0 + MR of group g, ``taps``
    apart: in place, or for the panel cut by K/groups its zero-padded copy
    in ``tails`` (pack_weights)."""
    if m0 + geo.mr <= geo.conv.group_out:
        return weight + (g * geo.conv.group_out + m0) * geo.taps
    return tails + g * geo.mr * geo.taps


cdef void _run_work_item(const Geometry *geo, Py_ssize_t item,
                         const numeric_t *x, const numeric_t *weight,
                         const numeric_t *tails, const numeric_t *padded_bias,
                         numeric_t *out, numeric_t *col, numeric_t *tile) noexcept nogil:
    """Compute one (image, group, pixel block, channel block) of the output."""
    cdef Py_ssize_t mr = geo.mr, nr = geo.nr, taps = geo.taps
    cdef Py_ssize_t n_pixels_out = geo.conv.out_h * geo.conv.out_w
    cdef Py_ssize_t channel_block = item % geo.n_channel_blocks
    cdef Py_ssize_t rest = item // geo.n_channel_blocks
    cdef Py_ssize_t pixel_block = rest % geo.n_pixel_blocks
    rest = rest // geo.n_pixel_blocks
    cdef Py_ssize_t g = rest % geo.conv.groups
    cdef Py_ssize_t n = rest // geo.conv.groups

    # Block b of B covers panels [b*P/B, (b+1)*P/B): sizes differ by one at most.
    cdef Py_ssize_t total_panels = (n_pixels_out + nr - 1) // nr
    cdef Py_ssize_t panel_lo = pixel_block * total_panels // geo.n_pixel_blocks
    cdef Py_ssize_t panel_hi = (pixel_block + 1) * total_panels // geo.n_pixel_blocks
    cdef Py_ssize_t pixel0 = panel_lo * nr
    cdef Py_ssize_t n_pixels = panel_hi * nr
    if n_pixels > n_pixels_out:
        n_pixels = n_pixels_out
    n_pixels = n_pixels - pixel0
    if n_pixels <= 0:
        return
    cdef Py_ssize_t n_panels = (n_pixels + nr - 1) // nr
    cdef Py_ssize_t mpanel_lo = _mpanel_bound(geo, channel_block)
    cdef Py_ssize_t mpanel_hi = _mpanel_bound(geo, channel_block + 1)

    cdef const numeric_t *image = x + ((n * geo.conv.channels + g * geo.conv.group_in)
                                       * geo.conv.height * geo.conv.width)
    cdef numeric_t *out_group = out + ((n * geo.conv.out_channels + g * geo.conv.group_out)
                                       * n_pixels_out)
    cdef const numeric_t *bias_group = padded_bias + g * geo.group_out_padded

    cdef Py_ssize_t tap0, kc, jp, mp, m0, rows, cols, m
    cdef int accumulate
    cdef const numeric_t *a
    cdef const numeric_t *b
    cdef numeric_t *c
    tap0 = 0
    while tap0 < taps:
        kc = geo.kc_max
        if kc > taps - tap0:
            kc = taps - tap0
        fc_pack_input(&geo.conv, geo.nr, image, tap0, kc, 0, kc, pixel0, n_pixels, col)
        accumulate = tap0 > 0
        for jp in range(n_panels):
            b = col + jp * kc * nr
            cols = n_pixels - jp * nr
            if cols > nr:
                cols = nr
            for mp in range(mpanel_lo, mpanel_hi):
                m0 = mp * mr
                a = _weight_rows(geo, weight, tails, g, m0) + tap0
                c = out_group + m0 * n_pixels_out + pixel0 + jp * nr
                rows = min(mr, geo.conv.group_out - m0)
                _output_tile(kc, a, taps, b, NULL, c, n_pixels_out, rows, cols, mr, nr,
                             accumulate, bias_group + m0, geo.conv.relu and tap0 + kc == taps,
                             tile)
        tap0 = tap0 + kc


cdef inline void _panel_copy(const numeric_t *tile, numeric_t *c, Py_ssize_t rows_valid,
                             Py_ssize_t nr, Py_ssize_t v0, Py_ssize_t v_end,
                             Py_ssize_t row_len, Py_ssize_t out_w,
                             Py_ssize_t ldc) noexcept nogil:
    """Copy a dense-row panel from the tile (rows_valid x nr) to the output:
    column q of the tile is virtual pixel v0 + q = r * row_len + ow, an
    output pixel (row r of the block, column ow) when ow < out_w, junk
    otherwise. ``c`` points at row 0, column 0 of the block."""
    cdef Py_ssize_t v = v0, r, ow, run, m
    cdef Py_ssize_t stop = min(v0 + nr, v_end)
    while v < stop:
        r = v // row_len
        ow = v - r * row_len
        if ow >= out_w:
            v = (r + 1) * row_len
            continue
        run = min(out_w - ow, stop - v)
        for m in range(rows_valid):
            memcpy(c + m * ldc + r * out_w + ow, tile + m * nr + (v - v0),
                   <size_t>run * sizeof(numeric_t))
        v = v + run


cdef void _dense_rows(const Geometry *geo, const fc_rows_layout *layout,
                      Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t mpanel_lo, Py_ssize_t mpanel_hi,
                      const numeric_t *weight, const numeric_t *tails, Py_ssize_t g,
                      const numeric_t *bias_group, numeric_t *out_group,
                      const numeric_t *rows, const Py_ssize_t *offsets,
                      numeric_t *tile) noexcept nogil:
    """Dense rows: the output rows of the block are one run of virtual pixels
    v = (oh - oh0) * row_len + ow (row_len = phase_len = out_w + the kernel's
    reach / stride), so panels run across row ends and waste only the reach
    columns, whatever the output width."""
    cdef Py_ssize_t mr = geo.mr, nr = geo.nr, taps = geo.taps
    cdef Py_ssize_t n_pixels_out = geo.conv.out_h * geo.conv.out_w
    cdef Py_ssize_t row_len = layout.phase_len, out_w = geo.conv.out_w
    cdef Py_ssize_t v_end = (oh1 - oh0 - 1) * row_len + out_w
    cdef Py_ssize_t v0, r, ow, mp, m0, rows_valid
    cdef bint inside
    cdef const numeric_t *a
    cdef numeric_t *c_block
    cdef numeric_t *c
    v0 = 0
    while v0 < v_end:
        r = v0 // row_len
        ow = v0 - r * row_len
        # A panel inside one row's outputs is stored in place.
        inside = ow + nr <= out_w
        for mp in range(mpanel_lo, mpanel_hi):
            m0 = mp * mr
            a = _weight_rows(geo, weight, tails, g, m0)
            c_block = out_group + m0 * n_pixels_out + oh0 * out_w
            rows_valid = min(mr, geo.conv.group_out - m0)
            if inside and rows_valid == mr:
                c = c_block + r * out_w + ow
                fc_tile_indirect(taps, a, taps, rows + v0, offsets, c, n_pixels_out, 0,
                                 bias_group + m0)
                if geo.conv.relu:
                    _relu_rows(c, mr, nr, n_pixels_out)
            else:
                fc_tile_indirect(taps, a, taps, rows + v0, offsets, tile, nr, 0,
                                 bias_group + m0)
                if geo.conv.relu:
                    _relu_rows(tile, rows_valid, nr, nr)
                _panel_copy(tile, c_block, rows_valid, nr, v0, v_end, row_len, out_w,
                            n_pixels_out)
        v0 = v0 + nr


cdef void _run_rows_item(const Geometry *geo, const fc_rows_layout *layout,
                         Py_ssize_t item, Py_ssize_t n_row_blocks,
                         const numeric_t *x, const numeric_t *weight,
                         const numeric_t *tails, const numeric_t *padded_bias,
                         numeric_t *out, numeric_t *rows, const Py_ssize_t *offsets,
                         numeric_t *tile) noexcept nogil:
    """One (image, group, block of output rows, block of channels) of the
    row-panel path (rows.hpp): B rows are read in place from ``rows``."""
    cdef Py_ssize_t mr = geo.mr, nr = geo.nr, taps = geo.taps
    cdef Py_ssize_t n_pixels_out = geo.conv.out_h * geo.conv.out_w
    cdef Py_ssize_t channel_block = item % geo.n_channel_blocks
    cdef Py_ssize_t rest = item // geo.n_channel_blocks
    cdef Py_ssize_t row_block = rest % n_row_blocks
    rest = rest // n_row_blocks
    cdef Py_ssize_t g = rest % geo.conv.groups
    cdef Py_ssize_t n = rest // geo.conv.groups
    cdef Py_ssize_t oh0 = row_block * geo.conv.out_h // n_row_blocks
    cdef Py_ssize_t oh1 = (row_block + 1) * geo.conv.out_h // n_row_blocks
    if oh0 >= oh1:
        return
    cdef Py_ssize_t mpanel_lo = _mpanel_bound(geo, channel_block)
    cdef Py_ssize_t mpanel_hi = _mpanel_bound(geo, channel_block + 1)
    cdef const numeric_t *image = x + ((n * geo.conv.channels + g * geo.conv.group_in)
                                       * geo.conv.height * geo.conv.width)
    cdef numeric_t *out_group = out + ((n * geo.conv.out_channels + g * geo.conv.group_out)
                                       * n_pixels_out)
    cdef const numeric_t *bias_group = padded_bias + g * geo.group_out_padded
    fc_rows_fill(layout, &geo.conv, image, oh0, rows)

    # The whole reduction in one chunk (see _conv2d_rows).
    cdef Py_ssize_t oh, ow0, mp, m0, rows_valid, cols
    cdef const numeric_t *base
    cdef numeric_t *c
    if layout.dense:
        _dense_rows(geo, layout, oh0, oh1, mpanel_lo, mpanel_hi, weight, tails, g,
                    bias_group, out_group, rows, offsets, tile)
        return
    for oh in range(oh0, oh1):
        ow0 = 0
        while ow0 < geo.conv.out_w:
            base = rows + (oh - oh0) * layout.phase_len + ow0
            cols = min(nr, geo.conv.out_w - ow0)
            for mp in range(mpanel_lo, mpanel_hi):
                m0 = mp * mr
                c = out_group + m0 * n_pixels_out + oh * geo.conv.out_w + ow0
                rows_valid = min(mr, geo.conv.group_out - m0)
                _output_tile(taps, _weight_rows(geo, weight, tails, g, m0), taps, base, offsets,
                             c, n_pixels_out, rows_valid, cols, mr, nr, 0, bias_group + m0,
                             geo.conv.relu, tile)
            ow0 = ow0 + nr


cdef bint _uses_row_kernel(const Geometry *geo) noexcept nogil:
    """Row panels (rows.hpp) skip the per-tap copies of im2col for kernels
    larger than 1x1 on images of more than 4 panels."""
    if geo.conv.kernel_h * geo.conv.kernel_w == 1:
        return False
    # A small image: packed panels waste less of the last panel than rows
    # do, and its per-tap copies are few in absolute terms.
    return _ceil_div(geo.conv.out_h * geo.conv.out_w, geo.nr) > 4


cdef inline bint _rows_are_whole_panels(const Geometry *geo) noexcept nogil:
    """Whether rows run in whole panels rather than dense: dense rows compute
    out_width + reach / stride_w columns a row, whole panels the width
    rounded up to NR, and the fewer wins (measured: dense 7-8% faster on 56
    and 112 wide stride-1 outputs; whole panels, which never go through the
    edge tile, when the counts tie)."""
    cdef Py_ssize_t padded_w = _ceil_div(geo.conv.out_w, geo.nr) * geo.nr
    return (geo.conv.out_w + (geo.conv.kernel_w - 1) * geo.conv.dil_w // geo.conv.stride_w
            >= padded_w)


cdef void _split_rows(const Geometry *geo, Py_ssize_t images_groups,
                      Py_ssize_t min_row_blocks, Py_ssize_t n_mpanels, int threads,
                      bint dense, Py_ssize_t padded_w, Py_ssize_t *row_blocks,
                      Py_ssize_t *channel_blocks) noexcept:
    """Row and output-channel blocks for too few (or unbalanced) work items,
    by a cost model: a thread's time ~ ceil(items / threads) x the largest
    item, an item ~ its panels x weight panels x taps (vector FMAs) plus its
    row copy. More row blocks leave more of each dense panel empty (one-row
    blocks of a 14x14 output fill 14 of 32 lanes); more channel blocks copy
    the rows again. (On a 16-core Xeon, splitting rows first ran 2x slower
    at 16 threads on 14x14 outputs, capping the row blocks 1.4-1.5x slower
    at 8.)"""
    cdef Py_ssize_t nr = geo.nr, rb, cb, rows, panels, items, kp
    cdef double cost, best = -1.0
    cdef bint full, best_full = False
    cdef double copy_cost = 1.0 if geo.conv.stride_h != 1 or geo.conv.stride_w != 1 else 0.125
    cdef fc_rows_layout layout
    row_blocks[0], channel_blocks[0] = min_row_blocks, 1
    # Channel blocks in the outer loop: at equal cost the fewest win (at 8
    # threads a split of a 14x14 output into 2 channel blocks ran 1.3-1.6x
    # slower than 8 row blocks, which the model costs the same).
    for cb in range(1, n_mpanels + 1):
        kp = _ceil_div(n_mpanels, cb)
        if cb > 1 and _ceil_div(n_mpanels, cb - 1) == kp:
            continue  # the same largest block as cb - 1, more items
        for rb in range(min_row_blocks, geo.conv.out_h + 1):
            rows = _ceil_div(geo.conv.out_h, rb)
            layout = fc_rows_plan(&geo.conv, rows, padded_w)
            if dense:
                panels = _ceil_div((rows - 1) * layout.phase_len + geo.conv.out_w, nr)
            else:
                panels = rows * (padded_w // nr)
            items = images_groups * rb * cb
            # A tile is taps x MR x NR / 16 vector FMAs; a copied element
            # about 1/8 of one, or a whole one for the strided layout
            # (element-wise gathers, rows held once per kernel row).
            cost = <double>_ceil_div(items, threads) * (
                <double>panels * kp * geo.taps * (geo.mr * nr // 16)
                + <double>geo.conv.group_in * layout.channel_stride * copy_cost)
            # At equal cost, items filling whole rounds of the threads win
            # (7 items of two rows on 8 threads leave one idle; 8 items of
            # one or two rows cost the model the same).
            full = items % threads == 0
            if best < 0 or cost < best or (cost == best and full and not best_full):
                best, best_full = cost, full
                row_blocks[0], channel_blocks[0] = rb, cb


cdef void _conv2d_rows(const numeric_t *x, const numeric_t *weight, const numeric_t *tails,
                       const numeric_t *padded_bias, numeric_t *out,
                       Geometry *geo, Py_ssize_t batch, int num_threads) except *:
    """Row-panel path: work items (image, group, row block, channel block)."""
    cdef Py_ssize_t nr = geo.nr, mr = geo.mr
    # Every tile takes the whole reduction in one chunk: the B rows are read
    # in place (no packed block to keep small), and the accumulators then
    # never leave the registers, which spares dense panels a round trip
    # through the edge tile.
    cdef bint dense = not _rows_are_whole_panels(geo)
    cdef Py_ssize_t padded_w = geo.conv.out_w if dense else _ceil_div(geo.conv.out_w, nr) * nr
    cdef fc_rows_layout one_row = fc_rows_plan(&geo.conv, 1, padded_w)
    cdef fc_rows_layout two_rows = fc_rows_plan(&geo.conv, 2, padded_w)
    cdef Py_ssize_t channels_bytes = geo.conv.group_in * <Py_ssize_t>sizeof(numeric_t)
    cdef Py_ssize_t row_blocks = _row_blocks_in_budget(
        channels_bytes * one_row.channel_stride, channels_bytes * two_rows.channel_stride,
        geo.conv.out_h)
    cdef int threads = effective_num_threads(num_threads, 1 << 30)
    cdef Py_ssize_t images_groups = batch * geo.conv.groups
    cdef Py_ssize_t n_mpanels = geo.group_out_padded // mr
    cdef Py_ssize_t channel_blocks = 1
    cdef Py_ssize_t items = images_groups * row_blocks
    if items < threads or (items < 8 * threads and items % threads):
        _split_rows(geo, images_groups, row_blocks, n_mpanels, threads, dense, padded_w,
                    &row_blocks, &channel_blocks)
    geo.n_channel_blocks = channel_blocks
    cdef Py_ssize_t rows_per_block = _ceil_div(geo.conv.out_h, row_blocks)
    cdef fc_rows_layout layout = fc_rows_plan(&geo.conv, rows_per_block, padded_w)
    cdef Py_ssize_t n_items = images_groups * row_blocks * channel_blocks
    threads = effective_num_threads(num_threads, n_items)
    layout.dense = dense
    # Slack after the last channel: a dense block's last panel reads up to
    # one panel past the block's last virtual pixel.
    cdef size_t rows_elems = <size_t>(geo.conv.group_in * layout.channel_stride + nr)
    cdef int alloc_failed = 0
    cdef int *alloc_failed_ptr = &alloc_failed
    cdef Py_ssize_t item
    cdef numeric_t *rows
    cdef numeric_t *tile
    # The same layout for every item: the taps' offsets are computed once
    # (divisions per tap per item cost ~9% of a 128-channel 3x3 layer).
    cdef Py_ssize_t *offsets = <Py_ssize_t *>fc_scratch_acquire(
        SLOT_OFFSETS, <size_t>geo.taps * sizeof(Py_ssize_t))
    if offsets == NULL:
        raise MemoryError("fastconv: cannot allocate the tap offsets")
    fc_rows_offsets(&layout, &geo.conv, 0, geo.taps, offsets)
    cdef fc_interrupt interrupt
    cdef fc_interrupt *interrupt_ptr = &interrupt
    start_interrupt_checks(interrupt_ptr)
    with nogil, parallel(num_threads=threads):
        rows = <numeric_t *>fc_scratch_acquire(SLOT_INPUT, rows_elems * sizeof(numeric_t))
        if rows != NULL:
            # The slack is only read for columns that are dropped; zero it
            # so that no uninitialised value is ever used (valgrind-clean).
            memset(rows + rows_elems - nr, 0, <size_t>nr * sizeof(numeric_t))
        tile = <numeric_t *>fc_scratch_acquire(SLOT_TILE, <size_t>(mr * nr) * sizeof(numeric_t))
        if rows == NULL or tile == NULL:
            alloc_failed_ptr[0] = 1
        for item in prange(n_items, schedule='static'):
            if rows != NULL and tile != NULL and not fc_interrupted(interrupt_ptr):
                _run_rows_item(geo, &layout, item, row_blocks, x, weight, tails,
                               padded_bias, out, rows, offsets, tile)
        fc_scratch_release(SLOT_INPUT)
        fc_scratch_release(SLOT_TILE)
    fc_scratch_release(SLOT_OFFSETS)
    raise_if_interrupted(interrupt_ptr)
    if alloc_failed:
        raise MemoryError("fastconv: cannot allocate per-thread scratch buffers")


cdef inline Py_ssize_t _ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return (a + b - 1) // b


cdef Py_ssize_t _balance(Py_ssize_t other, Py_ssize_t blocks, Py_ssize_t limit,
                         int threads) noexcept nogil:
    """Smallest ``b >= blocks`` (and <= ``limit``) such that ``other * b`` work
    items are at least ``threads`` and a multiple of it; ``limit`` if none."""
    cdef Py_ssize_t b = blocks
    while b < limit and (other * b < threads or (other * b) % threads):
        b += 1
    return b


def pack_weights(const numeric_t[:, :, :, ::1] weight, const numeric_t[::1] bias,
                 Py_ssize_t groups, bint gemm_layout=False):
    """Weights and bias as the direct kernels read them.

    The micro-kernel reads MR weight rows in place (no transposed copy, so a
    one-off call never rewrites its weights); only a group's last panel of
    fewer than MR output channels is copied, zero-padded to MR rows.

    Parameters
    ----------
    weight : ndarray of shape (K, C // groups, kH, kW)
    bias : ndarray of shape (K,)
    groups : int
    gemm_layout : bool, default=False
        The micro-kernel's layout also where the plane kernel would read the
        weights (and bias) as they are.

    Returns
    -------
    weight : ndarray of shape (K * C // groups * kH * kW,)
        The weights, flattened (a view of ``weight``).
    tails : ndarray of shape (groups * MR * C // groups * kH * kW,)
        Per group, the rows of its last, partial panel and zero rows; empty
        when MR divides K/groups, and for the plane kernel.
    padded_bias : ndarray of shape (groups * K_pad,)
        ``K_pad`` = K/groups rounded up to MR, zeros past K/groups; ``(K,)``
        for the plane kernel.
    """
    dtype = np.asarray(weight).dtype
    flat = np.asarray(weight).reshape(-1)
    if _uses_plane_kernel(groups, weight.shape[1]) and not gemm_layout:
        return flat, np.empty(0, dtype), np.asarray(bias)
    cdef int mr = 0, nr = 0
    fc_tile_shape(<const numeric_t *>NULL, &mr, &nr)
    cdef Py_ssize_t taps = weight.shape[1] * weight.shape[2] * weight.shape[3]
    cdef Py_ssize_t group_out = weight.shape[0] // groups
    cdef Py_ssize_t full = group_out // mr * mr
    cdef Py_ssize_t group_out_padded = _ceil_div(group_out, mr) * mr
    padded_bias = np.zeros((groups, group_out_padded), dtype)
    padded_bias[:, :group_out] = np.asarray(bias).reshape(groups, group_out)
    if full == group_out:
        return flat, np.empty(0, dtype), padded_bias.reshape(-1)
    tails = np.zeros((groups, mr, taps), dtype)
    tails[:, :group_out - full] = flat.reshape(groups, group_out, taps)[:, full:]
    return flat, tails.reshape(-1), padded_bias.reshape(-1)


cdef void _conv2d_planes(const numeric_t[:, :, :, ::1] x,
                         const numeric_t[::1] weight, const numeric_t[::1] bias,
                         numeric_t[:, :, :, ::1] out, const Geometry *geo,
                         int num_threads) except *:
    """Plane kernel: work items are (image, output channel, block of rows)."""
    if (weight.shape[0] != geo.conv.out_channels * geo.taps
            or bias.shape[0] != geo.conv.out_channels):
        raise ValueError("packed weights do not match this geometry")
    cdef const fc_geometry *plane = &geo.conv
    cdef Py_ssize_t batch = x.shape[0]
    cdef Py_ssize_t planes = batch * geo.conv.out_channels
    cdef int threads = effective_num_threads(num_threads, 1 << 30)
    # Rows are cut when there are too few planes for the threads, and so that
    # a block's padded rows fit the scratch budget (a whole 1080p plane would
    # take 8 MB per thread and fall out of the caches).
    cdef Py_ssize_t elem = sizeof(numeric_t)
    cdef Py_ssize_t row_blocks = _row_blocks_in_budget(
        fc_plane_scratch(plane, 1) * elem, fc_plane_scratch(plane, 2) * elem,
        geo.conv.out_h)
    if planes < 4 * threads:
        row_blocks = _balance(planes, row_blocks, geo.conv.out_h, threads)
    cdef Py_ssize_t n_items = planes * row_blocks
    threads = effective_num_threads(num_threads, n_items)
    cdef Py_ssize_t chunk, item, plane_index, block, previous_block, n, k, g
    cdef Py_ssize_t in_plane = geo.conv.height * geo.conv.width
    cdef Py_ssize_t out_plane = geo.conv.out_h * geo.conv.out_w
    cdef size_t scratch_elems = <size_t>fc_plane_scratch(
        plane, _ceil_div(geo.conv.out_h, row_blocks))
    cdef const numeric_t *x_ptr = &x[0, 0, 0, 0]
    cdef const numeric_t *w_ptr = &weight[0]
    cdef const numeric_t *b_ptr = &bias[0]
    cdef numeric_t *out_ptr = &out[0, 0, 0, 0]
    cdef numeric_t *padded
    cdef int alloc_failed = 0
    cdef int *alloc_failed_ptr = &alloc_failed
    cdef fc_interrupt interrupt
    cdef fc_interrupt *interrupt_ptr = &interrupt
    start_interrupt_checks(interrupt_ptr)
    with nogil, parallel(num_threads=threads):
        padded = <numeric_t *>fc_scratch_acquire(SLOT_INPUT, scratch_elems * sizeof(numeric_t))
        if padded == NULL:
            alloc_failed_ptr[0] = 1
        # One contiguous run of items per thread, so that a thread knows when
        # its scratch already holds the zero borders of the same rows.
        for chunk in prange(threads, schedule='static'):
            previous_block = -1
            for item in range(chunk * n_items // threads, (chunk + 1) * n_items // threads):
                if padded == NULL or fc_interrupted(interrupt_ptr):
                    break
                plane_index = item // row_blocks
                block = item - plane_index * row_blocks
                n = plane_index // geo.conv.out_channels
                k = plane_index - n * geo.conv.out_channels
                g = k // geo.conv.group_out
                fc_plane_rows(plane,
                              x_ptr + (n * geo.conv.channels + g * geo.conv.group_in) * in_plane,
                              w_ptr + k * geo.taps, b_ptr[k], out_ptr + plane_index * out_plane,
                              block * geo.conv.out_h // row_blocks,
                              (block + 1) * geo.conv.out_h // row_blocks, padded,
                              block == previous_block)
                previous_block = block
        fc_scratch_release(SLOT_INPUT)
    raise_if_interrupted(interrupt_ptr)
    if alloc_failed:
        raise MemoryError("fastconv: cannot allocate per-thread scratch buffers")


cdef void _conv2d_shared_columns(const numeric_t *x, const numeric_t *weight,
                                 const numeric_t *tails,
                                 const numeric_t *padded_bias, numeric_t *out,
                                 const Geometry *geo, int num_threads) except *:
    """One image and group: per reduction chunk, all threads pack the
    columns of every pixel (a share of the taps each), then compute a share
    of the (output-channel panel, pixel panel) tiles. Two barriers per chunk
    instead of each thread packing the whole image for its channels."""
    cdef Py_ssize_t mr = geo.mr, nr = geo.nr, taps = geo.taps
    cdef Py_ssize_t n_pixels = geo.conv.out_h * geo.conv.out_w
    cdef Py_ssize_t n_panels = _ceil_div(n_pixels, nr)
    cdef Py_ssize_t n_mpanels = geo.group_out_padded // mr
    # The whole reduction in one chunk when the columns of the image fit in
    # _SHARED_COLUMNS_BYTES: one packing phase and one barrier, and the
    # accumulators stay in registers for all the taps.
    cdef Py_ssize_t chunk_taps = geo.kc_max
    if taps * n_panels * nr * <Py_ssize_t>sizeof(numeric_t) <= _SHARED_COLUMNS_BYTES:
        chunk_taps = taps
    cdef Py_ssize_t n_chunks = _ceil_div(taps, chunk_taps)
    cdef int threads = effective_num_threads(num_threads, n_mpanels * n_panels)
    cdef numeric_t *col = <numeric_t *>fc_scratch_acquire(
        SLOT_SHARED_COLUMNS, <size_t>(chunk_taps * n_panels * nr) * sizeof(numeric_t))
    if col == NULL:
        raise MemoryError("fastconv: cannot allocate the packed columns")
    cdef int alloc_failed = 0
    cdef int *alloc_failed_ptr = &alloc_failed
    cdef Py_ssize_t chunk, tap0, kc, r, work, mp, jp, m0, rows, cols, m
    cdef numeric_t *tile
    cdef numeric_t *c
    cdef const numeric_t *a
    cdef fc_interrupt interrupt
    cdef fc_interrupt *interrupt_ptr = &interrupt
    start_interrupt_checks(interrupt_ptr)
    with nogil, parallel(num_threads=threads):
        tile = <numeric_t *>fc_scratch_acquire(SLOT_TILE, <size_t>(mr * nr) * sizeof(numeric_t))
        if tile == NULL:
            alloc_failed_ptr[0] = 1
        for chunk in range(n_chunks):
            tap0 = chunk * chunk_taps
            kc = min(chunk_taps, taps - tap0)
            for r in prange(kc, schedule='static'):
                if not fc_interrupted(interrupt_ptr):
                    fc_pack_input(&geo.conv, geo.nr, x, tap0, kc, r, r + 1, 0, n_pixels, col)
            for work in prange(n_mpanels * n_panels, schedule='static'):
                if tile != NULL and not fc_interrupted(interrupt_ptr):
                    mp = work // n_panels
                    jp = work - mp * n_panels
                    m0 = mp * mr
                    a = _weight_rows(geo, weight, tails, 0, m0) + tap0
                    c = out + m0 * n_pixels + jp * nr
                    rows = min(mr, geo.conv.group_out - m0)
                    cols = min(nr, n_pixels - jp * nr)
                    _output_tile(kc, a, taps, col + jp * kc * nr, NULL, c, n_pixels, rows, cols,
                                 mr, nr, tap0 > 0, padded_bias + m0,
                                 geo.conv.relu and tap0 + kc == taps, tile)
        fc_scratch_release(SLOT_TILE)
    fc_scratch_release(SLOT_SHARED_COLUMNS)
    raise_if_interrupted(interrupt_ptr)
    if alloc_failed:
        raise MemoryError("fastconv: cannot allocate per-thread scratch buffers")


# Largest per-thread scratch the plane and row-panel paths may allocate; a
# layer that would need more (huge dilations that span mostly padding) takes
# the packed path, whose scratch is bounded by its block sizes.
cdef object _SCRATCH_LIMIT_BYTES = 256 * 1024 * 1024


def _scratch_fits(nbytes):
    return nbytes <= _SCRATCH_LIMIT_BYTES


cdef object _plane_scratch_bytes(const Geometry *geo, Py_ssize_t elem):
    """fc_plane_scratch for one output row, in Python integers (no overflow)."""
    span_w = ((<object>geo.conv.out_w - 1) * geo.conv.stride_w
              + (<object>geo.conv.kernel_w - 1) * geo.conv.dil_w + 1)
    span_h = (<object>geo.conv.kernel_h - 1) * geo.conv.dil_h + 1
    return <object>geo.conv.group_in * span_h * (span_w + FC_PLANE_SLACK) * elem


cdef object _rows_scratch_bytes(const Geometry *geo, Py_ssize_t elem):
    """The row-panel scratch for one output row, in Python integers."""
    padded_w = (<object>geo.conv.out_w + geo.nr) * geo.conv.stride_w
    reach = (<object>geo.conv.kernel_w - 1) * geo.conv.dil_w + 1
    rows = (<object>geo.conv.kernel_h - 1) * geo.conv.dil_h + 1
    return <object>geo.conv.group_in * rows * (padded_w + reach) * elem


def conv2d_direct(const numeric_t[:, :, :, ::1] x,
                  const numeric_t[::1] weight,
                  const numeric_t[::1] tails,
                  const numeric_t[::1] padded_bias,
                  numeric_t[:, :, :, ::1] out,
                  Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                  Py_ssize_t stride_h, Py_ssize_t stride_w,
                  Py_ssize_t pad_top, Py_ssize_t pad_left,
                  Py_ssize_t dil_h, Py_ssize_t dil_w,
                  Py_ssize_t groups, int num_threads, bint relu=False):
    """Direct convolution on validated, C-contiguous arrays.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    weight, tails, padded_bias : ndarray
        From :func:`pack_weights` (same dtype, same instruction-set level).
    out : ndarray of shape (N, K, H_out, W_out)
        Written in full. The caller has checked that the geometry is
        consistent (``H_out``, ``W_out`` >= 1, padding on the bottom/right
        implied by ``H_out``, ``W_out``).
    kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, dil_h, dil_w : int
    groups : int
    num_threads : int
        Requested threads; <= 0 means the OpenMP default at call time.
    relu : bool, default=False
        Apply ``max(y, 0)`` to the result in the same pass.
    """
    cdef Geometry geo
    cdef int mr = 0, nr = 0
    fc_tile_shape(<const numeric_t *>NULL, &mr, &nr)
    cdef Py_ssize_t batch = x.shape[0]
    geo.conv = fc_geometry_of(x.shape[1], x.shape[2], x.shape[3], out.shape[1], out.shape[2],
                              out.shape[3], kernel_h, kernel_w, stride_h, stride_w, pad_top,
                              pad_left, dil_h, dil_w, groups, relu)
    geo.mr, geo.nr = mr, nr
    geo.taps = geo.conv.group_in * geo.conv.kernel_h * geo.conv.kernel_w
    geo.group_out_padded = _ceil_div(geo.conv.group_out, mr) * mr
    if batch == 0 or geo.conv.out_channels == 0:
        return
    if _uses_plane_kernel(groups, geo.conv.group_in):
        if _scratch_fits(_plane_scratch_bytes(&geo, sizeof(numeric_t))):
            _conv2d_planes(x, weight, padded_bias, out, &geo, num_threads)
            return
        # A huge dilation spans mostly padding: the packed path gathers only
        # what exists (and needs the bias padded to whole panels).
        if padded_bias.shape[0] != groups * geo.group_out_padded:
            weight_array = np.asarray(weight).reshape(
                geo.conv.out_channels, geo.conv.group_in, kernel_h, kernel_w)
            weight, tails, padded_bias = pack_weights(weight_array, np.asarray(padded_bias),
                                                      groups, True)
    if (weight.shape[0] != geo.conv.out_channels * geo.taps
            or tails.shape[0] != (0 if geo.group_out_padded == geo.conv.group_out
                                  else groups * mr * geo.taps)
            or padded_bias.shape[0] != groups * geo.group_out_padded):
        raise ValueError("packed weights do not match this geometry or ISA level")
    cdef const numeric_t *w_ptr = &weight[0]
    cdef const numeric_t *tails_ptr = &tails[0] if tails.shape[0] else NULL
    cdef const numeric_t *b_ptr = &padded_bias[0]

    # Split the reduction into equal chunks of at most _KC_MAX taps.
    geo.kc_max = _ceil_div(geo.taps, _ceil_div(geo.taps, _KC_MAX))
    if _uses_row_kernel(&geo) and _scratch_fits(_rows_scratch_bytes(&geo, sizeof(numeric_t))):
        _conv2d_rows(&x[0, 0, 0, 0], w_ptr, tails_ptr, b_ptr,
                     &out[0, 0, 0, 0], &geo, batch, num_threads)
        return

    # Work items: (image, group, pixel block, channel block), as many as the
    # threads and in a multiple of them when there are few, so that static
    # scheduling balances. Which axis to cut follows the data each cut
    # repeats: another pixel block re-reads the weights, another channel
    # block re-packs the input, so the cheaper of the two is split first.
    cdef int threads = effective_num_threads(num_threads, 1 << 30)
    cdef Py_ssize_t n_panels = _ceil_div(geo.conv.out_h * geo.conv.out_w, nr)
    cdef Py_ssize_t n_mpanels = geo.group_out_padded // mr
    cdef Py_ssize_t images_groups = batch * groups
    cdef Py_ssize_t pixel_blocks = _ceil_div(n_panels, max(1, _PIXELS_PER_BLOCK // nr))
    cdef Py_ssize_t channel_blocks = 1
    cdef Py_ssize_t items = images_groups * pixel_blocks
    cdef bint weights_dominate = geo.conv.group_out * geo.taps >= geo.taps * n_panels * nr
    if images_groups == 1 and items < threads and weights_dominate:
        # One small image: the threads pack its columns together, then
        # share out the output channels (no thread packs what another did).
        _conv2d_shared_columns(&x[0, 0, 0, 0], w_ptr, tails_ptr, b_ptr,
                               &out[0, 0, 0, 0], &geo, num_threads)
        return
    if items < threads or (items < 8 * threads and items % threads):
        if weights_dominate:
            channel_blocks = _balance(images_groups * pixel_blocks, 1, n_mpanels, threads)
            pixel_blocks = _balance(images_groups * channel_blocks, pixel_blocks,
                                    n_panels, threads)
        else:
            pixel_blocks = _balance(images_groups, pixel_blocks, n_panels, threads)
            channel_blocks = _balance(images_groups * pixel_blocks, 1, n_mpanels, threads)
    geo.n_pixel_blocks, geo.n_channel_blocks = pixel_blocks, channel_blocks
    geo.panels_per_block = _ceil_div(n_panels, pixel_blocks)
    geo.mpanels_per_block = _ceil_div(n_mpanels, channel_blocks)
    cdef Py_ssize_t n_items = images_groups * pixel_blocks * channel_blocks
    threads = effective_num_threads(num_threads, n_items)

    cdef size_t scratch_elems = <size_t>(geo.kc_max * geo.panels_per_block * nr)
    cdef int alloc_failed = 0
    cdef int *alloc_failed_ptr = &alloc_failed
    cdef Py_ssize_t item
    cdef numeric_t *col
    cdef numeric_t *tile
    cdef const numeric_t *x_ptr = &x[0, 0, 0, 0]
    cdef numeric_t *out_ptr = &out[0, 0, 0, 0]
    cdef fc_interrupt interrupt
    cdef fc_interrupt *interrupt_ptr = &interrupt
    start_interrupt_checks(interrupt_ptr)
    with nogil, parallel(num_threads=threads):
        # Thread-local scratch: one packed input block and one edge tile.
        col = <numeric_t *>fc_scratch_acquire(SLOT_INPUT, scratch_elems * sizeof(numeric_t))
        tile = <numeric_t *>fc_scratch_acquire(SLOT_TILE, <size_t>(mr * nr) * sizeof(numeric_t))
        if col == NULL or tile == NULL:
            alloc_failed_ptr[0] = 1
        for item in prange(n_items, schedule='static'):
            if col != NULL and tile != NULL and not fc_interrupted(interrupt_ptr):
                _run_work_item(&geo, item, x_ptr, w_ptr, tails_ptr, b_ptr, out_ptr, col, tile)
        fc_scratch_release(SLOT_INPUT)
        fc_scratch_release(SLOT_TILE)
    raise_if_interrupted(interrupt_ptr)
    if alloc_failed:
        raise MemoryError("fastconv: cannot allocate per-thread scratch buffers")


# -- channel lanes: output channels in the vector lanes -------------------------
#
# On a small image the pixel panels of the kernel above are mostly empty (49
# pixels of a 7x7 image fill 64 lanes) while the weights, read once per MR
# output channels, stream from memory. The channel-lanes tile turns the
# product around: KB output channels (4 vectors) in the lanes, 7 pixels
# broadcast from a zero-padded copy of the input, so no lane is wasted on
# 7x7, 14x14, 28x28 or 56x56 images, and every weight vector loaded serves 7
# pixels. It needs the weights transposed to [K / KB][C * kH * kW][KB], which
# a prepared layer (Conv2d) does once.

# Input channels per reduction chunk: their weight rows (at most this many
# bytes) stay in L2 while every pixel tile of the work item passes over them.
cdef Py_ssize_t _CHANNEL_LANES_CHUNK_BYTES = 256 * 1024


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
    blocks = _ceil_div(out_channels, kb)
    rows = np.zeros((blocks * kb, weight[0].size), weight.dtype)
    rows[:out_channels] = weight.reshape(out_channels, -1)
    return np.ascontiguousarray(rows.reshape(blocks, kb, -1).transpose(0, 2, 1))


def conv2d_channel_lanes(const floating[:, :, :, ::1] x, const floating[:, :, ::1] packed,
                         const floating[::1] bias, floating[:, :, :, ::1] out,
                         Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                         Py_ssize_t stride_h, Py_ssize_t stride_w,
                         Py_ssize_t dil_h, Py_ssize_t dil_w, int num_threads,
                         bint relu=False):
    """Direct convolution (groups=1) with output channels in the vector lanes.

    Parameters
    ----------
    x : ndarray of shape (N, C, H_pad, W_pad)
        The input with its zero padding (or already padded by a padding
        mode), at least ``(H_out - 1) * stride_h + (kH - 1) * dil_h + 1``
        rows and the like for columns.
    packed : ndarray
        From :func:`pack_channel_lanes` at the current instruction-set level.
    bias : ndarray of shape (K,)
    out : ndarray of shape (N, K, H_out, W_out)
        Written in full.
    kernel_h, kernel_w, stride_h, stride_w, dil_h, dil_w : int
    num_threads : int
        <= 0 means the OpenMP default at call time.
    relu : bool, default=False
        Apply ``max(y, 0)`` to the result.
    """
    cdef Py_ssize_t batch = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t out_channels = out.shape[1], out_h = out.shape[2], out_w = out.shape[3]
    cdef Py_ssize_t kb = fc_channel_lanes_width(<const floating *>NULL)
    if kb == 0:
        raise ValueError("no channel-lanes tile at this instruction-set level")
    cdef Py_ssize_t taps = kernel_h * kernel_w
    cdef Py_ssize_t n_kblocks = _ceil_div(out_channels, kb)
    if (packed.shape[0] != n_kblocks or packed.shape[1] != channels * taps
            or packed.shape[2] != kb):
        raise ValueError("packed weights do not match this geometry or ISA level")
    if bias.shape[0] != out_channels or out.shape[0] != batch:
        raise ValueError("bias or out does not match the weights or the input")
    if ((out_h - 1) * stride_h + (kernel_h - 1) * dil_h >= height
            or (out_w - 1) * stride_w + (kernel_w - 1) * dil_w >= width):
        raise ValueError("the padded input is smaller than the output needs")
    if batch == 0 or out_channels == 0 or out_h == 0 or out_w == 0:
        return
    cdef Py_ssize_t mr = FC_CHANNEL_LANES_PIXELS, pixels = out_h * out_w
    cdef Py_ssize_t n_tiles = _ceil_div(pixels, mr)
    # Reduction step (c, i, j) reads the input at c*H*W + i*dil_h*W + j*dil_w
    # from the pixel's origin; pixels past the last read the last one again.
    k_offsets = (np.arange(channels)[:, None, None] * (height * width)
                 + np.arange(kernel_h)[None, :, None] * (dil_h * width)
                 + np.arange(kernel_w)[None, None, :] * dil_w).astype(np.intp).reshape(-1)
    p = np.minimum(np.arange(n_tiles * mr), pixels - 1)
    pixel_offsets = ((p // out_w) * (stride_h * width)
                     + (p % out_w) * stride_w).astype(np.intp)
    cdef const Py_ssize_t[::1] k_off = k_offsets
    cdef const Py_ssize_t[::1] p_off = pixel_offsets
    cdef Py_ssize_t elem = sizeof(floating)
    cdef Py_ssize_t chunk = max(1, _CHANNEL_LANES_CHUNK_BYTES // (taps * kb * elem))
    # Work items (image, block of KB output channels, group of pixel tiles);
    # more pixel groups only when there are too few items for the threads.
    cdef int threads = effective_num_threads(num_threads, 1 << 30)
    cdef Py_ssize_t base = batch * n_kblocks
    cdef Py_ssize_t n_groups = 1
    while (base * n_groups) % threads and n_groups < n_tiles and base * n_groups < 4 * threads:
        n_groups += 1
    cdef Py_ssize_t n_items = base * n_groups
    threads = effective_num_threads(num_threads, n_items)
    cdef size_t buf_bytes = <size_t>(_ceil_div(n_tiles, n_groups) * mr * kb) * elem
    cdef const floating *x_ptr = &x[0, 0, 0, 0]
    cdef const floating *w_ptr = &packed[0, 0, 0]
    cdef const floating *b_ptr = &bias[0]
    cdef floating *out_ptr = &out[0, 0, 0, 0]
    cdef int alloc_failed = 0
    cdef int *alloc_failed_ptr = &alloc_failed
    cdef floating *buf
    cdef Py_ssize_t item
    cdef fc_interrupt interrupt
    cdef fc_interrupt *interrupt_ptr = &interrupt
    start_interrupt_checks(interrupt_ptr)
    with nogil, parallel(num_threads=threads):
        buf = <floating *>fc_scratch_acquire(SLOT_TILE, buf_bytes)
        if buf == NULL:
            alloc_failed_ptr[0] = 1
        for item in prange(n_items, schedule='static'):
            if buf != NULL and not fc_interrupted(interrupt_ptr):
                _channel_lanes_work_item(item, n_kblocks, n_groups, n_tiles, x_ptr, w_ptr, b_ptr,
                                         out_ptr, &k_off[0], &p_off[0], channels, height * width,
                                         out_channels, pixels, taps, kb, chunk, relu, buf)
        fc_scratch_release(SLOT_TILE)
    raise_if_interrupted(interrupt_ptr)
    if alloc_failed:
        raise MemoryError("fastconv: cannot allocate per-thread scratch buffers")


cdef void _channel_lanes_work_item(Py_ssize_t item, Py_ssize_t n_kblocks, Py_ssize_t n_groups,
                                   Py_ssize_t n_tiles, const floating *x, const floating *packed,
                                   const floating *bias, floating *out,
                                   const Py_ssize_t *k_offsets, const Py_ssize_t *pixel_offsets,
                                   Py_ssize_t channels, Py_ssize_t plane, Py_ssize_t out_channels,
                                   Py_ssize_t pixels, Py_ssize_t taps, Py_ssize_t kb,
                                   Py_ssize_t chunk, bint relu, floating *buf) noexcept nogil:
    """Pixel tiles t0 .. t1 of one image and block of output channels: the
    results, [pixel][KB] in ``buf`` from the bias on, gather the reduction
    chunk by chunk, then go to ``out`` transposed."""
    cdef Py_ssize_t mr = FC_CHANNEL_LANES_PIXELS
    cdef Py_ssize_t group = item % n_groups
    cdef Py_ssize_t rest = item // n_groups
    cdef Py_ssize_t kblock = rest % n_kblocks
    cdef Py_ssize_t n = rest // n_kblocks
    cdef Py_ssize_t t0 = group * n_tiles // n_groups
    cdef Py_ssize_t t1 = (group + 1) * n_tiles // n_groups
    cdef Py_ssize_t k0 = kblock * kb
    cdef Py_ssize_t lanes = min(kb, out_channels - k0)
    cdef const floating *image = x + n * channels * plane
    cdef const floating *w = packed + kblock * channels * taps * kb
    cdef Py_ssize_t q, lane, c0, t, p, p_end
    cdef floating value
    for q in range((t1 - t0) * mr):
        for lane in range(kb):
            buf[q * kb + lane] = bias[k0 + lane] if lane < lanes else 0
    c0 = 0
    while c0 < channels:
        for t in range(t0, t1):
            fc_channel_lanes_tile(min(chunk, channels - c0) * taps, image, k_offsets + c0 * taps,
                          pixel_offsets + t * mr, w + c0 * taps * kb,
                          buf + (t - t0) * mr * kb)
        c0 = c0 + chunk
    p_end = min(t1 * mr, pixels)
    for lane in range(lanes):
        for p in range(t0 * mr, p_end):
            value = buf[(p - t0 * mr) * kb + lane]
            if relu and value < 0:
                value = 0
            out[(n * out_channels + k0 + lane) * pixels + p] = value
