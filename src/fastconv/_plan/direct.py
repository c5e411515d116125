"""Plans of the direct kernel's paths (private; see :mod:`fastconv._plan`).

Each ``_plan_<path>`` returns the blocking that ``_direct.conv2d_<path>``
executes, the threads and the per-thread and shared scratch, computed as the
drivers allocate it (``tests/test_plan.py`` holds them to
``_direct.scratch_peak_bytes``).

Work items are cut so that static scheduling balances: as many items as the
threads, or a multiple of them when there are few. Results do not depend on
the blocking: every output element is produced by one work item with the same
reduction order.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

from .. import _direct
from . import Geometry, Plan, ceil_div, thread_scratch

# Reduction taps per packed block: a B panel (taps x NR) stays in L1 while it
# meets every weight panel.
KC_MAX = 256
# Per-core L2 of the machines tuned on (2 MB); see _weights_outer.
L2_BYTES = 2 * 1024 * 1024
# Output pixels per work item of the packed path: the packed block (taps x
# pixels) fits in L2.
PIXELS_PER_BLOCK = 256
# Packed columns of one small image that the threads share (all taps at once
# when they fit): one packing phase and one barrier, and the accumulators stay
# in registers for all the taps.
SHARED_COLUMNS_BYTES = 4 * 1024 * 1024
# Input rows (all channels of a group, padded, or of a reduction chunk with
# the chunks' sums) one row-panel work item holds; the plane kernel's padded
# rows too. A whole 1080p plane would take 8 MB per
# thread and fall out of the caches (issue 12: (1,64,540,960) 176.8 -> 143.4
# ms at 2 threads when rows were cut to this budget).
ROWS_BYTES = 512 * 1024
# Reduction taps per chunk of a strided layer's row panels (below twice as
# many taps, one chunk): the chunk's B rows of a panel stay in L1 while every
# weight panel passes. 12-32 channels of a 3x3 layer were within 3% of each
# other ((1,128,56,56) and (1,256,28,28) stride 2, 1 thread), 8 slower.
CHUNK_TAPS = 144
# A chunked row block's copied rows (one chunk's channels) and its sums (a
# tile per B panel and weight panel), in L2 with a chunk of weights: a
# little more than ROWS_BYTES keeps a 28x28 output of 128 channels in one
# block (633 KiB; 1.28 ms in one block, 1.37 in two, 1 thread).
CHUNKED_ROWS_BYTES = 768 * 1024
# Chunks only pay when a chunk of weights meets more B panels than this
# (the image in one block): (1,512,14,14)->512 stride 2, 2 panels, ran
# 1.61 ms in one chunk, 1.75-1.88 in chunks of 16-64 channels.
CHUNK_MIN_PANELS = 4
# Groups with at most this many input channels (depthwise and the like) skip
# the GEMM: there is too little reduction to be worth packing.
PLANE_KERNEL_MAX_GROUP_IN = 4
# Largest per-thread scratch the plane and row-panel paths may allocate; a
# layer that would need more (huge dilations that span mostly padding) takes
# the packed path, whose scratch is bounded by its block sizes.
SCRATCH_LIMIT_BYTES = 256 * 1024 * 1024
# Channel lanes: input channels per reduction chunk, whose weight rows (at
# most this many bytes) stay in L2 while every pixel tile of the work item
# passes over them.
CHANNEL_LANES_CHUNK_BYTES = 256 * 1024


def _balance(other: int, blocks: int, limit: int, threads: int) -> int:
    """Smallest ``b >= blocks`` (and <= ``limit``) such that ``other * b`` work
    items are at least ``threads`` and a multiple of it; ``limit`` if none."""
    b = blocks
    while b < limit and (other * b < threads or (other * b) % threads):
        b += 1
    return b


def _row_blocks_in_budget(one_row_bytes: int, two_rows_bytes: int, out_h: int) -> int:
    """Blocks of output rows whose scratch fits ROWS_BYTES, from the scratch
    of one and of two output rows (a first row over the budget leaves one
    row per block)."""
    per_row = max(two_rows_bytes - one_row_bytes, 1)
    rows_per_block = max(1, min(out_h, (ROWS_BYTES - one_row_bytes) // per_row + 1))
    return ceil_div(out_h, rows_per_block)


def plan(geo: Geometry, dtype: np.dtype[Any], threads: int, prepared: bool,
         channel_lanes: bool) -> Plan:
    """The direct kernel's plan; ``channel_lanes`` from ``uses_channel_lanes``."""
    elem = dtype.itemsize
    if channel_lanes:
        return _plan_channel_lanes(geo, dtype, threads, prepared)
    mr, nr = _direct.tile_shape(dtype.name)
    if (geo.groups > 1 and geo.group_in <= PLANE_KERNEL_MAX_GROUP_IN
            and _plane_scratch(geo, 1) * elem <= SCRATCH_LIMIT_BYTES):
        return _plan_planes(geo, elem, threads)
    # The GEMM paths read the weights in place, but for each group's last
    # panel of fewer than MR output channels (copied, zero-padded, with the
    # bias padded alike).
    group_out_padded = ceil_div(geo.group_out, mr) * mr
    tails = 0 if group_out_padded == geo.group_out else geo.groups * mr * geo.taps
    weights = 0 if prepared else (tails + geo.groups * group_out_padded) * elem
    packed_panels = ceil_div(geo.out_h * geo.out_w, nr)
    if (geo.kernel_h * geo.kernel_w > 1
            and (packed_panels > 4 or _dense_image_panels(geo, nr) <= packed_panels)
            and _rows_scratch_one_row(geo, nr) * elem <= SCRATCH_LIMIT_BYTES):
        # Row panels skip the per-tap copies of im2col (one copy of the input
        # instead) and keep a tile's accumulators in registers for the whole
        # reduction. On a small image packed panels can waste less of the
        # last panel than rows do; where they do not, rows win, 1 thread:
        # (1,512,7,7) -> 512 3x3 147 GFLOP/s in rows against 118 packed (two
        # panels either way); (1,512,14,14) -> 512 3x3 stride 2 1.61 ms
        # against 2.1.
        return _plan_rows(geo, elem, mr, nr, _direct.wide_tile_width(dtype.name), threads,
                          weights)
    return _plan_packed(geo, elem, mr, nr, threads, weights)


def _dense_image_panels(geo: Geometry, nr: int) -> int:
    """NR-pixel panels of the whole image in one block of dense rows (a
    row phase holds its outputs and the kernel's reach over the stride);
    Python ints, as the shapes may be too large for NumPy's."""
    phase_len = geo.out_w + (geo.kernel_w - 1) * geo.dil_w // geo.stride_w
    return ceil_div((geo.out_h - 1) * phase_len + geo.out_w, nr)


def _result(path: str, threads: int, per_thread: int, shared: int, weights: int,
            blocking: Dict[str, int]) -> Plan:
    return Plan("direct", path, None, threads, threads * per_thread + shared + weights,
                blocking)


# -- planes ----------------------------------------------------------------------

def _plane_scratch(geo: Geometry, rows: int) -> int:
    """Elements of the plane kernel's padded rows for ``rows`` output rows
    (fc_plane_scratch in planes.hpp)."""
    span_w = (geo.out_w - 1) * geo.stride_w + (geo.kernel_w - 1) * geo.dil_w + 1
    span_h = (rows - 1) * geo.stride_h + (geo.kernel_h - 1) * geo.dil_h + 1
    return geo.group_in * span_h * (span_w + _direct.PLANE_ROW_SLACK)


def _plan_planes(geo: Geometry, elem: int, threads: int) -> Plan:
    """Work items (image, output channel, block of rows); rows are cut when
    there are too few planes for the threads, and so that a block's padded
    rows fit ROWS_BYTES."""
    row_blocks = _row_blocks_in_budget(_plane_scratch(geo, 1) * elem,
                                       _plane_scratch(geo, 2) * elem, geo.out_h)
    planes = geo.batch * geo.out_channels
    if planes < 4 * threads:
        row_blocks = _balance(planes, row_blocks, geo.out_h, threads)
    threads = min(threads, planes * row_blocks)
    per_thread = thread_scratch(_plane_scratch(geo, ceil_div(geo.out_h, row_blocks)) * elem)
    return _result("planes", threads, per_thread, 0, 0, {"row_blocks": row_blocks})


# -- rows ------------------------------------------------------------------------

def _rows_scratch_one_row(geo: Geometry, nr: int) -> int:
    """Row-panel scratch elements for one output row at the widest layout."""
    padded_w = (geo.out_w + nr) * geo.stride_w
    reach = (geo.kernel_w - 1) * geo.dil_w + 1
    rows = (geo.kernel_h - 1) * geo.dil_h + 1
    return geo.group_in * rows * (padded_w + reach)


def _per_kernel_row(geo: Geometry, out_rows: Any) -> Any:
    """Whether fc_rows_plan (rows.hpp) takes the per-kernel-row layout for
    ``out_rows`` output rows (an int, or an array of them): strided, and
    the polyphase layout would copy more or hold row phases nothing reads."""
    sh = geo.stride_h
    if sh == 1 and geo.stride_w == 1:
        return np.zeros_like(out_rows, dtype=bool) if np.ndim(out_rows) else False
    phases = {(i * geo.dil_h) % sh for i in range(geo.kernel_h)}
    polyphase = sh * (out_rows + (geo.kernel_h - 1) * geo.dil_h // sh)
    return (len(phases) < sh) | (geo.kernel_h * out_rows < polyphase)


def rows_layout(geo: Geometry, out_rows: Any, padded_w: int) -> Tuple[int, Any]:
    """``(phase_len, channel_stride)`` of fc_rows_plan (rows.hpp): the length
    of a copied row phase and the elements one input channel takes, for
    ``out_rows`` output rows (an int, or an array of them)."""
    phase_len = padded_w + (geo.kernel_w - 1) * geo.dil_w // geo.stride_w
    per_kernel_row = geo.kernel_h * geo.stride_w * out_rows * phase_len
    polyphase = (geo.stride_h * geo.stride_w * phase_len
                 * (out_rows + (geo.kernel_h - 1) * geo.dil_h // geo.stride_h))
    stride = np.where(_per_kernel_row(geo, out_rows), per_kernel_row, polyphase)
    return phase_len, (int(stride) if np.ndim(stride) == 0 else stride)


def _plan_rows(geo: Geometry, elem: int, mr: int, nr: int, wide_nr: int, threads: int,
               weights: int) -> Plan:
    """Work items (image, group, row block, channel block); every tile takes
    the whole reduction in one chunk, its B rows read in place, but for
    strided layers with many taps and panels, which run in reduction chunks
    (``chunk_channels`` input channels; _chunked_rows in _direct_gemm.pyx).

    Rows run dense (the block's rows one run of virtual pixels, panels across
    row ends) unless whole panels per row compute no more columns: dense was
    7-8% faster on 56 and 112 wide stride-1 outputs; whole panels, which never
    go through the edge tile, win the ties.
    """
    dense, padded_w = _row_shape(geo, nr)
    images_groups = geo.batch * geo.groups
    n_mpanels = ceil_div(geo.group_out, mr)
    strided = geo.stride_h != 1 or geo.stride_w != 1
    chunk = geo.group_in
    if (strided and geo.taps > 2 * CHUNK_TAPS
            and _block_panels(geo, nr, geo.out_h, dense, padded_w) > CHUNK_MIN_PANELS):
        chunk = ceil_div(geo.group_in, ceil_div(geo.taps, CHUNK_TAPS))
    chunked = chunk < geo.group_in
    # The chunks take the wide tile (7% faster stand-alone) unless its panels
    # would hold over 10% more lanes for the whole image: 816 against 832
    # on a 28-wide output (1.28 against 1.39 ms, 128 channels, 1 thread),
    # 240 against 224 on a 14-wide one (1.45 against 1.48 ms, 256 channels;
    # the driver runs a last panel of at most NR pixels on the MR x NR tile).
    wide = 0
    if chunked and wide_nr:
        wide_dense, wide_padded_w = _row_shape(geo, wide_nr)
        if (_block_panels(geo, wide_nr, geo.out_h, wide_dense, wide_padded_w) * wide_nr
                <= 1.1 * _block_panels(geo, nr, geo.out_h, dense, padded_w) * nr):
            wide, nr, dense, padded_w = 1, wide_nr, wide_dense, wide_padded_w

    def scratch(rows: Any, channel_blocks: int) -> Tuple[Any, Any]:
        """Bytes of a block's copied rows (without the slack) and of its
        sums (chunked)."""
        copied = chunk * rows_layout(geo, rows, padded_w)[1] * elem
        sums = (ceil_div(n_mpanels, channel_blocks) * mr * nr * elem
                * _block_panels(geo, nr, rows, dense, padded_w)) if chunked else 0 * rows
        return copied, sums

    rows = np.arange(1, geo.out_h + 1)
    copied, sums = scratch(rows, 1)
    fits = copied + sums <= (CHUNKED_ROWS_BYTES if chunked else ROWS_BYTES)
    rows_per_block = int(rows[fits].max()) if fits.any() else 1
    row_blocks = ceil_div(geo.out_h, rows_per_block)
    channel_blocks = 1
    items = images_groups * row_blocks
    if items < threads or (items < 8 * threads and items % threads):
        row_blocks, channel_blocks = _split_rows(geo, mr, nr, images_groups, row_blocks,
                                                 n_mpanels, threads, dense, padded_w)
    threads = min(threads, images_groups * row_blocks * channel_blocks)
    copied, sums = scratch(ceil_div(geo.out_h, row_blocks), channel_blocks)
    # An edge tile, the sums, then the rows of a chunk of the group's
    # channels plus a panel of slack; the calling thread also holds the
    # taps' offsets.
    per_thread = thread_scratch(mr * nr * elem, int(sums), int(copied) + nr * elem)
    offsets = geo.taps * np.dtype(np.intp).itemsize
    return _result("rows", threads, per_thread, offsets, weights,
                   {"row_blocks": row_blocks, "channel_blocks": channel_blocks,
                    "dense": int(dense), "chunk_channels": chunk, "wide": wide})


def _row_shape(geo: Geometry, nr: int) -> Tuple[bool, int]:
    """``(dense, padded_w)`` of row panels NR wide: dense unless whole
    panels per row compute no more columns (see _plan_rows)."""
    padded_w = ceil_div(geo.out_w, nr) * nr
    dense = geo.out_w + (geo.kernel_w - 1) * geo.dil_w // geo.stride_w < padded_w
    return dense, (geo.out_w if dense else padded_w)


def _block_panels(geo: Geometry, nr: int, rows: Any, dense: bool, padded_w: int) -> Any:
    """B panels of a block of ``rows`` output rows: dense panels run across
    row ends (``phase_len`` apart); whole-panel rows hold padded_w / NR each."""
    if dense:
        phase_len = rows_layout(geo, 1, padded_w)[0]
        return -(-((rows - 1) * phase_len + geo.out_w) // nr)
    return rows * (padded_w // nr)


def _split_rows(geo: Geometry, mr: int, nr: int, images_groups: int, min_row_blocks: int,
                n_mpanels: int, threads: int, dense: bool,
                padded_w: int) -> Tuple[int, int]:
    """Row and output-channel blocks for too few (or unbalanced) work items,
    by a cost model: a thread's time ~ ceil(items / threads) x the largest
    item, an item ~ its panels x weight panels x taps (vector FMAs) plus its
    row copy. More row blocks leave more of each dense panel empty (one-row
    blocks of a 14x14 output fill 14 of 32 lanes); more channel blocks copy
    the rows again. (On a 16-core Xeon, splitting rows first ran 2x slower
    at 16 threads on 14x14 outputs, capping the row blocks 1.4-1.5x slower
    at 8.)

    Channel blocks vary slowest: at equal cost the fewest win (at 8 threads
    a split of a 14x14 output into 2 channel blocks ran 1.3-1.6x slower than
    8 row blocks, which the model costs the same); then items filling whole
    rounds of the threads (7 items of two rows on 8 threads leave one idle).
    """
    channel_blocks = np.arange(1, n_mpanels + 1)
    largest = -(-n_mpanels // channel_blocks)
    # A channel block count with the same largest block as the one before
    # only adds items.
    keep = np.ones(n_mpanels, bool)
    keep[1:] = largest[1:] != largest[:-1]
    channel_blocks, largest = channel_blocks[keep], largest[keep]
    row_blocks = np.arange(min_row_blocks, geo.out_h + 1)
    rows = -(-geo.out_h // row_blocks)
    phase_len, channel_stride = rows_layout(geo, rows, padded_w)
    if dense:
        panels = -(-((rows - 1) * phase_len + geo.out_w) // nr)
    else:
        panels = rows * (padded_w // nr)
    items = images_groups * row_blocks[None, :] * channel_blocks[:, None]
    # A tile is taps x MR x NR / 16 vector FMAs; a copied element about 1/8
    # of one, or 1.5 for the strided layouts (element-wise gathers; with 1.0
    # a (1,128,56,56) 3x3 stride-2 layer split its channels at 2 threads,
    # 0.713 ms, rather than its rows, 0.692). The same operations in the
    # same order as the C model this replaced, so ties fall alike.
    copy_cost = 1.5 if geo.stride_h != 1 or geo.stride_w != 1 else 0.125
    compute = (panels.astype(float)[None, :] * largest[:, None] * geo.taps
               * (mr * nr // 16))
    copy = float(geo.group_in) * channel_stride * copy_cost
    cost = (-(-items // threads)).astype(float) * (compute + copy[None, :])
    best = cost == cost.min()
    full = best & (items % threads == 0)
    flat = int(np.argmax(full if full.any() else best))
    cb_index, rb_index = divmod(flat, len(row_blocks))
    return int(row_blocks[rb_index]), int(channel_blocks[cb_index])


# -- packed and shared columns ---------------------------------------------------

def _plan_packed(geo: Geometry, elem: int, mr: int, nr: int, threads: int,
                 weights: int) -> Plan:
    """Work items (image, group, pixel block, channel block). Which axis to
    cut follows the data each cut repeats: another pixel block re-reads the
    weights, another channel block re-packs the input, so the cheaper of the
    two is split first."""
    kc_max = ceil_div(geo.taps, ceil_div(geo.taps, KC_MAX))  # equal chunks
    n_panels = ceil_div(geo.out_h * geo.out_w, nr)
    n_mpanels = ceil_div(geo.group_out, mr)
    images_groups = geo.batch * geo.groups
    pixel_blocks = ceil_div(n_panels, max(1, PIXELS_PER_BLOCK // nr))
    channel_blocks = 1
    items = images_groups * pixel_blocks
    weights_dominate = geo.group_out * geo.taps >= geo.taps * n_panels * nr
    # Threads share one small image's packed columns, unless packing it is a
    # contiguous copy (pointwise, stride 1): then each thread packing the
    # block for its own channels beats the shared phase and its barrier (2
    # threads: (1,1024,14,14)->256 0.363 -> 0.309 ms, (1,1024,14,14)->512
    # 0.654 -> 0.582, 7x7 images alike).
    if (images_groups == 1 and items < threads and weights_dominate
            and not _pointwise_contiguous(geo)):
        return _plan_shared_columns(geo, elem, mr, nr, kc_max, n_panels, n_mpanels,
                                    threads, weights)
    if items < threads or (items < 8 * threads and items % threads):
        if weights_dominate:
            channel_blocks = _balance(images_groups * pixel_blocks, 1, n_mpanels, threads)
            pixel_blocks = _balance(images_groups * channel_blocks, pixel_blocks,
                                    n_panels, threads)
        else:
            pixel_blocks = _balance(images_groups, pixel_blocks, n_panels, threads)
            channel_blocks = _balance(images_groups * pixel_blocks, 1, n_mpanels, threads)
    threads = min(threads, images_groups * pixel_blocks * channel_blocks)
    per_thread = thread_scratch(mr * nr * elem,
                                kc_max * ceil_div(n_panels, pixel_blocks) * nr * elem)
    return _result("packed", threads, per_thread, 0, weights,
                   {"kc_max": kc_max, "pixel_blocks": pixel_blocks,
                    "channel_blocks": channel_blocks,
                    "weights_outer": int(_weights_outer(geo, elem, kc_max))})


def _pointwise_contiguous(geo: Geometry) -> bool:
    """A 1x1, stride-1, unpadded layer: each channel's packed block is one
    contiguous run of the input (fc_is_pointwise_contiguous in pack.hpp)."""
    return ((geo.kernel_h, geo.kernel_w, geo.stride_h, geo.stride_w) == (1, 1, 1, 1)
            and geo.pad_top == geo.pad_left == 0
            and (geo.out_h, geo.out_w) == (geo.height, geo.width))


def _weights_outer(geo: Geometry, elem: int, kc_max: int) -> bool:
    """Whether a packed work item runs its weight panels in the outer loop
    (each meets every pixel panel) rather than its pixel panels (each meets
    every weight panel). Pixel panels outside keep a panel in L1 but write
    each tile to other output rows: with several reduction chunks (tiles
    read back and write their outputs) or short ones, those stores across
    all K rows cost more than streaming the packed pixels from L2 again;
    so do weights that overflow L2. 1 thread, 1x1 layers, at 46ebf4b:
    (1,64,56,56)->256 147-155 -> 172 GFLOP/s, (1,1024,14,14)->512 157 ->
    171, (1,512,7,7)->2048 128 -> 137; one short chunk of few weights
    ((1,256,14,14)->1024) ran 185 against 176 with pixel panels outside."""
    chunks = ceil_div(geo.taps, kc_max)
    return (chunks > 1 or kc_max < 128
            or geo.group_out * kc_max * elem > L2_BYTES)


def _plan_shared_columns(geo: Geometry, elem: int, mr: int, nr: int, kc_max: int,
                         n_panels: int, n_mpanels: int, threads: int, weights: int) -> Plan:
    """One small image: per reduction chunk, all threads pack the columns of
    every pixel, then share out the (output-channel panel, pixel panel)
    tiles; no thread packs what another did."""
    chunk_taps = kc_max
    if geo.taps * n_panels * nr * elem <= SHARED_COLUMNS_BYTES:
        chunk_taps = geo.taps
    threads = min(threads, n_mpanels * n_panels)
    shared = chunk_taps * n_panels * nr * elem
    return _result("shared_columns", threads, thread_scratch(mr * nr * elem), shared, weights,
                   {"chunk_taps": chunk_taps})


# -- channel lanes ---------------------------------------------------------------

def _plan_channel_lanes(geo: Geometry, dtype: np.dtype[Any], threads: int,
                        prepared: bool) -> Plan:
    """Work items (image, block of KB output channels, group of pixel tiles);
    more pixel groups only when there are too few items for the threads."""
    elem = dtype.itemsize
    kb = _direct.lanes_width(dtype)
    tile_pixels = _direct.CHANNEL_LANES_TILE_PIXELS
    kernel_taps = geo.kernel_h * geo.kernel_w
    n_tiles = ceil_div(geo.out_h * geo.out_w, tile_pixels)
    n_kblocks = ceil_div(geo.out_channels, kb)
    base = geo.batch * n_kblocks
    pixel_groups = 1
    while ((base * pixel_groups) % threads and pixel_groups < n_tiles
           and base * pixel_groups < 4 * threads):
        pixel_groups += 1
    threads = min(threads, base * pixel_groups)
    per_thread = thread_scratch(ceil_div(n_tiles, pixel_groups) * tile_pixels * kb * elem)
    # The padded copy of the input it reads, and the offsets of the taps and
    # of the pixels.
    padded_input = (geo.batch * geo.channels * (geo.height + geo.pad_top + geo.pad_bottom)
                    * (geo.width + geo.pad_left + geo.pad_right) * elem)
    offsets = (geo.channels * kernel_taps + n_tiles * tile_pixels) * np.dtype(np.intp).itemsize
    weights = 0 if prepared else n_kblocks * kb * geo.channels * kernel_taps * elem
    chunk = max(1, CHANNEL_LANES_CHUNK_BYTES // (kernel_taps * kb * elem))
    return _result("channel_lanes", threads, per_thread, padded_input + offsets, weights,
                   {"pixel_groups": pixel_groups, "channel_chunk": chunk})
