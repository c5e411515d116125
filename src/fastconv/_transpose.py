"""conv_transpose2d on the compiled conv2d: the polyphase decomposition (private).

A transposed convolution scatters each input pixel, times the kernel, into
the output with stride ``s``: ``out[oh] += x[ih] * w[kh]`` for
``oh = ih * s - p + kh * d``. Output row ``oh`` of residue ``rho = oh % s``
(its *phase*) only receives the taps ``kh`` with ``kh * d - p = rho (mod s)``,
and reads the input at ``ih = v + e(kh)``, ``v = oh // s``,
``e(kh) = (rho + p - kh * d) / s``: a stride-1 correlation of the input with
the phase's taps in reverse order, dilated by ``d / gcd(d, s)``, with top
padding ``-min e``. So the transposed convolution is ``s_h * s_w`` stride-1
convolutions on the input (no zero-inserted input, no multiply by zero),
each writing every ``s``-th output row and column.

Phases whose taps sit at the same input offsets (all of them when ``k`` is
a multiple of ``s`` and ``d = 1``: U-Net's k2 s2 and k4 s2 p1) run as one
conv2d call with their sub-kernels stacked as output channels (one larger
GEMM), and the result is copied into its strided place in the output. At
stride 1 there is one phase: a conv2d with the weight transposed per group
and flipped, written straight into the result (Winograd for 3x3, 5x5 and
7x7 kernels, as the planner decides). Padding larger than the kernel's reach (negative
padding of that conv2d) crops the input.
"""

from __future__ import annotations

import copy
import itertools
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._checks import (_INTP_MAX, _as_array, _check_algorithm, _check_out, _choice,
                      _conv_params, _pair, _result_dtypes)
from ._conv import ALGORITHMS, LAYOUTS, ConvSpec
from ._plan import Plan

__all__ = ["conv_transpose2d", "plan", "OPERATIONS", "TransposeSpec", "output_size"]

Pads = Tuple[Tuple[int, int], Tuple[int, int]]


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int,
                output_padding: int) -> int:
    """The output length of a transposed convolution along one axis."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


AxisPhase = Tuple[int, Tuple[int, ...], int]


def _axis_phases(kernel: int, stride: int, pad_before: int, dilation: int
                 ) -> Dict[int, List[AxisPhase]]:
    """The phases of one axis grouped by their number of taps: per count,
    the residues with their taps (kernel indices from the largest, i.e.
    from the smallest input offset) and first input offset. Residues without
    taps are left out (their outputs are the bias). Phases of a group whose
    first offsets differ (k4 s2 p1) run as one conv whose outputs are
    shifted per phase, a row or column more than each phase needs."""
    groups: Dict[int, List[AxisPhase]] = {}
    for rho in range(stride):
        taps = tuple(kh for kh in range(kernel - 1, -1, -1)
                     if (kh * dilation - pad_before - rho) % stride == 0)
        if taps:
            first = (rho + pad_before - taps[0] * dilation) // stride
            groups.setdefault(len(taps), []).append((rho, taps, first))
    return groups


def _taps_slice(taps: Tuple[int, ...]) -> slice:
    """``taps`` (descending, evenly spaced, down to the smallest in its
    class) as a slice of the kernel axis."""
    if len(taps) == 1:
        return slice(taps[0], taps[0] + 1)
    return slice(taps[0], None, taps[1] - taps[0])


def blocked_copy(target: NDArray[Any], source: NDArray[Any], axis: int,
                 block: int = 64) -> None:
    """``target[...] = source`` a block of ``axis`` at a time: a transposed
    copy with a short inner axis (kernel taps) runs several times faster
    when both sides of a block stay in cache."""
    index: List[Any] = [slice(None)] * source.ndim
    for start in range(0, source.shape[axis], block):
        index[axis] = slice(start, start + block)
        target[tuple(index)] = source[tuple(index)]


# Weights smaller than this are rearranged on one thread: a team's start
# would cost more than the copy.
GATHER_THREADS_BYTES = 1 << 18


def gather_taps(target: NDArray[Any], source: NDArray[Any], strides: Tuple[int, int, int],
                tap_offsets: Sequence[int], threads: int) -> bool:
    """``target[o, r, c, t] = source.flat[o*s_o + r*s_r + c*s_c + tap_offsets[t]]``
    by the compiled blocked copy (:func:`fastconv._direct_gemm.gather_taps`,
    threads sharing the rows), for the weight rearrangements. Returns False,
    having done nothing, where it does not apply (a source that is not
    C-contiguous, such as the broadcast zeros of :func:`plan`; another
    dtype, elements of other sizes than 1, 2, 4 or 8 bytes, more than 256
    taps): the caller then copies with NumPy."""
    if (target.dtype != source.dtype or source.dtype.hasobject
            or source.dtype.itemsize not in (1, 2, 4, 8) or len(tap_offsets) > 256
            or not source.flags.c_contiguous or target.ndim != 4
            or (target.shape[3] > 1 and target.strides[3] != target.itemsize)):
        return False
    from . import _direct_gemm, _forksafe
    threads = threads if source.nbytes >= GATHER_THREADS_BYTES else 1
    _forksafe.call(_direct_gemm.gather_taps, threads, source, target, strides,
                   np.asarray(tap_offsets, np.intp), threads)
    return True


def _phase_length(length: int, rho: int, stride: int) -> int:
    """Outputs of residue ``rho`` in an axis of ``length`` outputs."""
    return max(0, -(-(length - rho) // stride))


class _PhaseGroup:
    """Phases (products of per-axis residues) computed by one conv2d call."""

    def __init__(self, rows: List[AxisPhase], cols: List[AxisPhase], spec: ConvSpec) -> None:
        self.rows = [rho for rho, _, _ in rows]
        self.cols = [rho for rho, _, _ in cols]
        # The conv reads from the smallest first offset; a phase with a
        # larger one finds its outputs that many rows (columns) further.
        self.first = (min(first for _, _, first in rows), min(first for _, _, first in cols))
        self.shifts = ({rho: first - self.first[0] for rho, _, first in rows},
                       {rho: first - self.first[1] for rho, _, first in cols})
        self.spec = spec
        self._padded: Dict[Pads, ConvSpec] = {}

    def with_padding(self, pads: Pads) -> ConvSpec:
        """The group's spec with implicit zero padding ``pads`` (sharing its
        packed weights)."""
        if pads == self.spec.padding:
            return self.spec
        spec = self._padded.get(pads)
        if spec is None:
            spec = copy.copy(self.spec)
            spec.padding, spec._last_geometry = pads, (None, None)
            if len(self._padded) < 16:
                self._padded[pads] = spec
        return spec


class TransposeSpec:
    """A transposed convolution's weights and parameters, validated once.

    Parameters are those of :func:`fastconv.conv_transpose2d`, with the
    padding before the first row and column (``pad_before``); the output
    size is given per call (:meth:`apply`). ``cache=True`` keeps each phase
    group's packed weights (a prepared :class:`fastconv.ConvTranspose2d`).
    ``threads`` (default: as a call without ``num_threads``) rearrange the
    weights into the phases' sub-kernels.
    """

    def __init__(self, weight: ArrayLike, bias: Optional[ArrayLike], stride: Any,
                 pad_before: Tuple[int, int], dilation: Any, groups: Any, *,
                 algorithm: str = "auto", cache: bool = False, layout: str = "NCHW",
                 threads: Optional[int] = None) -> None:
        _choice(algorithm, ALGORITHMS, "algorithm")
        self.layout: str = _choice(layout, LAYOUTS, "layout")
        w = _as_array(weight, "weight")
        b = None if bias is None else _as_array(bias, "bias")
        if w.ndim != 4:
            raise ValueError("weight must have 4 dimensions (C_in, C_out/groups, kH, kW); "
                             f"got shape {w.shape}")
        self.stride, self.dilation, self.groups = _conv_params(stride, dilation, groups)
        in_channels, group_out, kernel_h, kernel_w = map(int, w.shape)
        if w.size == 0:
            raise ValueError(f"weight must not be zero-sized; got shape {w.shape}")
        if in_channels % self.groups:
            raise ValueError(f"groups={self.groups} must divide the input channels "
                             f"C_in={in_channels} (weight.shape[0])")
        self.in_channels, self.out_channels = in_channels, group_out * self.groups
        if b is not None and b.shape != (self.out_channels,):
            raise ValueError(
                f"bias must have shape ({self.out_channels},) = (weight.shape[1] * groups,); "
                f"got shape {b.shape}")
        self.kernel_size = (kernel_h, kernel_w)
        _check_algorithm(algorithm, self.kernel_size, self.stride, self.dilation)
        self.algorithm = algorithm
        self.weight, self.bias = w, b
        self.pad_before = pad_before
        self.groups_of_phases = self._phase_groups(
            cache, _requested_threads(None) if threads is None else threads)

    def _phase_groups(self, cache: bool, threads: int) -> List[_PhaseGroup]:
        """One conv2d spec per group of phases with the same input offsets,
        its sub-kernels stacked as output channels (group-major, as conv2d's
        groups need), rearranged on ``threads`` threads."""
        groups = self.groups
        in_g, out_g = self.in_channels // groups, self.out_channels // groups
        w = self.weight.reshape(groups, in_g, out_g, *self.kernel_size)
        kernel_w, taps = self.kernel_size[1], self.kernel_size[0] * self.kernel_size[1]
        axes = [_axis_phases(k, s, p, d) for k, s, p, d in
                zip(self.kernel_size, self.stride, self.pad_before, self.dilation)]
        steps = [d // math.gcd(d, s) for s, d in zip(self.stride, self.dilation)]
        result = []
        for (taps_h, rows), (taps_w, cols) in itertools.product(axes[0].items(),
                                                                axes[1].items()):
            phases = list(itertools.product(rows, cols))
            # (groups, phases, out_g, in_g, Jh, Jw) -> (groups * phases * out_g, in_g, Jh, Jw);
            # a phase's taps are every s/gcd(s, d)-th from its largest, a slice.
            stacked = np.empty((groups, len(phases), out_g, in_g, taps_h, taps_w), w.dtype)
            for index, ((_, row_taps, _), (_, col_taps, _)) in enumerate(phases):
                offsets = [i * kernel_w + j for i in row_taps for j in col_taps]
                if not gather_taps(stacked[:, index].reshape(groups, out_g, in_g, -1), w,
                                   (in_g * out_g * taps, taps, out_g * taps), offsets,
                                   threads):
                    sub = w[..., _taps_slice(row_taps), :][..., _taps_slice(col_taps)]
                    blocked_copy(stacked[:, index], sub.transpose(0, 2, 1, 3, 4), axis=2)
            stacked = stacked.reshape(-1, in_g, taps_h, taps_w)
            bias = None
            if self.bias is not None:
                bias = np.tile(self.bias.reshape(groups, 1, out_g),
                               (1, len(phases), 1)).reshape(-1)
            spec = ConvSpec(stacked, bias, 1, 0, (steps[0], steps[1]), groups,
                            algorithm=self.algorithm, cache=cache)
            result.append(_PhaseGroup(rows, cols, spec))
        return result

    # -- shapes -------------------------------------------------------------

    def _split(self, shape: Tuple[int, ...]) -> Tuple[bool, int, int, int, int]:
        """(batched, N, C, H, W) of an input of ``shape`` in this layout."""
        if len(shape) not in (3, 4):
            dims = ("(N, H, W, C) or 3 (H, W, C)" if self.layout == "NHWC"
                    else "(N, C, H, W) or 3 (C, H, W)")
            raise ValueError(f"input must have 4 dimensions {dims}; got shape {shape}")
        batched = len(shape) == 4
        full = shape if batched else (1,) + shape
        n, c, h, w = ((full[0], full[3], full[1], full[2]) if self.layout == "NHWC"
                      else full)
        if c != self.in_channels:
            message = (f"input has C={c} channels but the transposed convolution's weight "
                       f"of shape {self.weight.shape} expects C = weight.shape[0] = "
                       f"{self.in_channels}")
            if self.layout == "NCHW" and shape[-1] == self.in_channels:
                message += ("; the input's last axis has that size: for channels-last "
                            "data pass layout='NHWC'")
            raise ValueError(message)
        if h == 0 or w == 0:
            raise ValueError(f"input must have nonzero height and width; got shape {shape}")
        return batched, n, c, h, w

    def result_shape(self, batched: bool, n: int, size: Tuple[int, int]) -> Tuple[int, ...]:
        shape = ((n, *size, self.out_channels) if self.layout == "NHWC"
                 else (n, self.out_channels, *size))
        return shape if batched else shape[1:]

    def calls(self, height: int, width: int, size: Tuple[int, int]
              ) -> List[Tuple[_PhaseGroup, Optional[Tuple[slice, slice, ConvSpec]]]]:
        """Per phase group, the input rows and columns it reads and its
        spec with the padding that gives its outputs; None where it reads no
        input (its outputs are the bias)."""
        calls: List[Tuple[_PhaseGroup, Optional[Tuple[slice, slice, ConvSpec]]]] = []
        for group in self.groups_of_phases:
            spans, pads = [], []
            for axis, (extent, residues) in enumerate(((height, group.rows),
                                                       (width, group.cols))):
                count = max(group.shifts[axis][rho]
                            + _phase_length(size[axis], rho, self.stride[axis])
                            for rho in residues)
                step = group.spec.dilation[axis]
                before = -group.first[axis]
                after = count - 1 + step * (group.spec.kernel_size[axis] - 1) + 1 - extent - before
                start, stop = max(0, -before), extent - max(0, -after)
                spans.append((count, start, stop))
                pads.append((max(0, before), max(0, after)))
            if any(count == 0 for count, _, _ in spans):
                continue
            if any(stop <= start for _, start, stop in spans):
                calls.append((group, None))
                continue
            (_, r0, r1), (_, c0, c1) = spans
            calls.append((group, (slice(r0, r1), slice(c0, c1),
                                  group.with_padding((pads[0], pads[1])))))
        return calls

    # -- the call -----------------------------------------------------------

    def apply(self, input: ArrayLike, size: Tuple[int, int], *,
              num_threads: Optional[int] = None, out: Optional[NDArray[Any]] = None,
              operands: Sequence[Any] = ()) -> NDArray[Any]:
        """The transposed convolution of ``input`` with an output of spatial
        ``size`` (validated by the caller); ``operands`` are the caller's
        arrays that ``out`` must not overlap."""
        x = _as_array(input, "input")
        batched, n, _, height, width = self._split(x.shape)
        result_dtype, _ = _result_dtypes(x, self.weight, self.bias)
        shape = self.result_shape(batched, n, size)
        if math.prod(shape) * result_dtype.itemsize > _INTP_MAX:
            raise ValueError(f"the output of shape {shape} is larger than an array can be")
        result = _check_out(out, shape, result_dtype, (x, self.weight, self.bias) + tuple(
            operands))
        if result is None:
            result = np.empty(shape, result_dtype)
        if result.size == 0:
            return result
        calls = self.calls(height, width, size)
        if self.stride == (1, 1) and len(calls) == 1 and calls[0][1] is not None:
            # One phase: the conv2d writes the result itself, in its layout.
            rows, cols, spec = calls[0][1]
            if self.layout != spec.layout:
                spec = copy.copy(spec)
                spec.layout, spec._last_geometry = self.layout, (None, None)
            region = (x[..., rows, cols, :] if self.layout == "NHWC" else x[..., rows, cols])
            return spec.apply(region, num_threads=num_threads, out=result)
        x4 = x if batched else x[np.newaxis]
        r4 = result if batched else result[np.newaxis]
        if self.layout == "NHWC":
            x4, r4 = x4.transpose(0, 3, 1, 2), r4.transpose(0, 3, 1, 2)
        covered = 0
        groups, out_g = self.groups, self.out_channels // self.groups
        by_group = r4.reshape(n, groups, out_g, *size) if r4.flags.c_contiguous else None
        for group, call in calls:
            phases = list(itertools.product(group.rows, group.cols))
            covered += len(phases)
            if call is None:
                for rho_h, rho_w in phases:
                    self._fill_bias(r4[:, :, rho_h::self.stride[0], rho_w::self.stride[1]])
                continue
            rows, cols, spec = call
            y = spec.apply(x4[:, :, rows, cols], num_threads=num_threads)
            y = y.reshape(n, groups, len(phases), out_g, *y.shape[2:])
            for index, (rho_h, rho_w) in enumerate(phases):
                target = r4[:, :, rho_h::self.stride[0], rho_w::self.stride[1]]
                top, left = group.shifts[0][rho_h], group.shifts[1][rho_w]
                source = y[:, :, index, :, top:top + target.shape[2],
                           left:left + target.shape[3]]
                if by_group is not None:
                    by_group[..., rho_h::self.stride[0], rho_w::self.stride[1]] = source
                else:
                    target[...] = source.reshape(target.shape)
        if covered < self.stride[0] * self.stride[1]:
            done = {(rh, rw) for group, _ in calls
                    for rh, rw in itertools.product(group.rows, group.cols)}
            for rho_h, rho_w in itertools.product(range(self.stride[0]), range(self.stride[1])):
                if (rho_h, rho_w) not in done:
                    self._fill_bias(r4[:, :, rho_h::self.stride[0], rho_w::self.stride[1]])
        return result

    def _fill_bias(self, target: NDArray[Any]) -> None:
        """Outputs that no tap reaches: the bias (or zero)."""
        if self.bias is None:
            target[...] = 0
        else:
            target[...] = self.bias.reshape(-1, 1, 1)

    def plans(self, input_shape: Sequence[int], size: Tuple[int, int], dtype: Any,
              requested_threads: int) -> Tuple[Plan, ...]:
        """The plan of each conv2d call :meth:`apply` makes."""
        batched, n, c, height, width = self._split(tuple(input_shape))
        plans = []
        for _, call in self.calls(height, width, size):
            if call is None:
                continue
            rows, cols, spec = call
            region = (n, c, len(range(height)[rows]), len(range(width)[cols]))
            plans.append(spec.plan(spec.geometry(region), dtype, requested_threads))
        return tuple(plans)


def check_transpose_args(stride: Any, padding: Any, output_padding: Any, dilation: Any
                         ) -> Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int],
                                    Tuple[int, int]]:
    """stride, padding, output_padding and dilation as pairs, by PyTorch's
    rules: ``output_padding`` smaller than the stride or the dilation."""
    if isinstance(padding, str):
        raise ValueError(f"padding must be an int or a pair (h, w) for a transposed "
                         f"convolution (as in PyTorch); got {padding!r}")
    stride = _pair(stride, "stride", minimum=1)
    dilation = _pair(dilation, "dilation", minimum=1)
    padding = _pair(padding, "padding", minimum=0)
    output_padding = _pair(output_padding, "output_padding", minimum=0)
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= max(s, d):
            raise ValueError(
                f"output_padding must be smaller than either stride or dilation, as in "
                f"PyTorch; got output_padding {output_padding}, stride {stride}, "
                f"dilation {dilation}")
    return stride, padding, output_padding, dilation


def transpose_size(spec: TransposeSpec, input_shape: Sequence[int], padding: Tuple[int, int],
                   output_padding: Tuple[int, int]) -> Tuple[int, int]:
    """The output's (H_out, W_out) for an input of ``input_shape``; a
    ValueError when it is not positive."""
    _, _, _, height, width = spec._split(tuple(input_shape))
    size = tuple(output_size(extent, k, s, p, d, op) for extent, k, s, p, d, op in zip(
        (height, width), spec.kernel_size, spec.stride, padding, spec.dilation,
        output_padding))
    if min(size) < 1:
        raise ValueError(
            f"input of height and width {(height, width)} gives an output of size {size}: "
            f"padding {padding} is too large for kernel {spec.kernel_size}, stride "
            f"{spec.stride} and dilation {spec.dilation}")
    return size[0], size[1]


def conv_transpose2d(input: ArrayLike, weight: ArrayLike, bias: Optional[ArrayLike] = None,
                     stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                     groups: int = 1, dilation: Any = 1, *, algorithm: str = "auto",
                     num_threads: Optional[int] = None, out: Optional[NDArray[Any]] = None,
                     layout: str = "NCHW") -> NDArray[Any]:
    """2-D transposed convolution with the semantics of
    ``torch.nn.functional.conv_transpose2d``, on NumPy arrays.

    The gradient of :func:`fastconv.conv2d` with respect to its input
    (sometimes called deconvolution): every input pixel, times the kernel, is
    added into the output at ``stride`` steps.

    Parameters
    ----------
    input : array_like of shape (N, C_in, H, W) or (C_in, H, W)
        (N, H, W, C_in) or (H, W, C_in) with ``layout="NHWC"``.
    weight : array_like of shape (C_in, C_out // groups, kH, kW)
        PyTorch's layout for a transposed convolution (input channels first).
    bias : array_like of shape (C_out,), optional
    stride : int or tuple of 2 ints, default=1
    padding : int or tuple of 2 ints, default=0
        ``dilation * (k - 1) - padding`` zeros are added on both sides of the
        (stride-dilated) input, i.e. ``padding`` rows and columns are cut
        from each border of the full result.
    output_padding : int or tuple of 2 ints, default=0
        Extra rows and columns on the bottom and right of the output; each
        smaller than the stride or the dilation.
    groups : int, default=1
        Must divide ``C_in``; ``C_out = weight.shape[1] * groups``.
    dilation : int or tuple of 2 ints, default=1
    algorithm : str, default="auto"
        As for :func:`fastconv.conv2d`; ``"winograd*"`` needs a kernel
        Winograd has tiles for (3x3, 5x5, 7x7), stride 1 and dilation 1.
    num_threads, out, layout
        As for :func:`fastconv.conv2d`.

    Returns
    -------
    output : ndarray of shape (N, C_out, H_out, W_out) or (C_out, H_out, W_out)
        ``H_out = (H - 1)*sH - 2*pH + dH*(kH - 1) + output_padding_h + 1``,
        likewise ``W_out``; channels last with ``layout="NHWC"``. dtype as
        :func:`fastconv.conv2d` (integers exactly, in int64).

    Raises
    ------
    TypeError, ValueError
        As :func:`fastconv.conv2d`, naming the argument; also for an
        ``output_padding`` not smaller than the stride or the dilation, and
        for padding that leaves no output.

    Notes
    -----
    Computed by the compiled conv2d without inserting zeros: for stride
    ``s`` the output splits into ``sH * sW`` phases (every ``s``-th row and
    column), each a stride-1 convolution of the input with a sub-kernel;
    phases reading the same input offsets are one conv2d call with their
    sub-kernels stacked as output channels. At stride 1 it is one conv2d
    with the weight transposed and flipped (Winograd for 3x3, 5x5 and
    7x7 kernels).

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.arange(4.0).reshape(1, 1, 2, 2)
    >>> fastconv.conv_transpose2d(x, np.ones((1, 1, 2, 2)), stride=2)[0, 0]
    array([[0., 0., 1., 1.],
           [0., 0., 1., 1.],
           [2., 2., 3., 3.],
           [2., 2., 3., 3.]])
    """
    w = _as_array(weight, "weight")
    stride, padding, output_padding, dilation = check_transpose_args(
        stride, padding, output_padding, dilation)
    spec = TransposeSpec(w, bias, stride, padding, dilation, groups, algorithm=algorithm,
                         layout=layout, threads=_requested_threads(num_threads))
    x = _as_array(input, "input")
    size = transpose_size(spec, x.shape, padding, output_padding)
    return spec.apply(x, size, num_threads=num_threads, out=out)


#: What :func:`plan` plans.
OPERATIONS = ("conv2d", "conv_transpose2d", "conv2d_input", "conv2d_weight")


def plan(input_shape: Sequence[int], weight_shape: Sequence[int], *,
         operation: str = "conv2d", output_padding: Any = 0, **options: Any) -> Any:
    """What a call of ``operation`` runs for these shapes (nothing is
    computed or allocated; the arguments are checked as the call checks
    them).

    Parameters
    ----------
    input_shape, weight_shape : tuple of ints
        The operation's input and weight. For ``"conv2d_input"`` and
        ``"conv2d_weight"``, those of the forward :func:`fastconv.conv2d`
        whose gradient is computed.
    operation : {"conv2d", "conv_transpose2d", "conv2d_input", "conv2d_weight"}
        :func:`fastconv.conv2d`, :func:`fastconv.conv_transpose2d`,
        :func:`fastconv.grad.conv2d_input` or :func:`fastconv.grad.conv2d_weight`.
    output_padding : int or tuple of 2 ints, default=0
        ``"conv_transpose2d"`` only.
    **options
        ``stride``, ``padding``, ``dilation``, ``groups``, ``dtype``,
        ``algorithm``, ``num_threads``, ``prepared`` and ``layout``, as for
        the operation (``prepared``: a layer's call).

    Returns
    -------
    plan : Plan or tuple of Plan
        A :class:`fastconv.Plan` for ``"conv2d"`` and ``"conv2d_weight"``
        (path ``"weight_gemm"``); for the transposed convolutions, a tuple
        with the plan of each conv2d call (one per group of output phases:
        one at stride 1, one for U-Net's k2 s2 and k4 s2 p1).

    Examples
    --------
    >>> import fastconv
    >>> fastconv.plan((1, 256, 28, 28), (256, 128, 2, 2), stride=2,
    ...               operation="conv_transpose2d")[0].path
    'packed'
    """
    from ._conv import plan as conv2d_plan
    operation = _choice(operation, OPERATIONS, "operation")
    if operation == "conv2d":
        if output_padding != 0:
            raise ValueError("output_padding is an option of operation='conv_transpose2d' only")
        return conv2d_plan(input_shape, weight_shape, **options)
    unknown = sorted(set(options) - {"stride", "padding", "dilation", "groups", "dtype",
                                     "algorithm", "num_threads", "prepared", "layout"})
    if unknown:
        raise TypeError(f"plan() got unexpected keyword argument(s) {', '.join(unknown)}")
    dtype = np.dtype(options.get("dtype", "float32"))
    probe = np.empty(0, dtype)
    compute_dtype = _result_dtypes(probe, probe, None)[1]
    threads = _requested_threads(options.get("num_threads"))
    weight_shape = tuple(weight_shape)
    if len(weight_shape) != 4:
        raise ValueError(f"weight_shape must have 4 dimensions; got {weight_shape}")
    zeros = np.broadcast_to(np.zeros((), dtype), weight_shape)
    if operation == "conv_transpose2d":
        stride, padding, output_padding, dilation = check_transpose_args(
            options.get("stride", 1), options.get("padding", 0), output_padding,
            options.get("dilation", 1))
        spec = TransposeSpec(zeros, None, stride, padding, dilation, options.get("groups", 1),
                             algorithm=options.get("algorithm", "auto"),
                             cache=options.get("prepared", False),
                             layout=options.get("layout", "NCHW"))
        size = transpose_size(spec, input_shape, padding, output_padding)
        return spec.plans(input_shape, size, compute_dtype, threads)
    if output_padding != 0:
        raise ValueError("output_padding is an option of operation='conv_transpose2d' only")
    forward = ConvSpec(zeros, None, options.get("stride", 1), options.get("padding", 0),
                       options.get("dilation", 1), options.get("groups", 1),
                       layout=options.get("layout", "NCHW"), cache=False)
    geo = forward.geometry(tuple(input_shape))
    if operation == "conv2d_weight":
        from ._plan import plan_threads, weight_grad
        return weight_grad.plan(geo, compute_dtype, plan_threads(threads, geo))
    (top, _), (left, _) = forward.padding
    spec = TransposeSpec(zeros, None, forward.stride, (top, left), forward.dilation,
                         forward.groups, algorithm=options.get("algorithm", "auto"),
                         cache=options.get("prepared", False),
                         layout=options.get("layout", "NCHW"))
    grad_shape = forward._result_shape(geo, len(tuple(input_shape)) == 4)
    return spec.plans(grad_shape, (geo.height, geo.width), compute_dtype, threads)


def _requested_threads(num_threads: Optional[int]) -> int:
    """The threads a call asks for, resolved as a call resolves them now."""
    from . import _openmp_helpers
    from ._threads import OPENMP_DEFAULT, kernel_threads
    requested = kernel_threads(num_threads)
    return _openmp_helpers.default_num_threads() if requested == OPENMP_DEFAULT else requested
