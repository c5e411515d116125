"""The weight gradient's plan: one GEMM per group and kernel tap (private).

``grad_weight[k, c, i, j] = sum over n, oh, ow of
grad_output[n, k, oh, ow] * input[n, c, oh*sH - pH + i*dH, ow*sW - pW + j*dW]``.
For tap (i, j) this is C[c, k] = A[c, v] . B[v, k] over *virtual pixels*
``v = (n, h, w)`` of the padded input cut into its stride phases (phase
``(i*dH % sH, j*dW % sW)``, shifted by ``(i*dH // sH, j*dW // sW)``): A is the
input's channels read in place, ``row_len`` apart, and B is grad_output at
the same virtual pixels (zero where no output pixel is), packed in panels
of NR output channels. The batch is part of the reduction, so every work
item (group, tap, block of channel panels) owns its outputs: no race, and
the same sum whatever the threads.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .. import _direct
from . import Geometry, Plan, ceil_div
from .direct import _balance

__all__ = ["Layout", "layout", "plan"]

# Bytes of a B chunk (kc_max virtual pixels of an NR-column panel), reused
# from L1 by every channel panel of the item: half of a 48 KiB L1.
B_CHUNK_BYTES = 32768
# Work items per thread the channel blocks aim at (balance over the taps).
ITEMS_PER_THREAD = 4


class Layout(NamedTuple):
    """The operands' sizes (:func:`fastconv._direct_gemm.conv2d_weight_grad`)."""

    mr: int
    nr: int
    channels_padded: int   # C/groups rounded up to MR
    phase_h: int           # Hq: rows of a phase image
    phase_w: int           # Wq
    row_len: int           # one channel's phase rows, all images, with slack
    reduction: int         # N * Hq * Wq virtual pixels
    k_panels: int          # NR-column panels of K/groups


def layout(geo: Geometry, dtype: np.dtype[Any]) -> Layout:
    mr, nr = _direct.tile_shape(dtype)
    need_h = (geo.out_h - 1) * geo.stride_h + (geo.kernel_h - 1) * geo.dil_h + 1
    need_w = (geo.out_w - 1) * geo.stride_w + (geo.kernel_w - 1) * geo.dil_w + 1
    phase_h, phase_w = ceil_div(need_h, geo.stride_h), ceil_div(need_w, geo.stride_w)
    # A tap reads up to (its shift) past a virtual pixel: slack after the last image.
    slack = (((geo.kernel_h - 1) * geo.dil_h // geo.stride_h) * phase_w
             + (geo.kernel_w - 1) * geo.dil_w // geo.stride_w + 1)
    reduction = geo.batch * phase_h * phase_w
    return Layout(mr, nr, ceil_div(geo.group_in, mr) * mr, phase_h, phase_w,
                  reduction + slack, reduction, ceil_div(geo.group_out, nr))


def plan(geo: Geometry, dtype: np.dtype[Any], threads: int) -> Plan:
    """The plan of a weight gradient of the convolution ``geo``."""
    lay = layout(geo, dtype)
    taps = geo.kernel_h * geo.kernel_w
    m_panels = lay.channels_padded // lay.mr
    blocks = 1 if threads == 1 else min(m_panels, max(1, ceil_div(
        ITEMS_PER_THREAD * threads, geo.groups * taps)))
    # Whole rounds of the threads: the 9 taps of a 3x3 kernel on 2 threads
    # left one idle for a ninth of the time; 2 channel blocks (18 items) ran
    # the GEMMs 8-12% faster on 56x56, 28x28 and 14x14 images of 64-256
    # channels (2-core Xeon, interleaved A/B of the driver).
    blocks = _balance(geo.groups * taps, blocks, m_panels, threads)
    kc_max = max(1, min(lay.reduction, B_CHUNK_BYTES // (lay.nr * dtype.itemsize)))
    items = geo.groups * taps * blocks
    elements = (geo.groups * geo.stride_h * geo.stride_w * lay.channels_padded * lay.row_len
                + geo.groups * lay.k_panels * lay.reduction * lay.nr
                + geo.groups * taps * lay.channels_padded * lay.k_panels * lay.nr)
    return Plan("direct", "weight_gemm", None, max(1, min(threads, items)),
                elements * dtype.itemsize, {"kc_max": kc_max, "channel_blocks": blocks})
