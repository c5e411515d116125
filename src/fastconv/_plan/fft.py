"""Plans of the FFT convolution (private; see :mod:`fastconv._plan`).

Overlap-save over tiles: the output is cut into tiles of ``tile_h x tile_w``
pixels; each reads an ``fft_h x fft_w`` window of the padded input
(``fft = tile + dilated kernel - 1``), whose real FFT is multiplied by the
conjugated spectra of the weights, summed over the input channels (the
spectral products, ``fastconv._spectral``) and transformed back; the first
``tile_h x tile_w`` values of each window are the correlation. A chunk of
``images x band_rows`` rows of tiles is transformed at a time, so the memory
is bounded by ``CHUNK_BYTES`` however large the image.

The FFT sizes are the 2-3-5-smooth sizes that minimise a cost model whose
constants were measured here (``tools/tuning/fft_costs.py``): the transforms
cost ``FFT_NS[backend]`` per point and log2 of the window size, the products
``PRODUCT_NS`` per real multiply-add.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Tuple

import numpy as np

from .. import _direct, _fft, _winograd
from . import Geometry, Plan, ceil_div, direct, thread_scratch

# The cost model that chooses the windows (and, with the direct kernel's, the
# algorithm of "auto"): single-thread nanoseconds, measured here with
# tools/tuning/fft_costs.py on float32.
# A batched real FFT, forward or inverse, per point and log2(window points).
# NumPy's does not vectorise across transforms: its forward costs ~5x SciPy's.
FFT_NS = {"scipy": 0.24, "numpy": 0.6}
# The spectral products per multiply-add of the GEMM tile, its padding
# included (rows to MR, columns to NR), plus a gather/scatter share that
# shrinks as the reduction (2 C/groups) grows: 0.045 at 2 C/groups = 8,
# 0.022 at 32, 0.014 from 128 on.
PRODUCT_NS = 0.014
PRODUCT_GATHER_NS = 0.25
# A complex product of one input spectrum by a weight spectrum (one input
# channel per group: NumPy broadcasting).
BROADCAST_NS = 1.5
# Per element of the padded input copy and of the output (crop, bias).
COPY_NS = 0.8
# Per chunk: Python and FFT set-up.
CHUNK_NS = 40_000
# A one-off call's weight spectra: FFTs per point and log2, and the
# transpose into the packed panels per element (tens of MB with many
# channels: (64, 64) channels and 30 x 30 windows make 31 MB).
WEIGHT_FFT_NS = 0.5
PACK_NS = 2.0
# The direct kernel per multiply-add at one thread, by instruction-set level,
# when its GEMM tile's MR rows are all output channels (the time grows as
# MR / (K/groups) below MR of them); and the plane kernel's (groups of at
# most direct.PLANE_KERNEL_MAX_GROUP_IN input channels), at every level.
# Measured here, float32: (1,16,128,128) 11x11 -> 16, (1,3,224,224) 11x11
# -> 64, (1,64,56,56) 5x5 -> 64, (1,1,512,512) 15x15 -> 1 (0.087 ns at
# AVX-512: MR = 8 times 0.011), (1,8,256,256) 11x11 groups 8 (0.33-0.43).
DIRECT_NS = {"avx512": 0.0115, "avx2": 0.02, "baseline": 0.05}
DIRECT_PLANES_NS = 0.35
# Threads share the chunks at this efficiency: with two, the FFT path ran
# 1.43-1.85x as fast as with one on the large-kernel layers (15f94be, SciPy
# FFTs and the products share the cores' caches and memory), the direct
# kernel ~1.9x.
THREAD_EFFICIENCY = 0.8
# "auto" picks the FFT when the model expects it this many times faster, and
# never for kernels of fewer taps.
FFT_MARGIN = 1.1
MIN_TAPS = 25
# Largest FFT window side considered, and the memory of one chunk of tiles
# (input and output spectra, output windows): the FFTs over the first axes
# slow down ~2.5x once their arrays leave L2 (2 MiB per core here).
MAX_FFT = 512
CHUNK_BYTES = 4 << 20
# Output-tile panels per work item of the spectral products: their B panels
# (2 C/groups x NR each) and results stay in L2 while every weight panel
# meets them.
PANELS = 4


def _smooth_sizes(limit: int) -> List[int]:
    sizes = []
    for two in range(0, 10):
        for three in range(0, 7):
            for five in range(0, 5):
                size = 2**two * 3**three * 5**five
                if size <= limit and size % 2 == 0:
                    sizes.append(size)
    return sorted(sizes)


SIZES = _smooth_sizes(MAX_FFT)


def _axis_sizes(span: int, out: int) -> List[int]:
    """Window sides worth trying along an axis: smooth sizes whose tiles are
    at least the kernel's span (smaller ones repeat most of the input in
    every window), up to the first that holds the whole output."""
    if span == 1:
        return [1]  # no transform along an axis the kernel does not span
    whole = span - 1 + out
    sizes = [s for s in SIZES if s >= min(2 * span - 1, whole)]
    fitting = [s for s in sizes if s < whole]
    bigger = [s for s in sizes if s >= whole][:1]
    return fitting + bigger or [SIZES[-1]]


def spans(geo: Geometry) -> Tuple[int, int]:
    """The dilated kernel's height and width."""
    return geo.dil_h * (geo.kernel_h - 1) + 1, geo.dil_w * (geo.kernel_w - 1) + 1


def _blocking(geo: Geometry, windows: Tuple[int, int], nr: int, elem: int) -> Dict[str, int]:
    """Windows, tiles and chunks of the FFT path: several images, a band of
    rows of tiles, or (a row of tiles too large) a band of its tiles."""
    fft_h, fft_w = windows
    span_h, span_w = spans(geo)
    b = {"fft_h": fft_h, "fft_w": fft_w, "tile_h": fft_h - span_h + 1,
         "tile_w": fft_w - span_w + 1}
    b["tiles_h"] = ceil_div(geo.out_h, b["tile_h"])
    b["tiles_w"] = ceil_div(geo.out_w, b["tile_w"])
    tile_bytes = _tile_bytes(geo, windows, elem)
    row_bytes = tile_bytes * b["tiles_w"]  # a row of tiles of an image
    image_bytes = row_bytes * b["tiles_h"]
    b["band_cols"] = b["tiles_w"]
    if image_bytes <= CHUNK_BYTES:
        b["band_rows"] = b["tiles_h"]
        b["images"] = max(1, min(geo.batch, CHUNK_BYTES // image_bytes))
    else:
        b["band_rows"] = max(1, CHUNK_BYTES // row_bytes)
        b["images"] = 1
        if row_bytes > CHUNK_BYTES:  # a 4K image's row of tiles
            b["band_cols"] = max(1, CHUNK_BYTES // tile_bytes)
    _, columns = _chunks(geo, b)
    b["panels"] = min(PANELS, ceil_div(columns, nr))
    return b


def _split_for_threads(geo: Geometry, b: Dict[str, int], threads: int) -> None:
    """Smaller chunks, if need be, so that each thread runs whole ones: at
    least two per thread where the images or rows of tiles allow (the
    threads take the next chunk as they finish one, so the last round's
    imbalance is at most one chunk in two). Whole chunks per thread scale
    where splitting a chunk's steps did not: SciPy's FFTs on arrays of a
    millisecond or two gained nothing from a second worker thread."""
    if threads == 1:
        return
    want = 2 * threads
    if b["images"] > 1 and ceil_div(geo.batch, b["images"]) < want:
        b["images"] = max(1, geo.batch // want)
    for rows in range(b["band_rows"], 0, -1):
        b["band_rows"] = rows
        if _chunks(geo, b)[0] >= want:
            return
    while b["band_cols"] > 1 and _chunks(geo, b)[0] < want:
        b["band_cols"] = ceil_div(b["band_cols"], 2)


def _tile_bytes(geo: Geometry, windows: Tuple[int, int], elem: int) -> int:
    """One tile's share of a chunk: its input and output spectra (complex)
    and its output windows (real); NumPy's FFTs hold one more complex array
    of each side's spectra while they run (an axis at a time, and its
    result made contiguous)."""
    fft_h, fft_w = windows
    frequencies = fft_h * (fft_w // 2 + 1)
    spectra = frequencies * 2 * elem * (geo.channels + geo.out_channels)
    if _fft.backend() == "numpy":
        spectra *= 2
    return spectra + fft_h * fft_w * elem * geo.out_channels


def _chunks(geo: Geometry, b: Dict[str, int]) -> Tuple[int, int]:
    """(number of chunks, columns (tiles) of a full chunk)."""
    n = (ceil_div(geo.batch, b["images"]) * ceil_div(b["tiles_h"], b["band_rows"])
         * ceil_div(b["tiles_w"], b["band_cols"]))
    return n, b["images"] * b["band_rows"] * b["band_cols"]


def cost_ns(geo: Geometry, windows: Tuple[int, int], backend: str, prepared: bool,
            mr: int, nr: int, threads: int = 1) -> float:
    """Estimated time of the FFT path with these windows on ``threads``
    threads: the chunks (transforms, products, output) shared out whole
    among them, a one-off call's weight transform split, the input's padded
    copy on one."""
    b = _blocking(geo, windows, nr, 4)
    _split_for_threads(geo, b, threads)
    fft_h, fft_w = windows
    points, frequencies = fft_h * fft_w, fft_h * (fft_w // 2 + 1)
    log = math.log2(points)
    tiles = geo.batch * b["tiles_h"] * b["tiles_w"]
    n_chunks, columns = _chunks(geo, b)
    transforms = FFT_NS[backend] * tiles * points * log * (geo.channels + geo.out_channels)
    rows = ceil_div(2 * geo.group_out, mr) * mr
    if geo.group_in == 1:
        products = BROADCAST_NS * tiles * frequencies * geo.out_channels
    else:
        # Each chunk's last panel is NR / 2 wide when that holds it.
        half = nr // 2
        padded_columns = n_chunks * (columns // nr * nr + ceil_div(columns % nr, half) * half)
        products = ((PRODUCT_NS + PRODUCT_GATHER_NS / (2 * geo.group_in)) * geo.groups
                    * frequencies * padded_columns * rows * 2 * geo.group_in)
    padded_input = COPY_NS * geo.batch * geo.channels * (
        (b["tiles_h"] * b["tile_h"] + fft_h - b["tile_h"])
        * (b["tiles_w"] * b["tile_w"] + fft_w - b["tile_w"]))
    output = COPY_NS * geo.batch * geo.out_channels * geo.out_h * geo.out_w
    weights = 0.0
    if not prepared:
        kernel_rows = spans(geo)[0]
        weights = WEIGHT_FFT_NS * geo.out_channels * geo.group_in * (
            kernel_rows * fft_w * math.log2(fft_w) + frequencies * math.log2(fft_h))
        if geo.group_in > 1:
            weights += PACK_NS * geo.groups * frequencies * rows * 2 * geo.group_in
    chunks = transforms + products + output + CHUNK_NS * n_chunks
    # The busiest thread's chunks, at THREAD_EFFICIENCY; the weights'
    # transform split by output channel.
    efficiency = THREAD_EFFICIENCY if threads > 1 else 1.0
    return (padded_input + weights / min(threads, geo.out_channels)
            + chunks * ceil_div(n_chunks, threads) / n_chunks / efficiency)


def choose_windows(geo: Geometry, backend: str, prepared: bool, mr: int,
                   nr: int) -> Tuple[int, int]:
    """The windows of least estimated cost: the best square-sided pair of
    candidate sizes, then each side improved in turn (a full search of the
    pairs would cost milliseconds per plan)."""
    span_h, span_w = spans(geo)
    heights, widths = _axis_sizes(span_h, geo.out_h), _axis_sizes(span_w, geo.out_w)

    def cost(windows: Tuple[int, int]) -> float:
        return cost_ns(geo, windows, backend, prepared, mr, nr)

    best = min(((h, min(widths, key=lambda w: abs(w - h))) for h in heights), key=cost)
    for _ in range(2):
        best = min(((best[0], w) for w in widths), key=cost)
        best = min(((h, best[1]) for h in heights), key=cost)
    return best


def faster_than_direct(geo: Geometry, dtype: np.dtype[Any], prepared: bool, isa: str,
                       threads: int) -> bool:
    """Whether ``algorithm="auto"`` runs the FFT path: the cost model says
    it takes at most 1 / FFT_MARGIN of the direct kernel's time on
    ``threads`` threads (the direct kernel's work divides among them, the
    FFT's weight transform and padded copy do not). Only for
    stride 1, float data and kernels of at least MIN_TAPS taps: the direct
    kernel (or Winograd) wins below, where the model is not worth its time."""
    if (dtype.kind != "f" or (geo.stride_h, geo.stride_w) != (1, 1)
            or geo.kernel_h * geo.kernel_w < MIN_TAPS or geo.batch == 0):
        return False
    mr, nr = _winograd.gemm_tile_shape(dtype.name)
    windows = choose_windows(geo, _fft.backend(), prepared, mr, nr)
    fft = cost_ns(geo, windows, _fft.backend(), prepared, mr, nr, threads)
    if geo.groups > 1 and geo.group_in <= direct.PLANE_KERNEL_MAX_GROUP_IN:
        direct_ns = DIRECT_PLANES_NS
    else:
        direct_mr = _direct.tile_shape(dtype.name)[0]
        direct_ns = (DIRECT_NS.get(isa, DIRECT_NS["baseline"])
                     * ceil_div(geo.group_out, direct_mr) * direct_mr / geo.group_out)
    return fft * FFT_MARGIN < direct_ns * geo.multiply_adds / threads


def packed_weights_bytes(geo: Geometry, fft_h: int, fft_w: int, mr: int, elem: int) -> int:
    """The weights' spectra: complex per (frequency, K, C/groups), or packed
    as the GEMM tile's panels of the real form (2 K/groups rows rounded up
    to MR, 2 C/groups columns)."""
    frequencies = fft_h * (fft_w // 2 + 1)
    if geo.group_in == 1:
        return frequencies * geo.out_channels * 2 * elem
    rows = ceil_div(2 * geo.group_out, mr) * mr
    return geo.groups * frequencies * rows * 2 * geo.group_in * elem


def plan(geo: Geometry, dtype: np.dtype[Any], threads: int, prepared: bool) -> Plan:
    """The windows, chunks and blocking of the FFT convolution."""
    mr, nr = _winograd.gemm_tile_shape(dtype.name)
    windows = choose_windows(geo, _fft.backend(), prepared, mr, nr)
    return plan_windows(geo, dtype, threads, prepared, windows)


def plan_windows(geo: Geometry, dtype: np.dtype[Any], threads: int, prepared: bool,
                 windows: Tuple[int, int]) -> Plan:
    """The plan with FFT windows of ``windows`` = (fft_h, fft_w), each at
    least the dilated kernel's span (tools/tuning/fft_costs.py times them)."""
    elem = dtype.itemsize
    mr, nr = _winograd.gemm_tile_shape(dtype.name)
    b = _blocking(geo, windows, nr, elem)
    _split_for_threads(geo, b, threads)
    n_chunks, columns = _chunks(geo, b)
    threads = min(threads, n_chunks)  # each thread runs whole chunks
    span_h, span_w = spans(geo)
    padded = (geo.batch * geo.channels * (b["tiles_h"] * b["tile_h"] + span_h - 1)
              * (b["tiles_w"] * b["tile_w"] + span_w - 1) * elem)
    scratch = 0
    if geo.group_in > 1:
        rows = ceil_div(2 * geo.group_out, mr) * mr
        # Each thread's spectral products on their own range of frequencies.
        scratch = threads * thread_scratch(
            b["panels"] * 2 * geo.group_in * nr * elem, rows * b["panels"] * nr * elem)
    weights = 0 if prepared else packed_weights_bytes(geo, b["fft_h"], b["fft_w"], mr, elem)
    chunk = threads * columns * _tile_bytes(geo, windows, elem)
    return Plan("fft", f"fft_{_fft.backend()}", None, threads,
                padded + chunk + scratch + weights, b)
