"""What a convolution call runs: the one planner (private).

From the validated geometry, the compute dtype, the thread count and whether
the weights are prepared (``Conv2d``), :func:`make_plan` returns a
:class:`Plan`: the algorithm, the kernel path, its blocking (how the work is
cut into items for the threads), the threads and the workspace. The compiled
drivers (:mod:`fastconv._direct`, :mod:`fastconv._winograd`) execute a plan's
``blocking`` as it is and decide nothing.

Every threshold and cost model lives here, each with the measurement that
set it. They were measured on the development machine (2-core AMD EPYC,
AVX-512; and, where said, a 16-core Xeon); `tools/tuning/` holds the scripts.

Paths
-----
direct
    ``planes``: groups of at most 4 input channels (depthwise), one output
    plane at a time, no GEMM. ``rows``: implicit GEMM reading B panels in
    place from a copy of the input rows (kernels larger than 1x1).
    ``packed``: implicit GEMM over packed column blocks (1x1 kernels, small
    images, huge dilations). ``shared_columns``: one small image whose
    columns all threads pack together. ``channel_lanes``: output channels in
    the vector lanes, for prepared layers on small images (AVX-512).
winograd
    ``winograd_tiles``: each thread transforms, multiplies and transforms
    back its own blocks of tiles. ``winograd_cooperative``: all threads on
    one block of tiles at a time, sharing its transformed input.
fft
    ``fft_scipy`` or ``fft_numpy`` (whose FFTs run): overlap-save over
    tiles, the spectral products on the GEMM tile (:mod:`fastconv._plan.fft`).
weight gradient
    ``weight_gemm``: one GEMM per group and kernel tap, the batch and the
    pixels its reduction (:mod:`fastconv._plan.weight_grad`).
"""

from __future__ import annotations

import dataclasses
import functools
from types import MappingProxyType
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Optional, Tuple

import numpy as np

from .. import _cpu, _direct, _openmp_helpers
from .._checks import WINOGRAD_TILE_SIZES

__all__ = ["Plan", "Geometry", "make_plan", "plan_threads"]

#: Every kernel path a conv2d plan may name (the weight gradient's plan,
#: fastconv._plan.weight_grad, names "weight_gemm").
PATHS = ("planes", "rows", "packed", "shared_columns", "channel_lanes", "winograd_tiles",
         "winograd_cooperative", "fft_scipy", "fft_numpy")


@dataclass(frozen=True)
class Plan:
    """What one convolution call runs (see :func:`fastconv.plan`).

    Parameters
    ----------
    algorithm : {"direct", "winograd", "fft"}
    path : str
        The kernel path: "planes", "rows", "packed", "shared_columns" or
        "channel_lanes" (direct); "winograd_tiles" or "winograd_cooperative";
        "fft_scipy" or "fft_numpy" (the library whose FFTs run).
    tile : int or None
        Winograd's output tile size m of F(m x m, 3 x 3); None for direct.
    threads : int
        The threads the kernel runs (never more than its work items).
    workspace_bytes : int
        Memory the call allocates beside its input and output: the kernel's
        scratch for all its threads, plus the packed or transformed weights
        unless the layer keeps them (``prepared``), plus the padded copy of
        the input that the channel-lanes path reads.
    blocking : mapping
        The path's blocking, exactly as its compiled driver receives it
        (read-only: plans are cached and shared).
    """

    algorithm: str
    path: str
    tile: Optional[int]
    threads: int
    workspace_bytes: int
    blocking: Mapping[str, int] = field(hash=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocking", MappingProxyType(dict(self.blocking)))

    def __repr__(self) -> str:
        tile = f", tile={self.tile}" if self.tile else ""
        blocking = ", ".join(f"{k}={v}" for k, v in self.blocking.items())
        return (f"Plan(algorithm={self.algorithm!r}, path={self.path!r}{tile}, "
                f"threads={self.threads}, workspace_bytes={self.workspace_bytes}, "
                f"blocking=({blocking}))")


class Geometry(NamedTuple):
    """One call's shapes, NCHW, after padding rules (bottom/right padding is
    implied by the output size)."""

    batch: int
    channels: int
    height: int
    width: int
    out_channels: int
    out_h: int
    out_w: int
    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int
    dil_h: int
    dil_w: int
    groups: int

    @property
    def group_in(self) -> int:
        return self.channels // self.groups

    @property
    def group_out(self) -> int:
        return self.out_channels // self.groups

    @property
    def taps(self) -> int:
        return self.group_in * self.kernel_h * self.kernel_w

    @property
    def multiply_adds(self) -> int:
        return (self.batch * self.out_channels * self.out_h * self.out_w * self.taps)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# Bytes at the start of each thread's scratch that the drivers' parallel
# idiom zeroes for the thread's state (_parallel.pxd: THREAD_STATE_BYTES).
THREAD_STATE_BYTES = 64


def thread_scratch(*parts: int) -> int:
    """A thread's scratch as the drivers lay it out (``_parallel.pxd``): the
    thread state, then the parts in bytes, each but the last rounded up to
    64 bytes (where the next one starts)."""
    return THREAD_STATE_BYTES + sum(ceil_div(part, 64) * 64 for part in parts[:-1]) + parts[-1]


# -- threads ------------------------------------------------------------------

# A call starts a thread per this much work at most, counted as the direct
# sum's multiply-adds plus 16 per element read or written (what bounds the
# memory-bound depthwise layers): waking a second thread costs tens of
# microseconds on an idle machine and more when the cores are busy (libgomp's
# hand-off waits for a descheduled thread). `python tools/tuning/small_calls.py
# [--busy 2]` at fc9e40b, 3x3 layers, 1 against 2 threads in ms, median idle /
# mean with both cores busy: 0.12 M multiply-adds 0.032, 0.027 / 0.083, 0.181;
# 0.45 M 0.025, 0.025 / 0.053, 0.124; 2.1 M 0.044, 0.035 / 0.115, 0.202;
# 8.3 M 0.112, 0.072 / 0.249, 0.370. Depthwise (1,512,512,14), 0.9 M
# multiply-adds and 0.2 M elements: 0.088 ms at 1 thread, 0.052 at 2.
MIN_WORK_PER_THREAD = 2**20
WORK_PER_ELEMENT = 16


def plan_threads(requested: int, geo: Geometry) -> int:
    """Threads for a call of geometry ``geo`` when ``requested`` (>= 1) are
    asked for: one per MIN_WORK_PER_THREAD of work, and at most four per
    processor (a runtime may fail to create thousands); 1 without OpenMP."""
    elements = (geo.batch * (geo.channels * geo.height * geo.width
                             + geo.out_channels * geo.out_h * geo.out_w))
    work = geo.multiply_adds + WORK_PER_ELEMENT * elements
    return max(1, min(requested, _openmp_helpers.thread_limit(),
                      work // MIN_WORK_PER_THREAD))


# -- the algorithm --------------------------------------------------------------

# Output pixels per image up to which a prepared layer's direct convolution
# puts output channels in the vector lanes, if they fill a tile's lanes.
# Measured against the pixel panels (tools/tuning/channel_lanes.py): 0.97-1.43x
# as fast up to 196 pixels, 0.80-1.15x at 784; and, forced before the
# output-channel condition, 3x slower with 16 output channels (a quarter of
# the lanes).
CHANNEL_LANES_PIXELS = 256


def winograd_tiles(geo: Geometry) -> Tuple[int, ...]:
    """The output tile sizes Winograd has for ``geo`` (none where it does not
    apply: a kernel that is not 3x3, 5x5 or 7x7, stride or dilation)."""
    if ((geo.stride_h, geo.stride_w) != (1, 1) or (geo.dil_h, geo.dil_w) != (1, 1)
            or geo.kernel_h != geo.kernel_w):
        return ()
    return WINOGRAD_TILE_SIZES.get(geo.kernel_h, ())


def winograd_forced_tile(geo: Geometry, prepared: bool) -> int:
    """Winograd tile size for ``algorithm="winograd"``: the ``"auto"`` rule's
    where it picks Winograd, else F(4x4) for 3x3 and 5x5 kernels (the fewest
    multiplications per output that keeps float32 within 1e-4) and F(2x2)
    for 7x7, the only one."""
    return winograd_tile_rule(geo, prepared) or max(
        m for m in WINOGRAD_TILE_SIZES[geo.kernel_h] if m <= 4)


def winograd_tile_rule(geo: Geometry, prepared: bool) -> int:
    """Winograd tile size for ``algorithm="auto"``, or 0 for the direct kernel.

    Derived from ``tools/tuning/tune_auto.py`` on the development machine (the
    tables are in tools/tuning/auto_rule.md). Winograd F(4x4) beats the
    direct kernel on most 3x3 layers with 8 or more input channels. The
    direct kernel wins with 8-16 input channels on larger images, and where a
    large weight meets a tiny image (the transformed weights, 16/9 or 36/9
    times the weights, are streamed from memory for a few pixels), from
    ``pixels * 2048 < pairs``: (1,512,512,7) prepared, beside PyTorch at 2
    threads, F(2x2) 0.82 ms, direct 0.68 ms (channel lanes);
    (1,256,256,7): F(2x2) 0.12 ms, direct 0.21 ms. F(6x6) is never picked:
    it was at most ~8% faster than F(4x4) here, at twice the rounding error.

    A prepared layer takes the tile size whose GEMMs are smallest
    (:func:`_smallest_gemms`), so F(2x2) for a single 7x7 image and F(4x4)
    from 14x14 or a batch of 7x7 images on. A one-off call also pays
    for transforming the weights, which only the direct kernel avoids, and
    F(2x2)'s transform is the cheaper one.
    """
    if geo.kernel_h != 3:
        return _large_kernel_tile(geo, prepared)
    pixels = geo.batch * geo.out_h * geo.out_w
    weight_pairs = geo.group_in * geo.group_out
    if (geo.group_in < 8 or (geo.group_in <= 16 and pixels > 1024)
            or pixels * 2048 < weight_pairs):
        return 0
    if prepared:
        return _smallest_gemms(geo, (2, 4))
    if pixels <= 196 and weight_pairs >= 128 * 128:
        return 0
    # Since the weight transform got 2x faster (f25bb04), F(4x4) one-off won
    # at 256 and 384 channels on 28x28 (1 thread: 3.32 against 3.75 ms, 6.76
    # against 7.66), F(2x2) still at 512 (13.4 against 18.9 ms).
    if pixels <= 400 or (pixels <= 1024 and weight_pairs >= 512 * 512):
        return 2
    return 4


def _smallest_gemms(geo: Geometry, tiles: Tuple[int, ...]) -> int:
    """The tile size among ``tiles`` whose GEMMs are smallest: ``alpha^2``
    products over the batch's tiles rounded up to panels of 16 (the narrow
    panel of the AVX-512 float32 GEMM); the first of equals."""
    def gemm_size(m: int) -> int:
        count = geo.batch * ceil_div(geo.out_h, m) * ceil_div(geo.out_w, m)
        return (m + geo.kernel_h - 1) ** 2 * ceil_div(count, 16) * 16

    return min(tiles, key=gemm_size)


# One-off calls take F(4x4, 5x5) above this many output pixels (batch
# included), and F(2x2, 7x7) above the second (AVX-512 only); prepared 7x7
# layers take F(2x2) from this many input channels per group, with AVX-512
# and below it (see _large_kernel_tile).
FIVE_MIN_PIXELS = 400
SEVEN_MIN_PIXELS = 1024
SEVEN_MIN_GROUP_IN = {"avx512": 32, "below": 64}


def _large_kernel_tile(geo: Geometry, prepared: bool) -> int:
    """Winograd tile size for ``algorithm="auto"`` on a 5x5 or 7x7 layer, or
    0 for the FFT-or-direct rule.

    From ``tools/tuning/winograd_large.py --threads 1`` at 52f52df (times
    over the direct kernel's, interleaved, best of 9), AVX-512. 5x5,
    prepared: F(4x4) 0.37-0.67 from 14x14 images on, where the FFT was
    1.2-2.3; (1,512,512,7) F(2x2) 0.56, F(4x4) 1.09: the tile of the
    smallest GEMMs, as for 3x3. 5x5, one-off: the weight transform (64
    points per filter, ~70 ns) is paid per call: F(4x4) 0.46-0.56 on
    56x56, 112x112 and (8,64,64,28), 0.78-0.84 on 28x28, but about 2 on
    14x14. 7x7, prepared: F(2x2) 0.60-0.83 with 32 to 512 channels
    ((1,32,32,112) 0.83, (1,64,64,28) 0.81, (1,128,128,28) 0.64), where the
    FFT was 0.69-5.3 ((8,64,64,28) 0.69 against F(2x2)'s 0.64). 7x7,
    one-off: F(2x2) 0.74-0.85 above 1024 pixels ((1,64,64,56),
    (1,32,32,112), (8,64,64,28); the FFT 1.09-1.58), 1.08-1.72 below.
    Fewer than 8 input channels per group are left to the direct kernel
    (its plane kernel for depthwise layers).

    Below AVX-512 (``FASTCONV_ISA=avx2`` / ``baseline``, best of 5, at
    a78fd3f, before the AVX-512 gather of these tiles) the direct kernel is
    slower: one-off 5x5 calls on 28x28 F(4x4) 0.71 / 0.46, 14x14 1.64 /
    1.14; prepared 7x7 layers with 64 channels F(2x2) 0.61-0.68 / 0.42-0.48,
    the FFT 0.69-0.79 / 0.66-0.68, but with 32 channels on 112x112 the FFT
    0.58 / 0.51 against 0.79 / 0.55, and one-off 7x7 calls there the FFT
    0.62 / 0.38 against 0.80 / 0.58: those stay with the FFT rule.
    """
    if geo.group_in < 8:
        return 0
    avx512 = _cpu.active_isa() == "avx512"
    pixels = geo.batch * geo.out_h * geo.out_w
    if geo.kernel_h == 5:
        if prepared:
            return _smallest_gemms(geo, (2, 4))
        return 4 if pixels > FIVE_MIN_PIXELS else 0
    if prepared:
        return 2 if geo.group_in >= SEVEN_MIN_GROUP_IN["avx512" if avx512 else "below"] else 0
    return 2 if avx512 and pixels > SEVEN_MIN_PIXELS else 0


def choose_algorithm(geo: Geometry, dtype: np.dtype[Any], algorithm: str,
                     prepared: bool, threads: int = 1) -> Tuple[str, Optional[int]]:
    """("direct", None), ("winograd", m) or ("fft", None) for ``algorithm``
    (validated)."""
    if algorithm == "fft":
        if dtype.kind != "f":
            raise ValueError(
                "algorithm='fft' needs floating-point data; integer convolutions are "
                "computed exactly by algorithm='direct'")
        return "fft", None
    if algorithm.startswith("winograd"):
        if dtype.kind != "f":
            raise ValueError(
                f"algorithm={algorithm!r} needs floating-point data; integer "
                "convolutions are computed exactly by algorithm='direct'")
        if algorithm == "winograd":
            return "winograd", winograd_forced_tile(geo, prepared)
        return "winograd", int(algorithm[len("winograd"):])
    if algorithm == "direct" or dtype.kind != "f":
        return "direct", None
    tile = winograd_tile_rule(geo, prepared) if winograd_tiles(geo) else 0
    if tile:
        return "winograd", tile
    return ("fft", None) if fft.faster_than_direct(
        geo, dtype, prepared, _cpu.active_isa(), threads) else ("direct", None)


def uses_channel_lanes(geo: Geometry, dtype: np.dtype[Any], prepared: bool) -> bool:
    """Whether the direct kernel runs with output channels in the vector
    lanes: for a prepared layer without groups on a small image, where pixel
    panels would be mostly empty; it needs its own transposed copy of the
    weights. AVX-512 only (lanes_width 0 below)."""
    return (prepared and geo.groups == 1 and dtype.kind == "f"
            and geo.out_h * geo.out_w <= CHANNEL_LANES_PIXELS
            and geo.out_channels >= _direct.lanes_width(dtype) > 0)


# -- the plan -------------------------------------------------------------------

def make_plan(geo: Geometry, dtype: np.dtype[Any], threads: int, *, algorithm: str = "auto",
              prepared: bool = False) -> Plan:
    """The plan of one call (``threads`` from :func:`plan_threads`), cached:
    a layer's repeated calls and a loop of one-off calls plan once."""
    return _make_plan(geo, np.dtype(dtype).char, threads, algorithm, prepared,
                      _cpu.active_isa())


@functools.lru_cache(maxsize=512)
def _make_plan(geo: Geometry, dtype_char: str, threads: int, algorithm: str, prepared: bool,
               isa: str) -> Plan:
    # isa is only part of the key: tile shapes change with the level.
    dtype = np.dtype(dtype_char)
    kind, tile = choose_algorithm(geo, dtype, algorithm, prepared, threads)
    if geo.batch == 0:
        # Nothing runs: no threads, no scratch, no weights packed.
        one = _make_plan(geo._replace(batch=1), dtype_char, threads, algorithm, prepared, isa)
        return dataclasses.replace(one, threads=0, workspace_bytes=0, blocking={})
    if kind == "winograd":
        assert tile is not None
        return winograd.plan(geo, dtype, tile, threads, prepared)
    if kind == "fft":
        return fft.plan(geo, dtype, threads, prepared)
    return direct.plan(geo, dtype, threads, prepared, uses_channel_lanes(geo, dtype, prepared))


def clear_cache() -> None:
    """Forget the cached plans (after a tuning script or test changed a
    threshold of this module)."""
    _make_plan.cache_clear()


from . import direct, fft, weight_grad, winograd  # noqa: E402  (they use Plan and Geometry)
