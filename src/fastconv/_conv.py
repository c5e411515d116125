"""conv2d: argument validation, dtype rules and algorithm choice (private).

Everything about shapes and types is checked here, in Python, so the compiled
kernels (:mod:`fastconv._direct`, :mod:`fastconv._winograd`) receive only
C-contiguous NCHW arrays of one dtype and a consistent geometry.

A convolution is split into the weight side (:class:`ConvSpec`: weights,
bias, stride, padding and padding mode, dilation, groups, data layout and
activation, validated once, with a cache of the weights packed or
transformed for each algorithm) and the call side (:meth:`ConvSpec.apply`:
the input, the output and the algorithm for its shape). :func:`conv2d`
builds a throw-away spec per call; :class:`fastconv.Conv2d` keeps one.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Dict, Literal, Optional, Sequence, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _direct, _forksafe, _openmp_helpers, _winograd
from ._isa import active_isa  # noqa: F401  (selects the kernels at import)
from ._padding import PADDING_MODES, check_padding, check_padding_mode, pad_nchw
from ._threads import OPENMP_DEFAULT, kernel_threads

__all__ = ["conv2d", "ConvSpec", "ALGORITHMS", "ACTIVATIONS", "LAYOUTS", "PADDING_MODES"]

WINOGRAD_TILES = {"winograd2": 2, "winograd4": 4, "winograd6": 6}
ALGORITHMS = ("auto", "direct", "winograd") + tuple(WINOGRAD_TILES)
#: Data layouts of the input and output; the weight is always (K, C/groups, kH, kW).
LAYOUTS = ("NCHW", "NHWC")
#: Activations fused into the kernels' output stage.
ACTIVATIONS = (None, "relu")

IntPair = Union[int, Tuple[int, int]]
PaddingArg = Union[int, Tuple[int, int], Literal["valid", "same"]]
Algorithm = Literal["auto", "direct", "winograd", "winograd2", "winograd4", "winograd6"]
Layout = Literal["NCHW", "NHWC"]
Activation = Optional[Literal["relu"]]
PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]

_INTEGER_KINDS = "biu"


def conv2d(input: ArrayLike, weight: ArrayLike, bias: Optional[ArrayLike] = None,
           stride: IntPair = 1, padding: PaddingArg = 0, dilation: IntPair = 1,
           groups: int = 1, *, algorithm: Algorithm = "auto",
           num_threads: Optional[int] = None, out: Optional[NDArray[Any]] = None,
           layout: Layout = "NCHW", activation: Activation = None,
           padding_mode: PaddingMode = "zeros") -> NDArray[Any]:
    """2-D convolution (cross-correlation) with the semantics of
    ``torch.nn.functional.conv2d``, on NumPy arrays.

    Parameters
    ----------
    input : array_like of shape (N, C, H, W) or (C, H, W)
        Batched or unbatched input; (N, H, W, C) or (H, W, C) with
        ``layout="NHWC"``. An unbatched input gives an unbatched result.
    weight : array_like of shape (K, C // groups, kH, kW)
        Filters, in this shape for both layouts. They are not flipped
        (cross-correlation, as in PyTorch).
    bias : array_like of shape (K,), optional
        Added to every output pixel of channel ``k``.
    stride : int or tuple of 2 ints, default=1
        Step of the kernel window, ``(sH, sW)``; each >= 1.
    padding : int, tuple of 2 ints, "valid" or "same", default=0
        Padding added on both sides, ``(pH, pW)``. ``"valid"`` is no
        padding. ``"same"`` (stride 1 only) pads so the output has the
        input's size; when ``dilation * (k - 1)`` is odd the extra row/column
        goes at the bottom/right, exactly as PyTorch pads.
    dilation : int or tuple of 2 ints, default=1
        Spacing between kernel taps; each >= 1.
    groups : int, default=1
        Number of blocked connections; must divide ``C`` and ``K``.
    algorithm : str, default="auto"
        ``"direct"``; ``"winograd"`` (Winograd minimal filtering, 3x3 kernels
        with stride 1 and dilation 1 only, float dtypes, tile size chosen by
        shape) or ``"winograd2"``, ``"winograd4"``, ``"winograd6"`` for output
        tiles F(2x2), F(4x4), F(6x6); ``"auto"`` picks the fastest for the
        shape (see the README for the rule and its measurements). A forced
        Winograd call can overflow to Inf or NaN where the direct sum is
        finite (float32 data near 1e37); ``"auto"`` then recomputes with the
        direct kernel, so its NaN and Inf are exactly the direct kernel's.
    num_threads : int, optional
        OpenMP threads for this call. ``None`` uses the active
        :class:`fastconv.threads` block, else the
        :func:`fastconv.set_num_threads` default, else OpenMP's default at
        call time (``OMP_NUM_THREADS``, ``threadpoolctl`` limits). Never more
        threads are started than there are work items, nor more than one per
        million multiply-adds or so (a thread costs more than it saves on
        less). A signal handler that raises (Ctrl-C) stops a call from the
        main thread within about 0.1 s, leaving ``out`` partly written.
    out : ndarray, optional
        C-contiguous, writeable array of exactly the result's shape (in
        ``layout``) and dtype, not overlapping the operands; written in place
        and returned.
    layout : {"NCHW", "NHWC"}, default="NCHW"
        Layout of ``input`` and of the result: channels first (PyTorch's) or
        channels last. NHWC costs one transposed copy of the input and one of
        the output (the kernels compute in NCHW).
    activation : {None, "relu"}, default=None
        ``"relu"`` applies ``max(y, 0)`` to the result in the kernels' output
        stage (no second pass over the result); NaN stays NaN, as in
        ``torch.relu``.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}, default="zeros"
        What the padding holds, as ``torch.nn.Conv2d``'s ``padding_mode``
        (``torch.nn.functional.conv2d`` has zeros only). Modes other than
        zeros build a padded copy of the input first, as PyTorch does.

    Returns
    -------
    output : ndarray of shape (N, K, H_out, W_out) or (K, H_out, W_out)
        (N, H_out, W_out, K) or (H_out, W_out, K) with ``layout="NHWC"``.
        ``H_out = (H + 2*pH - dH*(kH - 1) - 1) // sH + 1``, likewise ``W_out``.
        dtype: float32 and float64 are computed natively and mixed float
        dtypes follow :func:`numpy.result_type`; float16 is computed in
        float32 and returned as float16; integer or bool ``input`` and
        ``weight`` are computed exactly in int64 (wrapping on overflow, like
        PyTorch); an integer ``input`` with float ``weight`` takes the float
        dtype.

    Raises
    ------
    TypeError
        For complex, object or string data, or non-integer parameters.
    ValueError
        For inconsistent shapes or parameters, an algorithm that cannot
        handle them, or padding the ``padding_mode`` cannot do (reflect:
        padding must be smaller than the input; circular: at most the
        input); the message names the argument.

    See Also
    --------
    fastconv.Conv2d : a layer that validates and transforms its weights once.
    fastconv.conv1d : the 1-D convolution.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> fastconv.conv2d(x, np.ones((1, 1, 2, 2)), stride=2)
    array([[[[10., 18.],
             [42., 50.]]]])
    >>> fastconv.conv2d(x - 8, np.ones((1, 1, 2, 2)), stride=2, activation="relu")
    array([[[[ 0.,  0.],
             [10., 18.]]]])
    """
    spec = ConvSpec(weight, bias, stride, padding, dilation, groups, algorithm=algorithm,
                    cache=False, padding_mode=padding_mode, layout=layout,
                    activation=activation)
    return spec.apply(input, num_threads=num_threads, out=out)


class ConvSpec:
    """The weight side of a convolution, validated once.

    Parameters are those of :func:`conv2d`. With ``cache=True`` the packed or
    Winograd-transformed weights are kept per algorithm and dtype, so repeated
    calls pay for them once.
    """

    def __init__(self, weight: ArrayLike, bias: Optional[ArrayLike] = None,
                 stride: IntPair = 1, padding: PaddingArg = 0, dilation: IntPair = 1,
                 groups: int = 1, *, algorithm: str = "auto", cache: bool = True,
                 padding_mode: str = "zeros", layout: str = "NCHW",
                 activation: Optional[str] = None) -> None:
        if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
            raise ValueError(
                f"algorithm must be one of {', '.join(map(repr, ALGORITHMS))}; "
                f"got {algorithm!r}")
        self.algorithm: str = algorithm
        self.padding_mode: str = check_padding_mode(padding_mode)
        self.layout: str = _choice(layout, LAYOUTS, "layout")
        self.activation: Optional[str] = _choice(activation, ACTIVATIONS, "activation")
        w = _as_array(weight, "weight")
        b = None if bias is None else _as_array(bias, "bias")
        if w.ndim != 4:
            raise ValueError(
                f"weight must have 4 dimensions (K, C/groups, kH, kW); got shape {w.shape}")
        self.stride = _pair(stride, "stride", minimum=1)
        self.dilation = _pair(dilation, "dilation", minimum=1)
        self.groups = _integer(groups, "groups")
        if self.groups < 1:
            raise ValueError(f"groups must be >= 1; got {self.groups}")
        out_channels, group_in, kernel_h, kernel_w = map(int, w.shape)
        if w.size == 0:
            raise ValueError(f"weight must not be zero-sized; got shape {w.shape}")
        if out_channels % self.groups:
            raise ValueError(
                f"groups={self.groups} must divide the output channels "
                f"K={out_channels} (weight.shape[0])")
        if b is not None and b.shape != (out_channels,):
            raise ValueError(
                f"bias must have shape ({out_channels},) to match weight.shape[0]; "
                f"got shape {b.shape}")
        self.padding = _padding(
            padding, self.stride,
            (self.dilation[0] * (kernel_h - 1), self.dilation[1] * (kernel_w - 1)))
        self.weight, self.bias = w, b
        self.out_channels: int = out_channels
        self.in_channels: int = group_in * self.groups
        self.kernel_size: Tuple[int, int] = (kernel_h, kernel_w)
        self.winograd_ok = (self.kernel_size == (3, 3) and self.stride == (1, 1)
                            and self.dilation == (1, 1))
        if algorithm != "auto" and algorithm != "direct" and not self.winograd_ok:
            raise ValueError(
                f"algorithm={algorithm!r} needs a 3x3 kernel, stride 1 and dilation 1; "
                f"got kernel {self.kernel_size}, stride {self.stride}, "
                f"dilation {self.dilation}")
        self._cache: Optional[Dict[Tuple[str, Optional[int], str], Any]] = (
            {} if cache else None)
        self.caches_weights = bool(cache)

    # -- per call -----------------------------------------------------------

    def output_shape(self, input_shape: Sequence[int]) -> Tuple[int, int]:
        """(H_out, W_out) for an input of spatial size ``input_shape``."""
        height, width = input_shape
        (pad_top, pad_bottom), (pad_left, pad_right) = self.padding
        span_h = self.dilation[0] * (self.kernel_size[0] - 1) + 1
        span_w = self.dilation[1] * (self.kernel_size[1] - 1) + 1
        padded_h = height + pad_top + pad_bottom
        padded_w = width + pad_left + pad_right
        if span_h > padded_h or span_w > padded_w:
            raise ValueError(
                f"kernel size {self.kernel_size} with dilation {self.dilation} spans "
                f"({span_h}, {span_w}), larger than the padded input "
                f"({padded_h}, {padded_w})")
        return ((padded_h - span_h) // self.stride[0] + 1,
                (padded_w - span_w) // self.stride[1] + 1)

    def spatial_shape(self, input_shape: Sequence[int]) -> Tuple[int, int, int]:
        """(N, H, W) of an input shape in this spec's layout (unbatched: N = 1)."""
        shape = tuple(input_shape)
        batch = shape[0] if len(shape) == 4 else 1
        height, width = shape[-3:-1] if self.layout == "NHWC" else shape[-2:]
        return batch, height, width

    def apply(self, input: ArrayLike, *, num_threads: Optional[int] = None,
              out: Optional[NDArray[Any]] = None) -> NDArray[Any]:
        """Convolve ``input``; see :func:`conv2d` for the arguments."""
        requested_threads = kernel_threads(num_threads)
        x = _as_array(input, "input")
        nhwc = self.layout == "NHWC"
        if x.ndim not in (3, 4):
            dims = "(N, H, W, C) or 3 (H, W, C)" if nhwc else "(N, C, H, W) or 3 (C, H, W)"
            raise ValueError(
                f"input must have 4 dimensions {dims}"
                f"{' for layout=NHWC' if nhwc else ''}; got shape {x.shape}")
        batched = x.ndim == 4
        if not batched:
            x = x[np.newaxis]
        if nhwc:
            x = x.transpose(0, 3, 1, 2)  # an NCHW view, no copy yet
        n, channels, height, width = x.shape
        if channels != self.in_channels:
            raise ValueError(
                f"input has C={channels} channels but weight of shape "
                f"{self.weight.shape} with groups={self.groups} expects "
                f"C = weight.shape[1] * groups = {self.in_channels}")
        if height == 0 or width == 0:
            raise ValueError(
                f"input must have nonzero height and width; got shape "
                f"{np.shape(input)}")
        check_padding(self.padding, (height, width), self.padding_mode)
        out_h, out_w = self.output_shape((height, width))

        result_dtype, compute_dtype = _result_dtypes(x, self.weight, self.bias)
        nchw_shape = (n, self.out_channels, out_h, out_w)
        _check_sizes(nchw_shape, (n, channels, height, width), self.padding,
                     self.padding_mode, result_dtype)
        full_shape = (n, out_h, out_w, self.out_channels) if nhwc else nchw_shape
        shape = full_shape if batched else full_shape[1:]
        # Overlap is judged on the arrays themselves (memoryviews, __array__
        # objects and views of the caller's buffers included), not on what
        # the caller passed.
        result = _check_out(out, shape, result_dtype, (x, self.weight, self.bias))
        if result is None:
            result = np.empty(shape, result_dtype)
        if result.size == 0:
            return result

        algorithm, tile = self.choose_algorithm(n, (out_h, out_w), compute_dtype)
        lanes = algorithm == "direct" and self.uses_channel_lanes(n, (out_h, out_w),
                                                                  compute_dtype)
        (pad_top, _), (pad_left, _) = self.padding
        if lanes or (self.padding_mode != "zeros" and any(map(any, self.padding))):
            # One pass: layout, dtype and padding at once; then no implicit
            # padding (the channel-lanes kernel reads a padded copy in any mode).
            x = pad_nchw(x, self.padding, self.padding_mode, compute_dtype)
            pad_top = pad_left = 0
        else:
            x = np.ascontiguousarray(x, dtype=compute_dtype)
        result4d = result if batched else result[np.newaxis]
        result_nchw = result4d.transpose(0, 3, 1, 2) if nhwc else result4d
        # The kernels write C-contiguous NCHW in the compute dtype; anything
        # else goes through a buffer copied into the result at the end.
        target = (result_nchw if result.dtype == compute_dtype
                  and result_nchw.flags.c_contiguous
                  else np.empty(nchw_shape, compute_dtype))
        multiply_adds = (n * self.out_channels * out_h * out_w * (channels // self.groups)
                         * self.kernel_size[0] * self.kernel_size[1])
        threads = _useful_threads(requested_threads, multiply_adds,
                                  x.size + math.prod(nchw_shape))
        _forksafe.call(self._run, threads, x, target, "lanes" if lanes else algorithm, tile,
                       pad_top, pad_left, threads)
        if target is not result_nchw:
            result_nchw[...] = target
        return result

    def _run(self, x: NDArray[Any], target: NDArray[Any], kernel: str, tile: Optional[int],
             pad_top: int, pad_left: int, threads: int) -> None:
        """Run ``kernel`` ("direct", "lanes" or "winograd") into ``target``,
        from ``x`` in the compute dtype (padded already for "lanes")."""
        dtype = target.dtype
        relu = self.activation == "relu"
        if kernel == "lanes":
            packed, bias = self._packed("lanes", _direct.lanes_width(dtype), dtype, threads)
            _direct.conv2d_channel_lanes(
                x, packed, bias, target, *self.kernel_size, *self.stride, *self.dilation,
                threads, relu)
        elif kernel == "direct":
            weight, tails, padded_bias = self._packed("direct", None, dtype, threads)
            _direct.conv2d_direct(
                x, weight, tails, padded_bias, target, *self.kernel_size, *self.stride,
                pad_top, pad_left, *self.dilation, self.groups, threads, relu)
        else:
            packed, bias = self._packed("winograd", tile, dtype, threads)
            finite = _winograd.conv2d_winograd(x, packed, bias, target, tile, pad_top,
                                               pad_left, self.groups, threads, relu)
            if not finite and self.algorithm == "auto":
                # The transforms scale values up, so they can overflow where
                # the direct sum is finite (float32 data near 1e37), and "auto"
                # must not turn a finite result into Inf or NaN. NaN or Inf in
                # the data also land here: the direct kernel then puts them
                # exactly where PyTorch does (a tile spreads them further).
                self._run(x, target, "direct", None, pad_top, pad_left, threads)

    def choose_algorithm(self, batch: int, output_size: Tuple[int, int],
                         dtype: np.dtype[Any]) -> Tuple[str, Optional[int]]:
        """("direct", None) or ("winograd", m) for this call."""
        algorithm = self.algorithm
        if algorithm in WINOGRAD_TILES or algorithm == "winograd":
            if dtype.kind != "f":
                raise ValueError(
                    f"algorithm={algorithm!r} needs floating-point data; integer "
                    "convolutions are computed exactly by algorithm='direct'")
            if algorithm == "winograd":
                return "winograd", _winograd_tile_rule(self, batch, output_size, dtype) or 4
            return "winograd", WINOGRAD_TILES[algorithm]
        if algorithm == "direct" or not self.winograd_ok or dtype.kind != "f":
            return "direct", None
        tile = _winograd_tile_rule(self, batch, output_size, dtype)
        return ("winograd", tile) if tile else ("direct", None)

    def uses_channel_lanes(self, batch: int, output_size: Tuple[int, int],
                           dtype: np.dtype[Any]) -> bool:
        """Whether the direct kernel runs with output channels in the vector
        lanes (``_direct.conv2d_channel_lanes``): for a prepared layer
        without groups on a small image, where pixel panels would be mostly
        empty; it needs its own transposed copy of the weights. AVX-512
        only (lanes_width 0 below)."""
        out_h, out_w = output_size
        return (self.caches_weights and self.groups == 1 and dtype.kind == "f"
                and out_h * out_w <= _CHANNEL_LANES_PIXELS
                and self.out_channels >= _direct.lanes_width(dtype) > 0)

    def _packed(self, algorithm: str, tile: Optional[int], dtype: np.dtype[Any],
                threads: int) -> Tuple[NDArray[Any], ...]:
        key = (algorithm, tile, dtype.str)
        if self._cache is not None and key in self._cache:
            return self._cache[key]
        weight = np.ascontiguousarray(self.weight, dtype=dtype)
        bias = (np.zeros(self.out_channels, dtype) if self.bias is None
                else np.ascontiguousarray(self.bias, dtype=dtype))
        if algorithm == "direct":
            packed = _direct.pack_weights(weight, bias, self.groups)
        elif algorithm == "lanes":
            packed = (_direct.pack_channel_lanes(weight), bias)
        else:
            packed = (_winograd.pack_weights(weight, self.groups, tile, threads), bias)
        if self._cache is not None:
            self._cache[key] = packed
        return packed


# Output pixels per image up to which a prepared layer's direct convolution
# puts output channels in the vector lanes (ConvSpec.uses_channel_lanes), if
# they fill a tile's lanes. Measured against the pixel panels
# (benchmarks/channel_lanes.py): 0.97-1.43x as fast up to 196 pixels,
# 0.80-1.15x at 784; and, forced before the output-channel condition, 3x
# slower with 16 output channels (a quarter of the lanes).
_CHANNEL_LANES_PIXELS = 256


def _winograd_tile_rule(spec, batch, output_size, dtype):
    """Winograd tile size for ``algorithm="auto"``, or 0 for the direct kernel.

    Derived from ``benchmarks/tune_auto.py`` on the development machine (the
    tables are in benchmarks/auto_rule.md, the rule is summarised in the
    README). Winograd F(4x4) beats the direct kernel on most 3x3 layers with 8
    or more input channels. The direct kernel wins with 8-16 input channels on
    larger images, and where a large weight meets a tiny image (the
    transformed weights, 16/9 or 36/9 times the weights, are streamed from
    memory for a few pixels), from ``pixels * 2048 < pairs``: (1,512,512,7)
    prepared, beside PyTorch at 2 threads, F(2x2) 0.82 ms, direct 0.68 ms
    (with output channels in the lanes, see ConvSpec.uses_channel_lanes);
    (1,256,256,7): F(2x2) 0.12 ms, direct 0.21 ms.
    F(6x6) is never picked: it was at most ~8% faster than F(4x4) here, at
    twice the rounding error.

    A prepared layer (``Conv2d``) takes the tile size whose GEMMs are
    smallest: ``alpha^2`` products over the batch's tiles rounded up to
    panels of 16 (the narrow panel of the AVX-512 float32 GEMM), so F(2x2)
    for a single 7x7 image (16 tiles against F(4x4)'s 4 in a panel of 16)
    and F(4x4) from 14x14 or a batch of 7x7 images on. A one-off ``conv2d``
    call also pays for transforming the weights, which only the direct kernel
    avoids, and F(2x2)'s transform is the cheaper one.
    """
    out_h, out_w = output_size
    group_in = spec.in_channels // spec.groups
    group_out = spec.out_channels // spec.groups
    pixels = batch * out_h * out_w
    weight_pairs = group_in * group_out
    if group_in < 8 or (group_in <= 16 and pixels > 1024) or pixels * 2048 < weight_pairs:
        return 0
    if spec.caches_weights:
        def gemm_size(m):
            tiles = batch * -(-out_h // m) * -(-out_w // m)
            return (m + 2) ** 2 * -(-tiles // 16) * 16

        return 2 if gemm_size(2) < gemm_size(4) else 4
    if pixels <= 196 and weight_pairs >= 128 * 128:
        return 0
    if pixels <= 400 or (pixels <= 1024 and weight_pairs >= 256 * 256):
        return 2
    return 4


# A call starts a thread per this much work at most, counted as the direct
# sum's multiply-adds plus 16 per element read or written (what bounds the
# memory-bound depthwise layers): waking a second thread costs tens of
# microseconds on an idle machine and more when the cores are busy (libgomp's
# hand-off waits for a descheduled thread). `python benchmarks/small_calls.py
# [--busy 2]` at fc9e40b, 3x3 layers, 1 against 2 threads in ms, median idle /
# mean with both cores busy: 0.12 M multiply-adds 0.032, 0.027 / 0.083, 0.181;
# 0.45 M 0.025, 0.025 / 0.053, 0.124; 2.1 M 0.044, 0.035 / 0.115, 0.202;
# 8.3 M 0.112, 0.072 / 0.249, 0.370. Depthwise (1,512,512,14), 0.9 M
# multiply-adds and 0.2 M elements: 0.088 ms at 1 thread, 0.052 at 2.
_MIN_WORK_PER_THREAD = 2**20
_WORK_PER_ELEMENT = 16


def _useful_threads(requested: int, multiply_adds: int, elements: int) -> int:
    """Threads for a call of ``multiply_adds`` over ``elements`` of input and
    output when ``requested`` are asked for (OPENMP_DEFAULT: OpenMP's default
    now, which follows ``OMP_NUM_THREADS`` and ``threadpoolctl`` limits)."""
    if requested == OPENMP_DEFAULT:
        requested = _openmp_helpers.default_num_threads()
    work = multiply_adds + _WORK_PER_ELEMENT * elements
    return max(1, min(requested, work // _MIN_WORK_PER_THREAD))


# The most bytes (and elements) one array can have.
_INTP_MAX = int(np.iinfo(np.intp).max)


def _check_sizes(out_shape: Tuple[int, ...], in_shape: Tuple[int, ...],
                 padding: Tuple[Tuple[int, int], Tuple[int, int]], padding_mode: str,
                 dtype: np.dtype[Any]) -> None:
    """ValueError naming ``padding`` when the output (or the padded copy of
    the input that a padding mode other than zeros builds) is larger than
    any array can be: only padding makes a shape grow past its input."""
    (top, bottom), (left, right) = padding
    n, channels, height, width = in_shape
    padded = (n, channels, height + top + bottom, width + left + right)
    for what, shape in (("an output", out_shape), ("a padded input", padded)):
        if what == "a padded input" and padding_mode == "zeros":
            continue
        if math.prod(shape) * dtype.itemsize > _INTP_MAX or max(shape) > _INTP_MAX:
            raise ValueError(
                f"padding {padding} gives {what} of shape {shape}, larger than an "
                "array can be")


def _as_array(value: Any, name: str) -> NDArray[Any]:
    try:
        array = np.asarray(value)
    except ValueError as error:  # e.g. a ragged nested list
        raise ValueError(f"{name} cannot be converted to an array: {error}") from None
    kind = array.dtype.kind
    if kind not in _INTEGER_KINDS + "f":
        raise TypeError(
            f"{name} must hold real numbers (bool, integer or float); got dtype "
            f"{array.dtype}")
    if kind == "f" and array.dtype.itemsize > 8:
        raise TypeError(f"{name} dtype {array.dtype} is not supported; use float64")
    return array


def _result_dtypes(x: NDArray[Any], w: NDArray[Any], b: Optional[NDArray[Any]]
                   ) -> Tuple[np.dtype[Any], np.dtype[Any]]:
    """(dtype returned, dtype computed in) by the rules of the docstring."""
    operands = [a for a in (x, w, b) if a is not None]
    floats = [a.dtype for a in operands if a.dtype.kind == "f"]
    if not floats:
        return np.dtype(np.int64), np.dtype(np.int64)
    result = np.result_type(*floats)
    compute = np.dtype(np.float32) if result == np.float16 else result
    return result, compute


# Largest stride, padding or dilation: shapes derived from it still fit the
# kernels' signed 64-bit indices.
_INDEX_MAX = 2**62


def _integer(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, not bool ({value!r})")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an int or a tuple of ints; got {value!r}") from None


def _pair(value: Any, name: str, minimum: int) -> Tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(
                f"{name} must be an int or a pair (h, w); got {len(value)} "
                f"values {tuple(value)!r}")
        pair = (_integer(value[0], name), _integer(value[1], name))
    else:
        v = _integer(value, name)
        pair = (v, v)
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value!r}")
    if max(pair) > _INDEX_MAX:
        raise ValueError(
            f"{name} must be at most 2**62 (the kernels index with 64-bit "
            f"integers); got {value!r}")
    return pair


def _padding(padding: Any, strides: Tuple[int, int], total_same: Tuple[int, int]
             ) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """((top, bottom), (left, right)) for any accepted ``padding`` value."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if strides != (1, 1):
                raise ValueError(
                    f"padding='same' needs stride 1, as in PyTorch; got stride {strides}")
            # PyTorch puts the odd extra row/column at the bottom/right.
            total_h, total_w = total_same
            return ((total_h // 2, total_h - total_h // 2),
                    (total_w // 2, total_w - total_w // 2))
        raise ValueError(
            f"padding must be an int, a pair, 'valid' or 'same'; got {padding!r}")
    pad_h, pad_w = _pair(padding, "padding", minimum=0)
    return (pad_h, pad_h), (pad_w, pad_w)


def _choice(value: Any, choices: Tuple[Any, ...], name: str) -> Any:
    """``value`` if it is one of ``choices`` (a ValueError lists them)."""
    if not (value is None or isinstance(value, str)) or value not in choices:
        raise ValueError(
            f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def _check_out(out: Any, shape: Sequence[int], dtype: np.dtype[Any],
               operands: Sequence[Any]) -> Optional[NDArray[Any]]:
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise ValueError(f"out must be a numpy.ndarray; got {type(out).__name__}")
    if out.shape != tuple(shape) or out.dtype != dtype:
        raise ValueError(
            f"out must have shape {tuple(shape)} and dtype {dtype}; got shape "
            f"{out.shape} and dtype {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    for name, operand in zip(("input", "weight", "bias"), operands):
        if isinstance(operand, np.ndarray) and np.may_share_memory(out, operand):
            raise ValueError(f"out must not share memory with {name}")
    return out
