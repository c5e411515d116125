"""Plans of Winograd F(m x m, r x r) (private; see :mod:`fastconv._plan`).

Tiles are numbered over the whole batch and cut into blocks of at most
PANELS panels of NR tiles; a work item is (group, tile block, block of
output channels): it transforms its tiles' input channel by channel into V,
multiplies V by the transformed weights U into M (alpha^2 GEMMs) and
transforms M back. The input-channel chunk and the output-channel block
follow from the V and M budgets.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

from .. import _winograd
from . import Geometry, Plan, ceil_div, thread_scratch

# Transformed input V (a work item's tile panels x an input-channel chunk) and
# GEMM results M per thread: they stay in L2/L3 while the GEMMs sweep them.
V_BYTES = 8 << 20
M_BYTES = 8 << 20
# Fewest input channels per chunk, and most tile panels per work item.
CB_MIN = 32
PANELS = 4
# Panels of NR / 2 tiles (a 12x16 GEMM tile on the same packed weights) when
# they need at most this share of the lanes of full panels: (1,256,256,14)
# F(4x4) 0.89 -> 0.50 ms at 1 thread (1528b22).
NARROW_LANES = 0.75
# The cooperative mode when one thread's share of the work items exceeds the
# mean by more than this: 7 panels split 3 + 4 among two threads;
# (1,64,64,56) and (1,256,256,56) at 2 threads 17-18% faster (1de9448).
IMBALANCE = 1.05
# M per thread in the cooperative mode, unless the transformed weights exceed
# U_CACHED_BYTES (db396a2: at 2 threads (1,256,256,56) 3.34 -> 2.83 ms;
# (1,512,512,28), 37.7 MB of U, got 21% slower with small rounds).
COOP_M_BYTES = 1 << 20
U_CACHED_BYTES = 16 << 20


def packed_weights_bytes(geo: Geometry, m: int, mr: int, elem: int) -> int:
    """The transformed weights U: groups x alpha^2 x K_pad x C/groups."""
    alpha = m + geo.kernel_h - 1
    return geo.groups * alpha ** 2 * ceil_div(geo.group_out, mr) * mr * geo.group_in * elem


def plan(geo: Geometry, dtype: np.dtype[Any], m: int, threads: int, prepared: bool) -> Plan:
    """The blocking of F(m x m, r x r) (r the kernel size of ``geo``) for
    ``threads`` threads."""
    elem = dtype.itemsize
    mr, nr = _winograd.gemm_tile_shape(dtype.name)
    alpha = m + geo.kernel_h - 1
    b: Dict[str, int] = {"mr": mr, "alpha": alpha, "alpha2": alpha ** 2}
    b["tiles_w"] = ceil_div(geo.out_w, m)
    b["tiles_per_image"] = ceil_div(geo.out_h, m) * b["tiles_w"]
    b["n_tiles"] = geo.batch * b["tiles_per_image"]
    half = nr // 2
    if ceil_div(b["n_tiles"], half) * half <= NARROW_LANES * ceil_div(b["n_tiles"], nr) * nr:
        nr = half
    b["nr"] = nr
    b["n_tile_panels"] = ceil_div(b["n_tiles"], nr)
    b["n_tile_blocks"] = ceil_div(b["n_tile_panels"], PANELS)
    n_kpanels = ceil_div(geo.group_out, mr)
    # Fewer tile blocks than threads: splitting the output channels would make
    # every channel block repeat the block's input transform (at 16 threads,
    # (8,256,256,14) ran slower than at 4). Instead all threads transform one
    # block's input together into a shared V, then share out its output
    # channels.
    v_panel_bytes = b["alpha2"] * geo.group_in * nr * elem
    can_cooperate = threads > 1 and v_panel_bytes <= V_BYTES and n_kpanels > 1
    if can_cooperate and geo.groups * b["n_tile_blocks"] < threads:
        return _cooperative(geo, b, m, threads, v_panel_bytes, elem, prepared)
    # Items of equal size in a multiple of the thread count balance under
    # static scheduling: add tile blocks while they stay at least one panel.
    blocks = b["n_tile_blocks"]
    while (geo.groups * blocks) % threads and blocks < b["n_tile_panels"]:
        blocks += 1
    if (geo.groups * blocks) % threads == 0:
        b["n_tile_blocks"] = blocks
    b["panels"] = ceil_div(b["n_tile_panels"], b["n_tile_blocks"])
    block_bytes = b["alpha2"] * b["panels"] * nr * elem
    cb = max(CB_MIN, V_BYTES // block_bytes)
    b["cb"] = ceil_div(geo.group_in, ceil_div(geo.group_in, cb))
    max_kpanels = max(1, M_BYTES // (block_bytes * mr))
    channel_blocks = ceil_div(n_kpanels, max_kpanels)
    # Still too few items for the threads, or unbalanced ones: split the
    # output channels further (each block repeats the input transform, a
    # small cost next to the GEMMs).
    base = geo.groups * b["n_tile_blocks"]
    if base * channel_blocks < threads or (
            base * channel_blocks < 8 * threads and (base * channel_blocks) % threads):
        want = ceil_div(threads, base)
        while want * base % threads and want < n_kpanels:
            want += 1
        channel_blocks = min(n_kpanels, max(channel_blocks, want))
    b["kpanels_per_block"] = ceil_div(n_kpanels, channel_blocks)
    b["n_channel_blocks"] = ceil_div(n_kpanels, b["kpanels_per_block"])
    if can_cooperate and _static_imbalance(geo, b, threads) > IMBALANCE:
        return _cooperative(geo, b, m, threads, v_panel_bytes, elem, prepared)
    b["cooperative"] = 0
    threads = min(threads, base * b["n_channel_blocks"])
    scratch = threads * _thread_bytes(b, m, elem, (_v_elems(b), _m_elems(b)))
    return _result("winograd_tiles", geo, m, threads, scratch, b, elem, prepared)


def _cooperative(geo: Geometry, b: Dict[str, int], m: int, threads: int,
                 v_panel_bytes: int, elem: int, prepared: bool) -> Plan:
    """A shared V of all input channels for as many tile panels as the V and M
    budgets allow, the output-channel panels shared out among the threads;
    each (group, tile block) is one round."""
    mr, nr, alpha2 = b["mr"], b["nr"], b["alpha2"]
    n_kpanels = ceil_div(geo.group_out, mr)
    u_bytes = alpha2 * n_kpanels * mr * geo.group_in * elem
    m_bytes = M_BYTES if u_bytes > U_CACHED_BYTES else COOP_M_BYTES
    b["cb"] = geo.group_in
    channel_blocks = min(n_kpanels, threads)
    b["kpanels_per_block"] = ceil_div(n_kpanels, channel_blocks)
    b["n_channel_blocks"] = ceil_div(n_kpanels, b["kpanels_per_block"])
    panels = min(b["n_tile_panels"], V_BYTES // v_panel_bytes,
                 max(1, m_bytes // (alpha2 * b["kpanels_per_block"] * mr * nr * elem)))
    b["n_tile_blocks"] = ceil_div(b["n_tile_panels"], panels)
    b["panels"] = ceil_div(b["n_tile_panels"], b["n_tile_blocks"])
    b["cooperative"] = 1
    threads = min(threads, b["n_channel_blocks"] * b["n_tile_panels"])
    # One shared V (the calling thread's); M and the tile scratch per thread.
    scratch = _v_elems(b) * elem + threads * _thread_bytes(b, m, elem, (_m_elems(b),))
    return _result("winograd_cooperative", geo, m, threads, scratch, b, elem, prepared)


#: The blocking a Winograd driver executes (the rest follows from the
#: geometry): panel width, tile blocks and panels per block, input channels
#: per chunk, output-channel blocks and their panels, and the mode.
DRIVER_KEYS = ("nr", "n_tile_blocks", "panels", "cb", "n_channel_blocks",
               "kpanels_per_block", "cooperative")


def _result(path: str, geo: Geometry, m: int, threads: int, scratch: int,
            b: Dict[str, int], elem: int, prepared: bool) -> Plan:
    weights = 0 if prepared else packed_weights_bytes(geo, m, b["mr"], elem)
    return Plan("winograd", path, m, threads, scratch + weights,
                {key: b[key] for key in DRIVER_KEYS})


def _static_imbalance(geo: Geometry, b: Dict[str, int], threads: int) -> float:
    """Largest thread's share of the work (tile panels x output-channel
    panels) under OpenMP's static schedule, over the mean share."""
    n_tile_blocks, n_channel_blocks = b["n_tile_blocks"], b["n_channel_blocks"]
    n_items = geo.groups * n_tile_blocks * n_channel_blocks
    n_kpanels = ceil_div(geo.group_out, b["mr"])
    items = np.arange(n_items)
    channel_block = items % n_channel_blocks
    tile_block = (items // n_channel_blocks) % n_tile_blocks
    panel0 = tile_block * b["n_tile_panels"] // n_tile_blocks
    panel1 = (tile_block + 1) * b["n_tile_panels"] // n_tile_blocks
    tiles = np.minimum(panel1 * b["nr"], b["n_tiles"]) - panel0 * b["nr"]
    kp0 = channel_block * b["kpanels_per_block"]
    kp1 = np.minimum(kp0 + b["kpanels_per_block"], n_kpanels)
    work = -(-tiles // b["nr"]) * (kp1 - kp0)
    used = min(threads, n_items)
    # Contiguous chunks, the first n % T one item longer.
    sizes = n_items // used + (np.arange(used) < n_items % used)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    largest = int(np.add.reduceat(work, starts).max())
    return largest * used / (geo.groups * b["n_tile_panels"] * n_kpanels)


def _thread_bytes(b: Dict[str, int], m: int, elem: int, parts: Tuple[int, ...]) -> int:
    """One thread's scratch as the driver lays it out: ``parts`` (elements)
    and the tile scratch, the last rounded up to 64 bytes too."""
    tile = -(-_tile_scratch_elems(b, m) * elem // 64) * 64
    return thread_scratch(*(n * elem for n in parts), tile)


def _v_elems(b: Dict[str, int]) -> int:
    return b["alpha2"] * b["cb"] * b["panels"] * b["nr"]


def _m_elems(b: Dict[str, int]) -> int:
    return b["alpha2"] * b["kpanels_per_block"] * b["mr"] * b["panels"] * b["nr"]


def _tile_scratch_elems(b: Dict[str, int], m: int) -> int:
    # gathered tiles (alpha^2), then the output transform's alpha x m and m x m
    alpha = b["alpha"]
    return (alpha * alpha + alpha * m + m * m) * b["nr"]
