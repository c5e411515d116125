"""Running a plan: the compiled driver of its path, on weights packed for
it (private).

:class:`PackedWeights` keeps a layer's weights as each kernel layout reads
them; :func:`execute` calls the driver a :class:`fastconv._plan.Plan` names
with the plan's threads and blocking.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

import numpy as np
from numpy.typing import NDArray

from . import _direct, _direct_gemm, _fft, _winograd
from ._plan import Geometry, Plan, make_plan

if TYPE_CHECKING:
    from ._conv import ConvSpec

__all__ = ["PackedWeights", "execute"]


class PackedWeights:
    """The weights and bias of a convolution as the kernels read them, per
    layout ("planes" or "gemm" for the direct paths, "lanes", "winograd"
    with a tile size, "fft" with a window shape) and dtype; kept for the
    next call if ``cache``."""

    def __init__(self, weight: NDArray[Any], bias: Optional[NDArray[Any]], groups: int,
                 cache: bool, dilation: Tuple[int, int] = (1, 1)) -> None:
        self.weight, self.bias, self.groups = weight, bias, groups
        self.dilation = dilation
        self._cache: Optional[Dict[Tuple[str, Any, str], Any]] = {} if cache else None

    def get(self, layout: str, tile: Any, dtype: np.dtype[Any],
            threads: int) -> Tuple[NDArray[Any], ...]:
        key = (layout, tile, dtype.str)
        if self._cache is not None and key in self._cache:
            return self._cache[key]
        weight = np.ascontiguousarray(self.weight, dtype=dtype)
        bias = (np.zeros(weight.shape[0], dtype) if self.bias is None
                else np.ascontiguousarray(self.bias, dtype=dtype))
        if layout == "planes":
            packed = _direct.pack_weights(weight, bias, self.groups, True)[::2]
        elif layout == "gemm":
            packed = _direct.pack_weights(weight, bias, self.groups)
        elif layout == "lanes":
            packed = (_direct.pack_channel_lanes(weight), bias)
        elif layout == "fft":
            packed = (_fft.weight_spectra(weight, self.groups, self.dilation, tile, dtype,
                                          threads), bias)
        else:
            packed = (_winograd.pack_weights(weight, self.groups, tile, threads), bias)
        if self._cache is not None:
            self._cache[key] = packed
        return packed


def execute(plan: Plan, spec: ConvSpec, geo: Geometry, x: NDArray[Any],
            target: NDArray[Any], pad_top: int, pad_left: int) -> None:
    """Run ``plan`` into ``target`` (NCHW, the compute dtype), from ``x``
    (NCHW, the compute dtype, padded already for the channel-lanes path and
    for padding modes other than zeros, with ``pad_top = pad_left = 0``)."""
    dtype = target.dtype
    relu = spec.activation == "relu"
    kernel = (*spec.kernel_size, *spec.stride)
    if plan.path == "channel_lanes":
        packed, bias = spec.packed.get("lanes", None, dtype, plan.threads)
        _direct.conv2d_channel_lanes(x, packed, bias, target, *kernel, *spec.dilation,
                                     plan.threads, plan.blocking, relu)
    elif plan.path == "planes":
        weight, bias = spec.packed.get("planes", None, dtype, plan.threads)
        _direct.conv2d_planes(x, weight, bias, target, *kernel, pad_top, pad_left,
                              *spec.dilation, spec.groups, plan.threads, plan.blocking, relu)
    elif plan.algorithm == "fft":
        blocking = plan.blocking
        spectra, bias = spec.packed.get("fft", (blocking["fft_h"], blocking["fft_w"]), dtype,
                                        plan.threads)
        finite = _fft.convolve(plan, geo, x, spectra, bias, target, pad_top, pad_left, relu,
                               check_finite=spec.algorithm == "auto")
        if not finite:
            # A NaN or Inf in a window spreads over all of its outputs, and
            # the transforms can overflow where the direct sum does not:
            # "auto" recomputes with the direct kernel (see Winograd below).
            _run_direct(spec, geo, dtype, plan, x, target, pad_top, pad_left)
    elif plan.algorithm == "direct":
        driver = getattr(_direct_gemm, f"conv2d_{plan.path}")
        weight, tails, padded_bias = spec.packed.get("gemm", None, dtype, plan.threads)
        driver(x, weight, tails, padded_bias, target, *kernel, pad_top, pad_left,
               *spec.dilation, spec.groups, plan.threads, plan.blocking, relu)
    else:
        packed, bias = spec.packed.get("winograd", plan.tile, dtype, plan.threads)
        finite = _winograd.conv2d_winograd(x, packed, bias, target, plan.tile,
                                           spec.kernel_size[0], pad_top, pad_left,
                                           spec.groups, plan.threads, plan.blocking, relu)
        if not finite and spec.algorithm == "auto":
            # The transforms scale values up, so they can overflow where the
            # direct sum is finite (float32 data near 1e37), and "auto" must
            # not turn a finite result into Inf or NaN. NaN or Inf in the
            # data also land here: the direct kernel then puts them exactly
            # where PyTorch does (a tile spreads them further).
            _run_direct(spec, geo, dtype, plan, x, target, pad_top, pad_left)


def _run_direct(spec: ConvSpec, geo: Geometry, dtype: np.dtype[Any], plan: Plan,
                x: NDArray[Any], target: NDArray[Any], pad_top: int, pad_left: int) -> None:
    """The direct kernel in place of ``plan``, on its threads."""
    direct = make_plan(geo, dtype, plan.threads, algorithm="direct", prepared=spec.plan_prepared)
    execute(direct, spec, geo, x, target, pad_top, pad_left)
