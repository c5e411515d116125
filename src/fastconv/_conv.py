"""conv2d: argument validation, dtype rules and algorithm choice (private).

Everything about shapes and types is checked here, in Python, so the compiled
kernels (:mod:`fastconv._direct`, :mod:`fastconv._winograd`) receive only
C-contiguous NCHW arrays of one dtype and a consistent geometry.

A convolution is split into the weight side (:class:`ConvSpec`: weights,
bias, stride, padding and padding mode, dilation, groups, data layout and
activation, validated once, with a cache of the weights packed or
transformed for each algorithm) and the call side (:meth:`ConvSpec.apply`:
the input, the output and the algorithm for its shape). :func:`conv2d`
builds a throw-away spec per call (a copy of a remembered one when the
arguments repeat); :class:`fastconv.Conv2d` keeps one.
"""

from __future__ import annotations

from typing import Any, Dict, Literal, Optional, Sequence, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import _forksafe, _openmp_helpers
from ._checks import (_as_array, _check_algorithm, _check_out, _check_sizes, _choice,
                      _conv_params, _padding, _result_dtypes)
from ._execute import PackedWeights, execute
from ._isa import active_isa  # noqa: F401  (selects the kernels at import)
from ._padding import PADDING_MODES, check_padding, check_padding_mode, pad_nchw
from ._plan import Geometry, Plan, make_plan, plan_threads
from ._threads import OPENMP_DEFAULT, kernel_threads

__all__ = ["conv2d", "plan", "Plan", "ConvSpec", "ALGORITHMS", "ACTIVATIONS", "LAYOUTS", "PADDING_MODES"]

WINOGRAD_TILES = {"winograd2": 2, "winograd4": 4, "winograd6": 6}
ALGORITHMS = ("auto", "direct", "winograd") + tuple(WINOGRAD_TILES) + ("fft",)
#: Data layouts of the input and output; the weight is always (K, C/groups, kH, kW).
LAYOUTS = ("NCHW", "NHWC")
#: Activations fused into the kernels' output stage.
ACTIVATIONS = (None, "relu")

IntPair = Union[int, Tuple[int, int]]
PaddingArg = Union[int, Tuple[int, int], Literal["valid", "same"]]
Algorithm = Literal["auto", "direct", "winograd", "winograd2", "winograd4", "winograd6", "fft"]
Layout = Literal["NCHW", "NHWC"]
Activation = Optional[Literal["relu"]]
PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]


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
        ``"direct"``; ``"winograd"`` (Winograd minimal filtering, 3x3, 5x5
        and 7x7 kernels with stride 1 and dilation 1 only, float dtypes, tile
        size chosen by shape) or ``"winograd2"``, ``"winograd4"``,
        ``"winograd6"`` for output tiles F(2x2), F(4x4), F(6x6) (3x3 kernels:
        all three; 5x5: F(2x2) and F(4x4); 7x7: F(2x2)); ``"fft"`` (overlap-save FFT convolution,
        stride 1, float dtypes; SciPy's FFTs when SciPy is installed, else
        NumPy's; error within ``2 * eps * max(1, log2(window points)) *
        max(conv(|x|, |w|))``); ``"auto"`` picks the fastest for the shape
        (see docs/algorithms.md; :func:`fastconv.plan` says what a call will
        run). A forced Winograd or FFT call can overflow to Inf or NaN where
        the direct sum is finite (float32 data near 1e37), and an FFT spreads
        a NaN or Inf over its window; ``"auto"`` then recomputes with the
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
    w = _as_array(weight, "weight")
    b = None if bias is None else _as_array(bias, "bias")
    key = _call_key(w, b, stride, padding, dilation, groups, algorithm, padding_mode, layout,
                    activation)
    template = _CALL_SPECS.get(key) if key is not None else None
    if template is not None:
        spec = template.with_arrays(w, b)
        return spec.apply(input, num_threads=num_threads, out=out)
    spec = ConvSpec(w, b, stride, padding, dilation, groups, algorithm=algorithm,
                    cache=False, padding_mode=padding_mode, layout=layout,
                    activation=activation)
    result = spec.apply(input, num_threads=num_threads, out=out)
    if key is not None:
        if len(_CALL_SPECS) >= _CALL_SPECS_MAX:
            _CALL_SPECS.clear()
        _CALL_SPECS[key] = spec.template()
    return result


# conv2d's validated specs by their arguments' types and values (the arrays'
# shapes and dtypes, not their data): a loop of calls of one shape checks its
# parameters and derives its geometry once. The Python work of a call,
# evicted from the caches by the kernel before it, took 40-110 us (on
# 0.2-1.5 ms layers at 1 thread) against the compiled driver's own time.
_CALL_SPECS: Dict[Tuple[Any, ...], "ConvSpec"] = {}
_CALL_SPECS_MAX = 256


def _plain(value: Any) -> bool:
    """An int, a str or None, or a tuple of them (exact types: a bool or a
    NumPy integer is left to the checks, which must see it)."""
    kind = type(value)
    if kind is tuple:
        return all(type(v) is int for v in value)
    return kind is int or kind is str or value is None


def _call_key(w: NDArray[Any], b: Optional[NDArray[Any]], *params: Any
              ) -> Optional[Tuple[Any, ...]]:
    """What a ConvSpec's checks and derived values depend on, or None when
    an argument is not plain (a list, a NumPy scalar): that call is checked
    in full and not remembered."""
    if not all(map(_plain, params)):
        return None
    return (w.shape, w.dtype, None if b is None else (b.shape, b.dtype)) + params


def plan(input_shape: Sequence[int], weight_shape: Sequence[int], *, stride: IntPair = 1,
         padding: PaddingArg = 0, dilation: IntPair = 1, groups: int = 1,
         dtype: DTypeLike = "float32", algorithm: Algorithm = "auto",
         num_threads: Optional[int] = None, prepared: bool = False,
         layout: Layout = "NCHW") -> Plan:
    """What :func:`conv2d` (or a :class:`fastconv.Conv2d` layer) runs for
    these shapes: the algorithm, the kernel path, the threads and the memory.

    Nothing is computed or allocated; the arguments are checked as
    :func:`conv2d` checks them.

    Parameters
    ----------
    input_shape : tuple of ints
        (N, C, H, W) or (C, H, W); (N, H, W, C) or (H, W, C) with
        ``layout="NHWC"``.
    weight_shape : tuple of 4 ints
        (K, C // groups, kH, kW).
    stride, padding, dilation, groups, algorithm, num_threads, layout
        As for :func:`conv2d`. ``num_threads`` is resolved as a call would
        resolve it now (the active :class:`fastconv.threads` block, the
        default, ``OMP_NUM_THREADS``).
    dtype : dtype, default="float32"
        The dtype of the input and the weight.
    prepared : bool, default=False
        Plan a call of a :class:`fastconv.Conv2d` layer, which keeps its
        packed or transformed weights (and has paths of its own) rather than
        a one-off :func:`conv2d` call.

    Returns
    -------
    plan : Plan
        A frozen dataclass: ``algorithm`` ("direct", "winograd" or "fft"),
        ``path`` ("planes", "rows", "packed", "shared_columns",
        "channel_lanes", "winograd_tiles", "winograd_cooperative", or
        "fft_scipy" / "fft_numpy": the FFT library that runs), ``tile``
        (Winograd's m of F(m x m, r x r), else None), ``threads``,
        ``workspace_bytes`` (the kernel's scratch for all its threads, plus
        the packed weights unless ``prepared``) and ``blocking`` (how the
        path cuts the work; the FFT's window and tile sizes).

    Examples
    --------
    >>> import fastconv
    >>> p = fastconv.plan((1, 64, 56, 56), (64, 64, 3, 3), padding=1, num_threads=1)
    >>> p.algorithm, p.path, p.tile, p.threads
    ('winograd', 'winograd_tiles', 4, 1)
    """
    weight_shape = tuple(weight_shape)
    dtype = np.dtype(dtype)
    if len(weight_shape) != 4:
        raise ValueError(
            f"weight_shape must have 4 dimensions (K, C/groups, kH, kW); got {weight_shape}")
    spec = ConvSpec(np.broadcast_to(np.zeros((), dtype), weight_shape), None, stride, padding,
                    dilation, groups, algorithm=algorithm, cache=prepared, layout=layout)
    geo = spec.geometry(tuple(input_shape))
    probe = np.empty(0, dtype)
    compute_dtype = _result_dtypes(probe, probe, None)[1]
    return spec.plan(geo, compute_dtype, kernel_threads(num_threads))


class ConvSpec:
    """A convolution's weights and parameters, validated once; its calls
    (:meth:`apply`) check the input, plan (:mod:`fastconv._plan`) and run
    the plan (:mod:`fastconv._execute`).

    Parameters are those of :func:`conv2d`. With ``cache=True`` (a prepared
    layer) the packed or Winograd-transformed weights are kept per kernel
    layout and dtype, so repeated calls pay for them once.
    """

    def __init__(self, weight: ArrayLike, bias: Optional[ArrayLike] = None,
                 stride: IntPair = 1, padding: PaddingArg = 0, dilation: IntPair = 1,
                 groups: int = 1, *, algorithm: str = "auto", cache: bool = True,
                 padding_mode: str = "zeros", layout: str = "NCHW",
                 activation: Optional[str] = None, spatial: int = 2) -> None:
        self.algorithm: str = _choice(algorithm, ALGORITHMS, "algorithm")
        self.padding_mode: str = check_padding_mode(padding_mode)
        self.layout: str = _choice(layout, LAYOUTS, "layout")
        self.activation: Optional[str] = _choice(activation, ACTIVATIONS, "activation")
        w = _as_array(weight, "weight")
        b = None if bias is None else _as_array(bias, "bias")
        if w.ndim != 4:
            raise ValueError(
                f"weight must have 4 dimensions (K, C/groups, kH, kW); got shape {w.shape}")
        self.stride, self.dilation, self.groups = _conv_params(stride, dilation, groups)
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
        # conv1d's spec (spatial=1) holds its weight with a kernel height of
        # 1 and speaks of the shapes its caller passed.
        self.spatial = spatial
        self.weight_shape = w.shape if spatial == 2 else w.shape[:2] + w.shape[3:]
        self.out_channels: int = out_channels
        self.in_channels: int = group_in * self.groups
        self.kernel_size: Tuple[int, int] = (kernel_h, kernel_w)
        _check_algorithm(algorithm, self.kernel_size, self.stride, self.dilation)
        self.caches_weights = bool(cache)
        self.packed = PackedWeights(w, b, self.groups, cache=self.caches_weights,
                                    dilation=self.dilation)
        # What the planner is asked for: the algorithm option and whether the
        # weights are kept. A subclass may plan otherwise (fastconv.dask's
        # chunks force the whole array's algorithm).
        self.plan_algorithm, self.plan_prepared = algorithm, self.caches_weights
        self._last_geometry: Tuple[Any, Any] = (None, None)

    def _shallow_copy(self) -> "ConvSpec":
        # copy.copy without its __reduce_ex__ round trip: this is per call.
        spec = object.__new__(type(self))
        spec.__dict__.update(self.__dict__)
        return spec

    def template(self) -> "ConvSpec":
        """This spec without its arrays (see :meth:`with_arrays`): what
        conv2d keeps of a call, so that it holds no caller's data."""
        spec = self._shallow_copy()
        del spec.weight, spec.bias, spec.packed
        return spec

    def with_arrays(self, weight: NDArray[Any], bias: Optional[NDArray[Any]]) -> "ConvSpec":
        """A copy of this spec, its checks and geometry cache included, for
        other arrays of the same shapes and dtypes."""
        spec = self._shallow_copy()
        spec.weight, spec.bias = weight, bias
        spec.packed = PackedWeights(weight, bias, self.groups, cache=self.caches_weights,
                                    dilation=self.dilation)
        return spec

    # -- shapes -------------------------------------------------------------

    def output_shape(self, input_shape: Sequence[int]) -> Tuple[int, int]:
        """(H_out, W_out) for an input of spatial size ``input_shape``."""
        height, width = input_shape
        (pad_top, pad_bottom), (pad_left, pad_right) = self.padding
        span = (self.dilation[0] * (self.kernel_size[0] - 1) + 1,
                self.dilation[1] * (self.kernel_size[1] - 1) + 1)
        padded = (height + pad_top + pad_bottom, width + pad_left + pad_right)
        if span[0] > padded[0] or span[1] > padded[1]:
            if self.spatial == 1:
                raise ValueError(
                    f"kernel size {self.kernel_size[1]} with dilation {self.dilation[1]} "
                    f"spans {span[1]}, larger than the padded input length {padded[1]}")
            raise ValueError(
                f"kernel size {self.kernel_size} with dilation {self.dilation} spans "
                f"{span}, larger than the padded input {padded}")
        return ((padded[0] - span[0]) // self.stride[0] + 1,
                (padded[1] - span[1]) // self.stride[1] + 1)

    def geometry(self, input_shape: Sequence[int]) -> Geometry:
        """The geometry of a call on an input of ``input_shape`` (in this
        spec's layout, batched or not); a ValueError names what is wrong.
        A layer's calls mostly repeat one shape: its geometry is kept."""
        shape = tuple(input_shape)
        last_shape, last_geo = self._last_geometry  # one read: threads share a layer
        if shape == last_shape:
            return last_geo
        geo = self._geometry(shape)
        self._last_geometry = (shape, geo)
        return geo

    def _geometry(self, shape: Tuple[int, ...]) -> Geometry:
        channels_last = self.layout == "NHWC"
        batched_ndim = 2 + self.spatial
        if len(shape) not in (batched_ndim - 1, batched_ndim):
            raise ValueError(f"input must have {batched_ndim} dimensions "
                             f"{self._dims_text()}; got shape {shape}")
        channels = shape[-1] if channels_last else shape[-1 - self.spatial]
        if channels != self.in_channels:
            raise ValueError(self._channels_message(shape, channels))
        sizes = shape[-1 - self.spatial:-1] if channels_last else shape[-self.spatial:]
        if 0 in sizes:
            what = "length" if self.spatial == 1 else "height and width"
            raise ValueError(f"input must have nonzero {what}; got shape {shape}")
        check_padding(self.padding[-self.spatial:], sizes, self.padding_mode,
                      names=("length",) if self.spatial == 1 else ("height", "width"))
        height, width = (1,) + sizes if self.spatial == 1 else sizes
        out_h, out_w = self.output_shape((height, width))
        (pad_top, pad_bottom), (pad_left, pad_right) = self.padding
        return Geometry(shape[0] if len(shape) == batched_ndim else 1, channels, height, width,
                        self.out_channels, out_h, out_w, *self.kernel_size, *self.stride,
                        pad_top, pad_bottom, pad_left, pad_right, *self.dilation, self.groups)

    def _dims_text(self) -> str:
        channels_last = self.layout == "NHWC"
        if self.spatial == 1:
            return "(N, L, C) or 2 (L, C)" if channels_last else "(N, C, L) or 2 (C, L)"
        if channels_last:
            return "(N, H, W, C) or 3 (H, W, C) for layout=NHWC"
        return "(N, C, H, W) or 3 (C, H, W)"

    def _channels_message(self, shape: Tuple[int, ...], channels: int) -> str:
        message = (f"input has C={channels} channels but weight of shape "
                   f"{self.weight_shape} with groups={self.groups} expects "
                   f"C = weight.shape[1] * groups = {self.in_channels}")
        if channels % self.groups:
            message += f" (groups={self.groups} must divide the input channels)"
        if self.layout == "NCHW" and shape[-1] == self.in_channels:
            last = "NLC" if self.spatial == 1 else "NHWC"
            message += (f"; the input's last axis has that size: for channels-last "
                        f"data pass layout='{last}'")
        return message

    def _result_shape(self, geo: Geometry, batched: bool) -> Tuple[int, ...]:
        """The result's shape in this spec's layout (and number of spatial
        axes), batched or not."""
        sizes = (geo.out_w,) if self.spatial == 1 else (geo.out_h, geo.out_w)
        if self.layout == "NHWC":
            shape = (geo.batch,) + sizes + (geo.out_channels,)
        else:
            shape = (geo.batch, geo.out_channels) + sizes
        return shape if batched else shape[1:]

    def _as_nchw(self, array: NDArray[Any], batched: bool) -> NDArray[Any]:
        """A view of an input or result in this spec's layout as 4-D NCHW."""
        if not batched:
            array = array[np.newaxis]
        if self.spatial == 1:  # a height of 1
            array = array[:, np.newaxis] if self.layout == "NHWC" else array[:, :, np.newaxis]
        return array.transpose(0, 3, 1, 2) if self.layout == "NHWC" else array

    # -- the call -----------------------------------------------------------

    def plan(self, geo: Geometry, dtype: np.dtype[Any], requested_threads: int) -> Plan:
        """What a call of geometry ``geo`` in ``dtype`` runs."""
        if requested_threads == OPENMP_DEFAULT:
            requested_threads = _openmp_helpers.default_num_threads()
        return make_plan(geo, dtype, plan_threads(requested_threads, geo),
                         algorithm=self.plan_algorithm, prepared=self.plan_prepared)

    def apply(self, input: ArrayLike, *, num_threads: Optional[int] = None,
              out: Optional[NDArray[Any]] = None) -> NDArray[Any]:
        """Convolve ``input``; see :func:`conv2d` for the arguments."""
        requested_threads = kernel_threads(num_threads)
        x = _as_array(input, "input")
        geo = self.geometry(x.shape)
        batched = x.ndim == 2 + self.spatial
        x = self._as_nchw(x, batched)  # a view, no copy yet
        result_dtype, compute_dtype = _result_dtypes(x, self.weight, self.bias)
        nchw_shape = (geo.batch, geo.out_channels, geo.out_h, geo.out_w)
        _check_sizes(nchw_shape, x.shape, self.padding, self.padding_mode, result_dtype)
        # Overlap is judged on the arrays themselves (memoryviews, __array__
        # objects and views of the caller's buffers included), not on what
        # the caller passed.
        shape = self._result_shape(geo, batched)
        result = _check_out(out, shape, result_dtype, (x, self.weight, self.bias))
        if result is None:
            result = np.empty(shape, result_dtype)
        if result.size == 0:
            return result
        plan = self.plan(geo, compute_dtype, requested_threads)
        (pad_top, _), (pad_left, _) = self.padding
        if plan.path == "channel_lanes" or (self.padding_mode != "zeros"
                                            and any(map(any, self.padding))):
            # One pass: layout, dtype and padding at once; then no implicit
            # padding (the channel-lanes kernel reads a padded copy in any mode).
            x = pad_nchw(x, self.padding, self.padding_mode, compute_dtype)
            pad_top = pad_left = 0
        else:
            x = np.ascontiguousarray(x, dtype=compute_dtype)
        result_nchw = self._as_nchw(result, batched)
        # The kernels write C-contiguous NCHW in the compute dtype; anything
        # else goes through a buffer copied into the result at the end.
        target = (result_nchw if result.dtype == compute_dtype
                  and result_nchw.flags.c_contiguous
                  else np.empty(nchw_shape, compute_dtype))
        _forksafe.call(execute, plan.threads, plan, self, geo, x, target, pad_top, pad_left)
        if target is not result_nchw:
            result_nchw[...] = target
        return result
