# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""The direct convolution's GEMM paths (private): packed, shared columns, rows.

For one image ``n`` and group ``g`` the convolution is the matrix product

    out[k, p] = bias[k] + sum_r weight[k, r] * col[r, p]

with ``r = (c, i, j)`` running over the ``C/groups * kH * kW`` kernel taps and
``p = (oh, ow)`` over the output pixels; ``col[r, p]`` is the input value that
tap ``r`` sees from output pixel ``p`` (zero in the padding). ``col`` is never
built whole: a work item packs one block of it into panels of ``NR`` pixels
(``conv2d_packed``, ``conv2d_shared_columns``), or reads its panels in place
from a copy of the input rows they come from (``conv2d_rows``), and the
register-blocked GEMM tile (``_kernels/gemm_tile.hpp``) multiplies them with
``MR`` weight rows read in place. Padding costs no padded copy of the input;
stride, dilation and asymmetric padding are just different gathers.

Each driver executes a plan's blocking (``fastconv._plan.direct`` chose it)
and decides nothing. Every output element is produced by one work item with
the same reduction order whatever the blocking and thread count, so results
are bit-identical for any ``num_threads``.
"""

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from ._cpu cimport kernel_table
from ._kernels cimport *
from ._parallel cimport (SLOT_SHARED, THREAD_STATE_BYTES, aligned, ceil_div, numeric_t,
                         run_rounds, run_work_items)

import numpy as np

# Kernels of the level in use: fastconv._cpu's one table.
fc_use_kernel_table(kernel_table())


cdef struct GemmJob:
    fc_geometry conv                  # shapes, hyperparameters, relu (geometry.hpp)
    Py_ssize_t mr, nr                 # GEMM tile: output channels x pixels
    Py_ssize_t taps                   # C/groups * kH * kW (reduction length)
    Py_ssize_t group_out_padded       # K/groups rounded up to MR
    # The plan's blocking
    Py_ssize_t kc_max                 # taps per packed block (packed)
    Py_ssize_t panels_per_block       # NR-pixel panels per work item (packed)
    Py_ssize_t n_pixel_blocks         # (packed)
    Py_ssize_t n_row_blocks           # (rows)
    Py_ssize_t n_channel_blocks       # MR-channel panel blocks (packed, rows)
    Py_ssize_t chunk_taps             # taps per shared block (shared columns)
    bint weights_outer                # packed: weight panels in the outer loop
    Py_ssize_t chunk_channels         # input channels per reduction chunk (rows)
    bint wide                         # the chunks run the wide tile, NR = its width
    Py_ssize_t narrow_nr              # the MR x NR tile's NR
    # Where a thread's packed columns or copied rows start in its scratch
    # (after its edge tile), and the rows path's layout, its tap offsets and
    # elements of its copied rows; with reduction chunks, where its
    # accumulators start (after the edge tile)
    size_t data_offset
    size_t acc_offset
    fc_rows_layout layout
    const Py_ssize_t *offsets
    Py_ssize_t rows_elems
    # The arrays (of one dtype): input, weights as pack_weights gives them,
    # output, and the columns the threads share
    const void *x
    const void *weight
    const void *tails
    const void *bias
    void *out
    void *columns


cdef int _gemm_job(GemmJob *job, const numeric_t[:, :, :, ::1] x,
                   const numeric_t[::1] weight, const numeric_t[::1] tails,
                   const numeric_t[::1] padded_bias, numeric_t[:, :, :, ::1] out,
                   Py_ssize_t kernel_h, Py_ssize_t kernel_w, Py_ssize_t stride_h,
                   Py_ssize_t stride_w, Py_ssize_t pad_top, Py_ssize_t pad_left,
                   Py_ssize_t dil_h, Py_ssize_t dil_w, Py_ssize_t groups,
                   bint relu) except -1:
    """The geometry, tile shape and array pointers of a call; a ValueError
    if the packed weights do not match them (another geometry or ISA level)."""
    cdef int mr = 0, nr = 0
    fc_tile_shape(<const numeric_t *>NULL, &mr, &nr)
    job.conv = fc_geometry_of(x.shape[1], x.shape[2], x.shape[3], out.shape[1],
                              out.shape[2], out.shape[3], kernel_h, kernel_w, stride_h,
                              stride_w, pad_top, pad_left, dil_h, dil_w, groups, relu)
    job.mr, job.nr = mr, nr
    job.taps = job.conv.group_in * kernel_h * kernel_w
    job.group_out_padded = ceil_div(job.conv.group_out, mr) * mr
    if (x.shape[0] != out.shape[0] or weight.shape[0] != job.conv.out_channels * job.taps
            or tails.shape[0] != (0 if job.group_out_padded == job.conv.group_out
                                  else groups * mr * job.taps)
            or padded_bias.shape[0] != groups * job.group_out_padded):
        raise ValueError("packed weights do not match this geometry or ISA level")
    job.x, job.out = &x[0, 0, 0, 0], &out[0, 0, 0, 0]
    job.weight, job.bias = &weight[0], &padded_bias[0]
    job.tails = &tails[0] if tails.shape[0] else NULL
    job.data_offset = THREAD_STATE_BYTES
    return 0


cdef int _check_blocks(object blocking, tuple keys, Py_ssize_t limit) except -1:
    """Every block count of ``keys`` in ``blocking`` in [1, ``limit``]."""
    for key in keys:
        if not 1 <= blocking[key] <= max(limit, 1):
            raise ValueError(f"blocking[{key!r}] = {blocking[key]} is not in [1, {limit}]")
    return 0


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


cdef inline Py_ssize_t _mpanel_bound(const GemmJob *job, Py_ssize_t channel_block) noexcept nogil:
    """First MR-channel panel of ``channel_block`` (the end of block b is the
    start of b + 1): blocks differ by one panel at most."""
    return channel_block * (job.group_out_padded // job.mr) // job.n_channel_blocks


cdef inline const numeric_t *_weight_rows(const GemmJob *job, const numeric_t *weight,
                                          const numeric_t *tails, Py_ssize_t g,
                                          Py_ssize_t m0) noexcept nogil:
    """The MR weight rows of output channels m0 .. m0 + MR of group g, ``taps``
    apart: in place, or for the panel cut by K/groups its zero-padded copy
    in ``tails`` (pack_weights)."""
    if m0 + job.mr <= job.conv.group_out:
        return weight + (g * job.conv.group_out + m0) * job.taps
    return tails + g * job.mr * job.taps


cdef bint _packed_item(const void *job_ptr, Py_ssize_t item, char *scratch,
                       const numeric_t *dtype) noexcept nogil:
    """One (image, group, pixel block, channel block) of the packed path: per
    reduction chunk, its columns packed into panels, then every tile."""
    cdef const GemmJob *job = <const GemmJob *>job_ptr
    cdef const numeric_t *x = <const numeric_t *>job.x
    cdef const numeric_t *weight = <const numeric_t *>job.weight
    cdef const numeric_t *tails = <const numeric_t *>job.tails
    cdef const numeric_t *padded_bias = <const numeric_t *>job.bias
    cdef numeric_t *out = <numeric_t *>job.out
    cdef numeric_t *tile = <numeric_t *>(scratch + THREAD_STATE_BYTES)
    cdef numeric_t *col = <numeric_t *>(scratch + job.data_offset)
    cdef Py_ssize_t mr = job.mr, nr = job.nr, taps = job.taps
    cdef Py_ssize_t n_pixels_out = job.conv.out_h * job.conv.out_w
    cdef Py_ssize_t channel_block = item % job.n_channel_blocks
    cdef Py_ssize_t rest = item // job.n_channel_blocks
    cdef Py_ssize_t pixel_block = rest % job.n_pixel_blocks
    rest = rest // job.n_pixel_blocks
    cdef Py_ssize_t g = rest % job.conv.groups
    cdef Py_ssize_t n = rest // job.conv.groups

    # Block b of B covers panels [b*P/B, (b+1)*P/B): sizes differ by one at most.
    cdef Py_ssize_t total_panels = (n_pixels_out + nr - 1) // nr
    cdef Py_ssize_t panel_lo = pixel_block * total_panels // job.n_pixel_blocks
    cdef Py_ssize_t panel_hi = (pixel_block + 1) * total_panels // job.n_pixel_blocks
    cdef Py_ssize_t pixel0 = panel_lo * nr
    cdef Py_ssize_t n_pixels = panel_hi * nr
    if n_pixels > n_pixels_out:
        n_pixels = n_pixels_out
    n_pixels = n_pixels - pixel0
    if n_pixels <= 0:
        return False
    cdef Py_ssize_t n_panels = (n_pixels + nr - 1) // nr
    cdef Py_ssize_t mpanel_lo = _mpanel_bound(job, channel_block)
    cdef Py_ssize_t mpanel_hi = _mpanel_bound(job, channel_block + 1)

    cdef const numeric_t *image = x + ((n * job.conv.channels + g * job.conv.group_in)
                                       * job.conv.height * job.conv.width)
    cdef numeric_t *out_group = out + ((n * job.conv.out_channels + g * job.conv.group_out)
                                       * n_pixels_out)
    cdef const numeric_t *bias_group = padded_bias + g * job.group_out_padded

    cdef Py_ssize_t n_mpanels = mpanel_hi - mpanel_lo
    cdef Py_ssize_t tap0, kc, jp, mp, tile_index, m0, rows, cols, m
    cdef int accumulate
    cdef const numeric_t *a
    cdef const numeric_t *b
    cdef numeric_t *c
    tap0 = 0
    while tap0 < taps:
        kc = job.kc_max
        if kc > taps - tap0:
            kc = taps - tap0
        fc_pack_input(&job.conv, job.nr, image, tap0, kc, 0, kc, pixel0, n_pixels, col)
        accumulate = tap0 > 0
        for tile_index in range(n_panels * n_mpanels):
            if job.weights_outer:
                mp, jp = mpanel_lo + tile_index // n_panels, tile_index % n_panels
            else:
                jp, mp = tile_index // n_mpanels, mpanel_lo + tile_index % n_mpanels
            b = col + jp * kc * nr
            cols = n_pixels - jp * nr
            if cols > nr:
                cols = nr
            m0 = mp * mr
            a = _weight_rows(job, weight, tails, g, m0) + tap0
            c = out_group + m0 * n_pixels_out + pixel0 + jp * nr
            rows = min(mr, job.conv.group_out - m0)
            _output_tile(kc, a, taps, b, NULL, c, n_pixels_out, rows, cols, mr, nr,
                         accumulate, bias_group + m0, job.conv.relu and tap0 + kc == taps,
                         tile)
        tap0 = tap0 + kc
    return False


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


cdef void _dense_rows(const GemmJob *job, const fc_rows_layout *layout,
                      Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t mpanel_lo, Py_ssize_t mpanel_hi,
                      const numeric_t *weight, const numeric_t *tails, Py_ssize_t g,
                      const numeric_t *bias_group, numeric_t *out_group,
                      const numeric_t *rows, const Py_ssize_t *offsets,
                      numeric_t *tile) noexcept nogil:
    """Dense rows: the output rows of the block are one run of virtual pixels
    v = (oh - oh0) * row_len + ow (row_len = phase_len = out_w + the kernel's
    reach / stride), so panels run across row ends and waste only the reach
    columns, whatever the output width."""
    cdef Py_ssize_t mr = job.mr, nr = job.nr, taps = job.taps
    cdef Py_ssize_t n_pixels_out = job.conv.out_h * job.conv.out_w
    cdef Py_ssize_t row_len = layout.phase_len, out_w = job.conv.out_w
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
            a = _weight_rows(job, weight, tails, g, m0)
            c_block = out_group + m0 * n_pixels_out + oh0 * out_w
            rows_valid = min(mr, job.conv.group_out - m0)
            if inside and rows_valid == mr:
                c = c_block + r * out_w + ow
                fc_tile_indirect(taps, a, taps, rows + v0, offsets, c, n_pixels_out, 0,
                                 bias_group + m0)
                if job.conv.relu:
                    _relu_rows(c, mr, nr, n_pixels_out)
            else:
                fc_tile_indirect(taps, a, taps, rows + v0, offsets, tile, nr, 0,
                                 bias_group + m0)
                if job.conv.relu:
                    _relu_rows(tile, rows_valid, nr, nr)
                _panel_copy(tile, c_block, rows_valid, nr, v0, v_end, row_len, out_w,
                            n_pixels_out)
        v0 = v0 + nr


cdef inline Py_ssize_t _panel_origin(const fc_rows_layout *layout, Py_ssize_t p,
                                     Py_ssize_t nr, Py_ssize_t panels_per_row) noexcept nogil:
    """Virtual pixel where B panel p of a row block starts: dense panels run
    on across row ends; whole-panel rows start each row afresh."""
    if layout.dense:
        return p * nr
    return (p // panels_per_row) * layout.phase_len + (p % panels_per_row) * nr


cdef void _chunked_rows(const GemmJob *job, const fc_rows_layout *layout,
                        const numeric_t *image, Py_ssize_t oh0, Py_ssize_t oh1,
                        Py_ssize_t mpanel_lo, Py_ssize_t mpanel_hi, const numeric_t *weight,
                        const numeric_t *tails, Py_ssize_t g, const numeric_t *bias_group,
                        numeric_t *out_group, numeric_t *rows, const Py_ssize_t *offsets,
                        numeric_t *acc) noexcept nogil:
    """Rows in reduction chunks of ``chunk_channels`` input channels, the
    GEMM's classic blocking: per chunk, its channels' rows are copied, then
    each B panel's rows are loaded into L1 once and meet every weight panel
    of the block, whose chunk stays in L2 while every B panel passes; the
    MR x NR sums wait in ``acc`` (a tile per B panel and weight panel)
    between chunks. Read whole, a panel's B rows outgrow L1 (128 channels of
    a strided 3x3 layer: ~150 KB) and every tile streams them from L2
    again; and since only a chunk's rows are held, a block can take many
    more rows (less of the last panel wasted, the weights read fewer times).
    The taps are summed in the same order either way, so the result does
    not depend on the chunks."""
    cdef Py_ssize_t mr = job.mr, nr = job.nr, taps = job.taps
    cdef Py_ssize_t area = job.conv.kernel_h * job.conv.kernel_w
    cdef Py_ssize_t n_pixels_out = job.conv.out_h * job.conv.out_w
    cdef Py_ssize_t plane = job.conv.height * job.conv.width
    cdef Py_ssize_t row_len = layout.phase_len, out_w = job.conv.out_w
    cdef Py_ssize_t v_end = (oh1 - oh0 - 1) * row_len + out_w
    cdef Py_ssize_t panels_per_row = (row_len - (job.conv.kernel_w - 1) * job.conv.dil_w
                                      // job.conv.stride_w) // nr
    cdef Py_ssize_t n_panels = (ceil_div(v_end, nr) if layout.dense
                                else (oh1 - oh0) * panels_per_row)
    cdef Py_ssize_t n_mp = mpanel_hi - mpanel_lo, tile_elems = mr * nr
    cdef Py_ssize_t group_in = job.conv.group_in, chunk = job.chunk_channels
    cdef Py_ssize_t p, v0, c0, kc, mp, m0, rows_valid
    cdef bint narrow
    cdef fc_geometry part = job.conv
    cdef numeric_t *acc_tile
    # The chunk's taps have the offsets of the first chunk's: offsets are
    # relative to the rows of the chunk's first channel.
    c0 = 0
    while c0 < group_in:
        part.group_in = min(chunk, group_in - c0)
        kc = part.group_in * area
        fc_rows_fill(layout, &part, image + c0 * plane, oh0, rows)
        for p in range(n_panels):
            v0 = _panel_origin(layout, p, nr, panels_per_row)
            # A dense block's last wide panel with no more pixels than the
            # MR x NR tile's width runs that tile (into the first columns
            # of its sums): fewer lanes computed ((1,256,28,28) stride 2:
            # 224 instead of 240).
            narrow = not job.wide or (layout.dense and v_end - v0 <= job.narrow_nr)
            for mp in range(mpanel_lo, mpanel_hi):
                if not narrow:
                    fc_tile_indirect_wide(
                        kc, _weight_rows(job, weight, tails, g, mp * mr) + c0 * area, taps,
                        rows + v0, offsets, acc + (p * n_mp + mp - mpanel_lo) * tile_elems, nr,
                        c0 > 0, bias_group + mp * mr)
                else:
                    fc_tile_indirect(
                        kc, _weight_rows(job, weight, tails, g, mp * mr) + c0 * area, taps,
                        rows + v0, offsets, acc + (p * n_mp + mp - mpanel_lo) * tile_elems, nr,
                        c0 > 0, bias_group + mp * mr)
        c0 = c0 + chunk
    for p in range(n_panels):
        v0 = _panel_origin(layout, p, nr, panels_per_row)
        for mp in range(mpanel_lo, mpanel_hi):
            m0 = mp * mr
            rows_valid = min(mr, job.conv.group_out - m0)
            acc_tile = acc + (p * n_mp + mp - mpanel_lo) * tile_elems
            if job.conv.relu:
                # Only the columns copied: a narrow last panel's sums end early.
                _relu_rows(acc_tile, rows_valid, min(nr, v_end - v0), nr)
            _panel_copy(acc_tile, out_group + m0 * n_pixels_out + oh0 * out_w, rows_valid,
                        nr, v0, v_end, row_len, out_w, n_pixels_out)


cdef bint _rows_item(const void *job_ptr, Py_ssize_t item, char *scratch,
                     const numeric_t *dtype) noexcept nogil:
    """One (image, group, block of output rows, block of channels) of the
    row-panel path (rows.hpp): B rows are read in place from ``rows``."""
    cdef const GemmJob *job = <const GemmJob *>job_ptr
    cdef const fc_rows_layout *layout = &job.layout
    cdef Py_ssize_t n_row_blocks = job.n_row_blocks
    cdef const numeric_t *x = <const numeric_t *>job.x
    cdef const numeric_t *weight = <const numeric_t *>job.weight
    cdef const numeric_t *tails = <const numeric_t *>job.tails
    cdef const numeric_t *padded_bias = <const numeric_t *>job.bias
    cdef numeric_t *out = <numeric_t *>job.out
    cdef numeric_t *tile = <numeric_t *>(scratch + THREAD_STATE_BYTES)
    cdef numeric_t *rows = <numeric_t *>(scratch + job.data_offset)
    cdef const Py_ssize_t *offsets = job.offsets
    cdef Py_ssize_t mr = job.mr, nr = job.nr, taps = job.taps
    cdef Py_ssize_t n_pixels_out = job.conv.out_h * job.conv.out_w
    cdef Py_ssize_t channel_block = item % job.n_channel_blocks
    cdef Py_ssize_t rest = item // job.n_channel_blocks
    cdef Py_ssize_t row_block = rest % n_row_blocks
    rest = rest // n_row_blocks
    cdef Py_ssize_t g = rest % job.conv.groups
    cdef Py_ssize_t n = rest // job.conv.groups
    cdef Py_ssize_t oh0 = row_block * job.conv.out_h // n_row_blocks
    cdef Py_ssize_t oh1 = (row_block + 1) * job.conv.out_h // n_row_blocks
    if oh0 >= oh1:
        return False
    cdef Py_ssize_t mpanel_lo = _mpanel_bound(job, channel_block)
    cdef Py_ssize_t mpanel_hi = _mpanel_bound(job, channel_block + 1)
    cdef const numeric_t *image = x + ((n * job.conv.channels + g * job.conv.group_in)
                                       * job.conv.height * job.conv.width)
    cdef numeric_t *out_group = out + ((n * job.conv.out_channels + g * job.conv.group_out)
                                       * n_pixels_out)
    cdef const numeric_t *bias_group = padded_bias + g * job.group_out_padded
    # The slack after the last channel is only read for columns that are
    # dropped; zeroed so that no uninitialised value is ever used
    # (valgrind-clean).
    memset(rows + job.rows_elems - nr, 0, <size_t>nr * sizeof(numeric_t))
    if job.chunk_channels < job.conv.group_in:
        _chunked_rows(job, layout, image, oh0, oh1, mpanel_lo, mpanel_hi, weight, tails, g,
                      bias_group, out_group, rows, offsets,
                      <numeric_t *>(scratch + job.acc_offset))
        return False
    fc_rows_fill(layout, &job.conv, image, oh0, rows)

    # The whole reduction in one chunk (see conv2d_rows).
    cdef Py_ssize_t oh, ow0, mp, m0, rows_valid, cols
    cdef const numeric_t *base
    cdef numeric_t *c
    if layout.dense:
        _dense_rows(job, layout, oh0, oh1, mpanel_lo, mpanel_hi, weight, tails, g,
                    bias_group, out_group, rows, offsets, tile)
        return False
    for oh in range(oh0, oh1):
        ow0 = 0
        while ow0 < job.conv.out_w:
            base = rows + (oh - oh0) * layout.phase_len + ow0
            cols = min(nr, job.conv.out_w - ow0)
            for mp in range(mpanel_lo, mpanel_hi):
                m0 = mp * mr
                c = out_group + m0 * n_pixels_out + oh * job.conv.out_w + ow0
                rows_valid = min(mr, job.conv.group_out - m0)
                _output_tile(taps, _weight_rows(job, weight, tails, g, m0), taps, base, offsets,
                             c, n_pixels_out, rows_valid, cols, mr, nr, 0, bias_group + m0,
                             job.conv.relu, tile)
            ow0 = ow0 + nr
    return False


def conv2d_packed(const numeric_t[:, :, :, ::1] x, const numeric_t[::1] weight,
                  const numeric_t[::1] tails, const numeric_t[::1] padded_bias,
                  numeric_t[:, :, :, ::1] out, Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                  Py_ssize_t stride_h, Py_ssize_t stride_w, Py_ssize_t pad_top,
                  Py_ssize_t pad_left, Py_ssize_t dil_h, Py_ssize_t dil_w, Py_ssize_t groups,
                  int num_threads, blocking, bint relu=False):
    """The packed path: work items (image, group, pixel block, channel block),
    each packing its columns a reduction chunk at a time.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    weight, tails, padded_bias : ndarray
        From :func:`fastconv._direct.pack_weights` (GEMM layout, same dtype,
        same instruction-set level).
    out : ndarray of shape (N, K, H_out, W_out)
        Written in full; the caller has checked the geometry.
    kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, dil_h, dil_w, groups : int
    num_threads : int
        The plan's threads, started as they are.
    blocking : mapping
        The plan's ``kc_max``, ``pixel_blocks``, ``channel_blocks`` and
        ``weights_outer`` (1: each weight panel meets every pixel panel of
        the work item in turn; 0: each pixel panel every weight panel).
    relu : bool, default=False
        Apply ``max(y, 0)`` to the result in the same pass.
    """
    cdef GemmJob job
    _gemm_job(&job, x, weight, tails, padded_bias, out, kernel_h, kernel_w, stride_h,
              stride_w, pad_top, pad_left, dil_h, dil_w, groups, relu)
    cdef Py_ssize_t n_panels = ceil_div(job.conv.out_h * job.conv.out_w, job.nr)
    _check_blocks(blocking, ("kc_max",), job.taps)
    _check_blocks(blocking, ("pixel_blocks",), n_panels)
    _check_blocks(blocking, ("channel_blocks",), job.group_out_padded // job.mr)
    job.kc_max = blocking["kc_max"]
    job.n_pixel_blocks = blocking["pixel_blocks"]
    job.n_channel_blocks = blocking["channel_blocks"]
    job.panels_per_block = ceil_div(n_panels, job.n_pixel_blocks)
    if blocking["weights_outer"] not in (0, 1):
        raise ValueError("weights_outer must be 0 or 1")
    job.weights_outer = blocking["weights_outer"]
    cdef size_t columns_bytes = <size_t>(job.kc_max * job.panels_per_block * job.nr)
    columns_bytes *= sizeof(numeric_t)
    cdef size_t tile_bytes = aligned(<size_t>(job.mr * job.nr) * sizeof(numeric_t))
    job.data_offset = THREAD_STATE_BYTES + tile_bytes
    cdef Py_ssize_t n_items = (x.shape[0] * groups * job.n_pixel_blocks
                               * job.n_channel_blocks)
    run_work_items(_packed_item[numeric_t], &job, n_items, num_threads,
                   tile_bytes + columns_bytes)


def conv2d_rows(const numeric_t[:, :, :, ::1] x, const numeric_t[::1] weight,
                const numeric_t[::1] tails, const numeric_t[::1] padded_bias,
                numeric_t[:, :, :, ::1] out, Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                Py_ssize_t stride_h, Py_ssize_t stride_w, Py_ssize_t pad_top,
                Py_ssize_t pad_left, Py_ssize_t dil_h, Py_ssize_t dil_w, Py_ssize_t groups,
                int num_threads, blocking, bint relu=False):
    """The row-panel path: work items (image, group, row block, channel
    block), each copying its input rows (all channels of the group, padded)
    and reading the tiles' B panels in place from them; every tile takes the
    whole reduction in one chunk, so the accumulators never leave the
    registers.

    Parameters are those of :func:`conv2d_packed`; ``blocking`` holds the
    plan's ``row_blocks``, ``channel_blocks`` and ``dense`` (the block's rows
    one run of virtual pixels, panels across row ends, rather than whole
    panels per row).
    """
    cdef GemmJob job
    _gemm_job(&job, x, weight, tails, padded_bias, out, kernel_h, kernel_w, stride_h,
              stride_w, pad_top, pad_left, dil_h, dil_w, groups, relu)
    _check_blocks(blocking, ("row_blocks",), job.conv.out_h)
    _check_blocks(blocking, ("channel_blocks",), job.group_out_padded // job.mr)
    _check_blocks(blocking, ("chunk_channels",), job.conv.group_in)
    job.n_row_blocks = blocking["row_blocks"]
    job.n_channel_blocks = blocking["channel_blocks"]
    job.chunk_channels = blocking["chunk_channels"]
    # The wide tile only in chunks (the other rows code runs the MR x NR one).
    job.wide = blocking["wide"]
    job.narrow_nr = job.nr
    if job.wide:
        if (fc_wide_nr(<const numeric_t *>NULL) == 0
                or job.chunk_channels >= job.conv.group_in):
            raise ValueError("blocking['wide'] needs the wide tile and reduction chunks")
        job.nr = fc_wide_nr(<const numeric_t *>NULL)
    cdef bint dense = blocking["dense"]
    cdef Py_ssize_t padded_w = (job.conv.out_w if dense
                                else ceil_div(job.conv.out_w, job.nr) * job.nr)
    job.layout = fc_rows_plan(&job.conv, ceil_div(job.conv.out_h, job.n_row_blocks), padded_w)
    job.layout.dense = dense
    # Slack after the last channel: a dense block's last panel reads up to
    # one panel past the block's last virtual pixel.
    job.rows_elems = job.chunk_channels * job.layout.channel_stride + job.nr
    cdef size_t tile_bytes = aligned(<size_t>(job.mr * job.nr) * sizeof(numeric_t))
    # With reduction chunks, a tile of sums per weight panel of the largest
    # channel block.
    cdef size_t acc_bytes = 0
    cdef Py_ssize_t block_rows = ceil_div(job.conv.out_h, job.n_row_blocks)
    cdef Py_ssize_t block_panels = (
        ceil_div((block_rows - 1) * job.layout.phase_len + job.conv.out_w, job.nr) if dense
        else block_rows * (padded_w // job.nr))
    if job.chunk_channels < job.conv.group_in:
        acc_bytes = aligned(<size_t>(ceil_div(job.group_out_padded // job.mr,
                                              job.n_channel_blocks) * job.mr * job.nr
                                     * block_panels) * sizeof(numeric_t))
    job.acc_offset = THREAD_STATE_BYTES + tile_bytes
    job.data_offset = job.acc_offset + acc_bytes
    # The same layout for every item: the taps' offsets are computed once
    # (divisions per tap per item cost ~9% of a 128-channel 3x3 layer).
    cdef Py_ssize_t *offsets = <Py_ssize_t *>fc_scratch_acquire(
        SLOT_SHARED, <size_t>job.taps * sizeof(Py_ssize_t))
    if offsets == NULL:
        raise MemoryError("fastconv: cannot allocate the tap offsets")
    try:
        fc_rows_offsets(&job.layout, &job.conv, 0, job.taps, offsets)
        job.offsets = offsets
        run_work_items(_rows_item[numeric_t], &job,
                       x.shape[0] * groups * job.n_row_blocks * job.n_channel_blocks,
                       num_threads,
                       tile_bytes + acc_bytes + <size_t>job.rows_elems * sizeof(numeric_t))
    finally:
        fc_scratch_release(SLOT_SHARED)


def conv2d_shared_columns(const numeric_t[:, :, :, ::1] x, const numeric_t[::1] weight,
                          const numeric_t[::1] tails, const numeric_t[::1] padded_bias,
                          numeric_t[:, :, :, ::1] out, Py_ssize_t kernel_h,
                          Py_ssize_t kernel_w, Py_ssize_t stride_h, Py_ssize_t stride_w,
                          Py_ssize_t pad_top, Py_ssize_t pad_left, Py_ssize_t dil_h,
                          Py_ssize_t dil_w, Py_ssize_t groups, int num_threads, blocking,
                          bint relu=False):
    """One small image and group: per reduction chunk of ``chunk_taps``
    taps, all threads pack the columns of every pixel (a share of the taps
    each), then compute a share of the (output-channel panel, pixel panel)
    tiles; no thread packs what another did. Two barriers per chunk.

    Parameters are those of :func:`conv2d_packed`; ``blocking`` holds the
    plan's ``chunk_taps``.
    """
    cdef GemmJob job
    _gemm_job(&job, x, weight, tails, padded_bias, out, kernel_h, kernel_w, stride_h,
              stride_w, pad_top, pad_left, dil_h, dil_w, groups, relu)
    if x.shape[0] * groups != 1:
        raise ValueError("the shared-columns path takes one image of one group")
    _check_blocks(blocking, ("chunk_taps",), job.taps)
    job.chunk_taps = blocking["chunk_taps"]
    cdef Py_ssize_t n_panels = ceil_div(job.conv.out_h * job.conv.out_w, job.nr)
    job.columns = fc_scratch_acquire(
        SLOT_SHARED, <size_t>(job.chunk_taps * n_panels * job.nr) * sizeof(numeric_t))
    if job.columns == NULL:
        raise MemoryError("fastconv: cannot allocate the packed columns")
    try:
        run_rounds(_shared_columns_phase_items, _shared_columns_item[numeric_t], &job,
                   ceil_div(job.taps, job.chunk_taps), num_threads,
                   <size_t>(job.mr * job.nr) * sizeof(numeric_t))
    finally:
        fc_scratch_release(SLOT_SHARED)


cdef Py_ssize_t _shared_columns_phase_items(const void *job_ptr, Py_ssize_t chunk,
                                            int phase) noexcept nogil:
    """Phase 0: the chunk's taps, packed one each; phase 1: its tiles."""
    cdef const GemmJob *job = <const GemmJob *>job_ptr
    if phase == 0:
        return min(job.chunk_taps, job.taps - chunk * job.chunk_taps)
    return (job.group_out_padded // job.mr) * ceil_div(job.conv.out_h * job.conv.out_w,
                                                       job.nr)


cdef bint _shared_columns_item(const void *job_ptr, Py_ssize_t chunk, int phase,
                               Py_ssize_t item, char *scratch,
                               const numeric_t *dtype) noexcept nogil:
    """Tap ``item`` of the chunk packed (phase 0), or tile ``item`` (output-
    channel panel, pixel panel) multiplied over the chunk (phase 1)."""
    cdef const GemmJob *job = <const GemmJob *>job_ptr
    cdef Py_ssize_t mr = job.mr, nr = job.nr, taps = job.taps
    cdef Py_ssize_t n_pixels = job.conv.out_h * job.conv.out_w
    cdef Py_ssize_t n_panels = ceil_div(n_pixels, nr)
    cdef Py_ssize_t tap0 = chunk * job.chunk_taps
    cdef Py_ssize_t kc = min(job.chunk_taps, taps - tap0)
    cdef numeric_t *columns = <numeric_t *>job.columns
    if phase == 0:
        fc_pack_input(&job.conv, nr, <const numeric_t *>job.x, tap0, kc, item, item + 1, 0,
                      n_pixels, columns)
        return False
    cdef Py_ssize_t mp = item // n_panels
    cdef Py_ssize_t jp = item - mp * n_panels
    cdef Py_ssize_t m0 = mp * mr
    cdef const numeric_t *a = _weight_rows(job, <const numeric_t *>job.weight,
                                           <const numeric_t *>job.tails, 0, m0) + tap0
    _output_tile(kc, a, taps, columns + jp * kc * nr, NULL,
                 <numeric_t *>job.out + m0 * n_pixels + jp * nr, n_pixels,
                 min(mr, job.conv.group_out - m0), min(nr, n_pixels - jp * nr), mr, nr,
                 tap0 > 0, <const numeric_t *>job.bias + m0,
                 job.conv.relu and tap0 + kc == taps,
                 <numeric_t *>(scratch + THREAD_STATE_BYTES))
    return False


# -- the weight gradient ------------------------------------------------------

cdef struct WeightGradJob:
    Py_ssize_t mr, nr
    Py_ssize_t groups, taps, kernel_w   # taps = kH * kW
    Py_ssize_t phases_h, phases_w       # the strides: the input's phase images
    Py_ssize_t dil_h, dil_w
    Py_ssize_t phase_w                  # width of a phase image (row step of a tap)
    Py_ssize_t channels_padded          # C/groups rounded up to MR
    Py_ssize_t row_len                  # elements of one channel's phase rows (all images)
    Py_ssize_t reduction                # virtual pixels summed over (all images)
    Py_ssize_t k_panels                 # NR-column panels of K/groups
    Py_ssize_t kc_max, n_channel_blocks
    const void *x
    const void *panels
    const void *zeros
    void *out


cdef bint _weight_grad_item(const void *job_ptr, Py_ssize_t item, char *scratch,
                            const numeric_t *dtype) noexcept nogil:
    """One (group, kernel tap, block of MR-channel panels): C[c, k] = sum over
    the virtual pixels v of A[c, v] * B[v, k], A the input's rows of the tap
    read in place from its phase image, B the packed panels of grad_output;
    the whole reduction (batch included) in this item, a chunk at a time."""
    cdef const WeightGradJob *job = <const WeightGradJob *>job_ptr
    cdef Py_ssize_t mr = job.mr, nr = job.nr
    cdef Py_ssize_t channel_block = item % job.n_channel_blocks
    cdef Py_ssize_t rest = item // job.n_channel_blocks
    cdef Py_ssize_t tap = rest % job.taps
    cdef Py_ssize_t g = rest // job.taps
    cdef Py_ssize_t m_panels = job.channels_padded // mr
    cdef Py_ssize_t mp_lo = channel_block * m_panels // job.n_channel_blocks
    cdef Py_ssize_t mp_hi = (channel_block + 1) * m_panels // job.n_channel_blocks
    cdef Py_ssize_t i = tap // job.kernel_w, j = tap - (tap // job.kernel_w) * job.kernel_w
    cdef Py_ssize_t ah = (i * job.dil_h) % job.phases_h, qh = (i * job.dil_h) // job.phases_h
    cdef Py_ssize_t aw = (j * job.dil_w) % job.phases_w, qw = (j * job.dil_w) // job.phases_w
    cdef const numeric_t *a_tap = (<const numeric_t *>job.x
                                   + ((g * job.phases_h + ah) * job.phases_w + aw)
                                   * job.channels_padded * job.row_len
                                   + qh * job.phase_w + qw)
    cdef const numeric_t *b_group = (<const numeric_t *>job.panels
                                     + g * job.k_panels * job.reduction * nr)
    cdef Py_ssize_t ldc = job.k_panels * nr
    cdef numeric_t *c_tap = (<numeric_t *>job.out
                             + (g * job.taps + tap) * job.channels_padded * ldc)
    cdef Py_ssize_t v0 = 0, kc, kp, mp
    while v0 < job.reduction:
        kc = min(job.kc_max, job.reduction - v0)
        for kp in range(job.k_panels):
            for mp in range(mp_lo, mp_hi):
                fc_tile(kc, a_tap + mp * mr * job.row_len + v0, job.row_len,
                        b_group + (kp * job.reduction + v0) * nr,
                        c_tap + mp * mr * ldc + kp * nr, ldc, v0 > 0,
                        <const numeric_t *>job.zeros)
        v0 = v0 + kc
    return False


def conv2d_weight_grad(const numeric_t[:, :, :, ::1] x, const numeric_t[:, :, :, ::1] panels,
                       numeric_t[:, :, :, ::1] out, Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                       Py_ssize_t stride_h, Py_ssize_t stride_w, Py_ssize_t dil_h,
                       Py_ssize_t dil_w, Py_ssize_t phase_w, int num_threads, blocking):
    """The weight gradient as one GEMM per group and kernel tap, reduced
    over the batch and the pixels inside each work item (no two items write
    the same output, so there is no race and the sum's order does not depend
    on the threads).

    Parameters
    ----------
    x : ndarray of shape (groups, sH * sW, C/groups rounded up to MR, row_len)
        The padded input cut into its stride phases: phase (a, b) of channel
        c holds ``input[n, c, h * sH + a, w * sW + b]`` at
        ``n * Hq * Wq + h * phase_w + w``, zero elsewhere, with slack after
        the last image for the taps' offsets.
    panels : ndarray of shape (groups, ceil(K/groups / NR), V, NR)
        grad_output at the same virtual pixels ``v`` (zero where no output
        pixel is), NR output channels per panel.
    out : ndarray of shape (groups, kH * kW, C/groups rounded up to MR, panels * NR)
        Written in full.
    kernel_h, kernel_w, stride_h, stride_w, dil_h, dil_w : int
        The convolution's.
    phase_w : int
        Width ``Wq`` of a phase image.
    num_threads : int
    blocking : mapping
        The plan's ``kc_max`` and ``channel_blocks``.
    """
    cdef WeightGradJob job
    cdef int mr = 0, nr = 0
    fc_tile_shape(<const numeric_t *>NULL, &mr, &nr)
    job.mr, job.nr = mr, nr
    job.groups, job.taps, job.kernel_w = x.shape[0], kernel_h * kernel_w, kernel_w
    job.dil_h, job.dil_w, job.phase_w = dil_h, dil_w, phase_w
    job.channels_padded, job.row_len = x.shape[2], x.shape[3]
    job.k_panels, job.reduction = panels.shape[1], panels.shape[2]
    job.phases_h, job.phases_w = stride_h, stride_w
    if (panels.shape[0] != job.groups or panels.shape[3] != nr or job.channels_padded % mr
            or x.shape[1] != stride_h * stride_w
            or out.shape[0] != job.groups or out.shape[1] != job.taps
            or out.shape[2] != job.channels_padded or out.shape[3] != job.k_panels * nr):
        raise ValueError("weight-gradient operands do not match this geometry or ISA level")
    _check_blocks(blocking, ("kc_max",), job.reduction)
    _check_blocks(blocking, ("channel_blocks",), job.channels_padded // mr)
    job.kc_max = blocking["kc_max"]
    job.n_channel_blocks = blocking["channel_blocks"]
    zeros = np.zeros(mr, np.asarray(out).dtype)
    cdef const numeric_t[::1] zeros_view = zeros
    job.x, job.panels, job.out = &x[0, 0, 0, 0], &panels[0, 0, 0, 0], &out[0, 0, 0, 0]
    job.zeros = &zeros_view[0]
    run_work_items(_weight_grad_item[numeric_t], &job,
                   job.groups * job.taps * job.n_channel_blocks, num_threads, 0)


# -- rearranging weights ------------------------------------------------------

# Elements copied as unsigned integers of their size: the rearrangement moves
# bits, so one specialisation per element size serves every dtype.
ctypedef fused element_t:
    uint8_t
    uint16_t
    uint32_t
    uint64_t

cdef enum:
    # Rows (and columns) of a block: 16 x 16 elements of up to 9 taps stay in
    # L1 on both sides while they are copied.
    GATHER_BLOCK = 16
    # Taps per element at most (a 16x16 kernel; larger ones go through NumPy).
    MAX_GATHER_TAPS = 256


cdef struct GatherJob:
    Py_ssize_t itemsize
    Py_ssize_t outer, rows, cols, taps      # the target's shape
    Py_ssize_t t_outer, t_rows, t_cols      # the target's strides (elements)
    Py_ssize_t s_outer, s_rows, s_cols      # the source's strides (elements)
    Py_ssize_t row_blocks
    bint taps_outer                         # the taps' loop outside the block's
    const Py_ssize_t *tap_offsets           # source offset of each tap
    const void *source
    void *target


cdef inline void _gather_block(const GatherJob *job, Py_ssize_t o, Py_ssize_t r0,
                               Py_ssize_t r1, const element_t *source,
                               element_t *target) noexcept nogil:
    """Rows r0..r1 of outer index ``o``, a block of columns at a time."""
    # The offsets in locals: stores to the target could alias them (8-byte
    # elements), which would reload them for every element.
    cdef Py_ssize_t offsets[MAX_GATHER_TAPS]
    cdef Py_ssize_t taps = job.taps, s_cols = job.s_cols, t_cols = job.t_cols
    cdef Py_ssize_t c0, c1, r, c, t
    cdef const element_t *s
    cdef element_t *d
    for t in range(taps):
        offsets[t] = job.tap_offsets[t]
    c0 = 0
    while c0 < job.cols:
        c1 = min(c0 + GATHER_BLOCK, job.cols)
        if job.taps_outer:
            # Taps far apart (the weight gradient's per-tap tiles, 256 KiB
            # apart at 256 channels) one at a time: all the taps of a column
            # at once would map 16 columns x 9 taps to the same few L1 sets
            # (power-of-two strides) and run 4x slower.
            for t in range(taps):
                for r in range(r0, r1):
                    s = source + o * job.s_outer + r * job.s_rows + c0 * s_cols + offsets[t]
                    d = target + o * job.t_outer + r * job.t_rows + c0 * t_cols + t
                    for c in range(c1 - c0):
                        d[0] = s[0]
                        s += s_cols
                        d += t_cols
        else:
            for r in range(r0, r1):
                s = source + o * job.s_outer + r * job.s_rows + c0 * s_cols
                d = target + o * job.t_outer + r * job.t_rows + c0 * t_cols
                for c in range(c1 - c0):
                    for t in range(taps):
                        d[t] = s[offsets[t]]
                    s += s_cols
                    d += t_cols
        c0 = c1


cdef bint _gather_item(const void *job_ptr, Py_ssize_t item, char *scratch,
                       const int64_t *dtype) noexcept nogil:
    """A block of GATHER_BLOCK target rows of one outer index."""
    cdef const GatherJob *job = <const GatherJob *>job_ptr
    cdef Py_ssize_t o = item // job.row_blocks
    cdef Py_ssize_t r0 = (item - o * job.row_blocks) * GATHER_BLOCK
    cdef Py_ssize_t r1 = min(r0 + GATHER_BLOCK, job.rows)
    if job.itemsize == 1:
        _gather_block(job, o, r0, r1, <const uint8_t *>job.source, <uint8_t *>job.target)
    elif job.itemsize == 2:
        _gather_block(job, o, r0, r1, <const uint16_t *>job.source, <uint16_t *>job.target)
    elif job.itemsize == 4:
        _gather_block(job, o, r0, r1, <const uint32_t *>job.source, <uint32_t *>job.target)
    else:
        _gather_block(job, o, r0, r1, <const uint64_t *>job.source, <uint64_t *>job.target)
    return False


def gather_taps(source, target, source_strides, tap_offsets, int num_threads):
    """``target[o, r, c, t] = source.flat[o*s_o + r*s_r + c*s_c + tap_offsets[t]]``:
    a transposed copy whose innermost axis (the kernel taps) is gathered, in
    cache-sized blocks of rows and columns, rows shared out to the threads.
    Rearranges weights (a transposed convolution's sub-kernels, transposed
    and flipped, stacked per phase; the weight gradient's per-tap tiles into
    (K, C, kH, kW)) several times faster than NumPy's strided copy.

    Parameters
    ----------
    source : ndarray
        C-contiguous; read as its flat buffer.
    target : ndarray of 4 dimensions (outer, rows, cols, taps)
        Of ``source``'s itemsize (1, 2, 4 or 8 bytes), its last axis
        contiguous; any strides on the others.
    source_strides : tuple of 3 ints
        Element strides ``(s_o, s_r, s_c)`` in ``source``.
    tap_offsets : ndarray of intp, one per tap
        Element offsets of the taps in ``source``; with the strides, every
        element read must lie in ``source``.
    num_threads : int
    """
    cdef GatherJob job
    cdef Py_ssize_t itemsize = source.dtype.itemsize
    if (itemsize not in (1, 2, 4, 8) or target.dtype.itemsize != itemsize
            or not source.flags.c_contiguous or target.ndim != 4
            or target.shape[3] != len(tap_offsets) or len(tap_offsets) > MAX_GATHER_TAPS):
        raise ValueError("gather_taps: unsupported operands")
    unsigned = np.dtype(f"u{itemsize}")
    flat = source.reshape(-1).view(unsigned)
    out = target.view(unsigned)
    offsets_array = np.ascontiguousarray(tap_offsets, np.intp)
    cdef const Py_ssize_t[::1] offsets = offsets_array
    if out.shape[3] > 1 and out.strides[3] != itemsize:
        raise ValueError("gather_taps: the target's taps must be contiguous")
    job.itemsize = itemsize
    job.outer, job.rows, job.cols, job.taps = out.shape
    job.t_outer, job.t_rows, job.t_cols = (out.strides[0] // itemsize,
                                           out.strides[1] // itemsize,
                                           out.strides[2] // itemsize)
    job.s_outer, job.s_rows, job.s_cols = source_strides
    if out.size == 0:
        return
    # Every read in bounds: the largest and smallest offset reached.
    cdef Py_ssize_t top = 0, low = 0, extent, stride
    for extent, stride in zip(out.shape[:3], source_strides):
        if stride > 0:
            top += (extent - 1) * stride
        else:
            low += (extent - 1) * stride
    if low + offsets_array.min() < 0 or top + offsets_array.max() >= flat.shape[0]:
        raise ValueError("gather_taps: the source strides reach outside the source")
    job.row_blocks = ceil_div(job.rows, GATHER_BLOCK)
    # Taps within a few cache lines of each other are read together.
    job.taps_outer = offsets_array.max() - offsets_array.min() > 64
    job.tap_offsets = &offsets[0]
    job.source = <const void *><size_t>flat.ctypes.data
    job.target = <void *><size_t>out.ctypes.data
    run_work_items(_gather_item, &job, job.outer * job.row_blocks, num_threads, 0)
