"""Gradients of :func:`fastconv.conv2d`, with the semantics of ``torch.nn.grad``.

* :func:`conv2d_input`: the gradient with respect to the input, a
  transposed convolution of ``grad_output`` with the same weight
  (:func:`fastconv.conv_transpose2d`'s polyphase conv2d calls, Winograd for
  3x3, 5x5 and 7x7 kernels at stride 1).
* :func:`conv2d_weight`: the gradient with respect to the weight, the
  correlation of the input with ``grad_output`` summed over the batch: one
  compiled conv2d call whose "images" are the input channels, whose channels
  are the batch (so the batch sum is the GEMM's reduction, no race) and
  whose filters are ``grad_output``, with stride and dilation swapped.
* :func:`conv2d_bias`: the gradient with respect to the bias,
  ``grad_output`` summed over the batch and the pixels.

>>> import numpy as np, fastconv
>>> x, w = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))
>>> g = np.ones((1, 1, 2, 2))
>>> fastconv.grad.conv2d_weight(x, w.shape, g)[0, 0]
array([[4., 4., 4.],
       [4., 4., 4.],
       [4., 4., 4.]])
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _direct_gemm, _forksafe
from ._checks import _as_array, _check_out, _choice, _conv_params, _padding, _result_dtypes
from ._conv import LAYOUTS, Algorithm, IntPair, Layout, PaddingArg
from ._plan import Geometry, Plan, plan_threads, weight_grad
from ._transpose import TransposeSpec, _requested_threads, blocked_copy, gather_taps

__all__ = ["conv2d_input", "conv2d_weight", "conv2d_bias"]


def _forward_geometry(input_shape: Sequence[int], weight_shape: Sequence[int],
                      grad_shape: Sequence[int], stride: Any, padding: Any, dilation: Any,
                      groups: Any, layout: str) -> Tuple[Any, ...]:
    """The forward convolution's parameters, checked against the shapes of
    its input, weight and output gradient as :func:`fastconv.conv2d` would
    check them. Returns (batched, stride, pads, dilation, groups, (N, C, H,
    W), (N, K, H_out, W_out))."""
    layout = _choice(layout, LAYOUTS, "layout")
    stride, dilation, groups = _conv_params(stride, dilation, groups)
    if len(weight_shape) != 4:
        raise ValueError(f"weight must have 4 dimensions (K, C/groups, kH, kW); got shape "
                         f"{tuple(weight_shape)}")
    out_channels, group_in, kernel_h, kernel_w = map(int, weight_shape)
    if min(out_channels, group_in, kernel_h, kernel_w) < 1:
        raise ValueError(f"weight must not be zero-sized; got shape {tuple(weight_shape)}")
    if out_channels % groups:
        raise ValueError(f"groups={groups} must divide the output channels K={out_channels} "
                         "(weight.shape[0])")
    pads = _padding(padding, stride, (dilation[0] * (kernel_h - 1),
                                      dilation[1] * (kernel_w - 1)))
    shapes = []
    for name, shape in (("input", tuple(input_shape)), ("grad_output", tuple(grad_shape))):
        if len(shape) not in (3, 4):
            raise ValueError(f"{name} must have 4 dimensions (or 3, unbatched); got shape "
                             f"{shape}")
        full = shape if len(shape) == 4 else (1,) + shape
        shapes.append((full[0], full[3], full[1], full[2]) if layout == "NHWC" else full)
    if len(input_shape) != len(grad_shape):
        raise ValueError(f"input {tuple(input_shape)} and grad_output {tuple(grad_shape)} "
                         "must both be batched (4 dimensions) or both unbatched (3)")
    (n, c, h, w), (gn, gk, gh, gw) = shapes
    if c != group_in * groups:
        raise ValueError(f"input has C={c} channels but weight of shape {tuple(weight_shape)} "
                         f"with groups={groups} expects C = weight.shape[1] * groups = "
                         f"{group_in * groups}")
    span = (dilation[0] * (kernel_h - 1) + 1, dilation[1] * (kernel_w - 1) + 1)
    padded = (h + sum(pads[0]), w + sum(pads[1]))
    if min(h, w) < 1 or span[0] > padded[0] or span[1] > padded[1]:
        raise ValueError(f"input of shape {tuple(input_shape)} is no valid input of this "
                         f"convolution (kernel span {span}, padded input {padded})")
    expected = (n, out_channels, (padded[0] - span[0]) // stride[0] + 1,
                (padded[1] - span[1]) // stride[1] + 1)
    if (gn, gk, gh, gw) != expected:
        raise ValueError(f"grad_output must have the shape of the convolution's output, "
                         f"(N, K, H_out, W_out) = {expected} in layout {layout}; got shape "
                         f"{tuple(grad_shape)}")
    return len(input_shape) == 4, stride, pads, dilation, groups, (n, c, h, w), expected


def conv2d_input(input_size: Sequence[int], weight: ArrayLike, grad_output: ArrayLike,
                 stride: IntPair = 1, padding: PaddingArg = 0, dilation: IntPair = 1,
                 groups: int = 1, *, algorithm: Algorithm = "auto",
                 num_threads: Optional[int] = None, out: Optional[NDArray[Any]] = None,
                 layout: Layout = "NCHW") -> NDArray[Any]:
    """The gradient of :func:`fastconv.conv2d` with respect to its input, as
    ``torch.nn.grad.conv2d_input``.

    Parameters
    ----------
    input_size : tuple of ints
        The shape of the convolution's input, (N, C, H, W) or (C, H, W);
        (N, H, W, C) or (H, W, C) with ``layout="NHWC"``.
    weight : array_like of shape (K, C // groups, kH, kW)
    grad_output : array_like
        The gradient of the convolution's output, of its shape.
    stride, padding, dilation, groups
        The convolution's, as for :func:`fastconv.conv2d` (``"same"`` and
        ``"valid"`` included).
    algorithm, num_threads, layout
        As for :func:`fastconv.conv_transpose2d` (the computation).
    out : ndarray, optional
        C-contiguous, of shape ``input_size`` and the result dtype.

    Returns
    -------
    grad_input : ndarray of shape ``input_size``
        dtype by :func:`fastconv.conv2d`'s rules for ``grad_output`` and
        ``weight``.
    """
    w = _as_array(weight, "weight")
    g = _as_array(grad_output, "grad_output")
    batched, stride, pads, dilation, groups, (_, _, h, wd), _ = _forward_geometry(
        input_size, w.shape, g.shape, stride, padding, dilation, groups, layout)
    spec = TransposeSpec(w, None, stride, (pads[0][0], pads[1][0]), dilation, groups,
                         algorithm=algorithm, layout=layout,
                         threads=_requested_threads(num_threads))
    return spec.apply(g, (h, wd), num_threads=num_threads, out=out, operands=(w,))


def conv2d_weight(input: ArrayLike, weight_size: Sequence[int], grad_output: ArrayLike,
                  stride: IntPair = 1, padding: PaddingArg = 0, dilation: IntPair = 1,
                  groups: int = 1, *, num_threads: Optional[int] = None,
                  out: Optional[NDArray[Any]] = None, layout: Layout = "NCHW") -> NDArray[Any]:
    """The gradient of :func:`fastconv.conv2d` with respect to its weight, as
    ``torch.nn.grad.conv2d_weight``: ``sum over n, oh, ow of
    grad_output[n, k, oh, ow] * input[n, c, oh*sH - pH + i*dH, ow*sW - pW + j*dW]``.

    Parameters
    ----------
    input : array_like
        The convolution's input, (N, C, H, W) or (C, H, W); channels last
        with ``layout="NHWC"``.
    weight_size : tuple of 4 ints
        (K, C // groups, kH, kW).
    grad_output : array_like
        The gradient of the convolution's output, of its shape.
    stride, padding, dilation, groups, num_threads, layout
        As for :func:`fastconv.conv2d`.
    out : ndarray, optional
        C-contiguous, of shape ``weight_size`` and the result dtype.

    Returns
    -------
    grad_weight : ndarray of shape ``weight_size``
        dtype by :func:`fastconv.conv2d`'s rules for ``input`` and
        ``grad_output`` (integers exactly, in int64).
    """
    x = _as_array(input, "input")
    g = _as_array(grad_output, "grad_output")
    weight_size = tuple(weight_size)
    batched, strides, pads, dilations, groups, (n, c, h, w), (_, k, gh, gw) = (
        _forward_geometry(x.shape, weight_size, g.shape, stride, padding, dilation, groups,
                          layout))
    result_dtype, compute_dtype = _result_dtypes(x, g, None)
    result = _check_out(out, weight_size, result_dtype, (x, g))
    if result is None:
        result = np.empty(weight_size, result_dtype)
    x4 = x if batched else x[np.newaxis]
    g4 = g if batched else g[np.newaxis]
    if layout == "NHWC":
        x4, g4 = x4.transpose(0, 3, 1, 2), g4.transpose(0, 3, 1, 2)
    (pad_top, pad_bottom), (pad_left, pad_right) = pads
    geo = Geometry(n, c, h, w, k, gh, gw, weight_size[2], weight_size[3], strides[0],
                   strides[1], pad_top, pad_bottom, pad_left, pad_right, dilations[0],
                   dilations[1], groups)
    if n == 0:
        result[...] = 0
        return result
    plan = weight_grad.plan(geo, compute_dtype, plan_threads(_requested_threads(num_threads),
                                                             geo))
    grad = _forksafe.call(_weight_gemm, plan.threads, plan, geo, x4, g4, compute_dtype)
    # (groups, kH * kW, C/groups padded, K/groups padded) -> (K, C/groups, kH, kW),
    # by the compiled gather on the plan's threads (NumPy, block by block, for
    # a result dtype other than the compute dtype).
    group_in, group_out = c // groups, k // groups
    target = result.reshape(groups, group_out, group_in, -1)
    taps, channels_padded, k_padded = grad.shape[1:]
    if not gather_taps(target, grad, (taps * channels_padded * k_padded, 1, k_padded),
                       [t * channels_padded * k_padded for t in range(taps)], plan.threads):
        blocked_copy(target, grad[:, :, :group_in, :group_out].transpose(0, 3, 2, 1), axis=2)
    return result


def _weight_gemm(plan: Plan, geo: Geometry, x: NDArray[Any], g: NDArray[Any],
                 dtype: np.dtype[Any]) -> NDArray[Any]:
    """The weight gradient in ``dtype`` of the
    convolution ``geo`` from its input ``x`` and ``g`` (NCHW views): the
    operands laid out as :mod:`fastconv._plan.weight_grad` says, then its
    compiled GEMMs. Returns (groups, kH * kW, C/groups, K/groups), each
    channel axis padded (to MR and to NR)."""
    lay = weight_grad.layout(geo, dtype)
    threads = plan.threads
    groups, group_in, group_out = geo.groups, geo.group_in, geo.group_out
    n, sh, sw = geo.batch, geo.stride_h, geo.stride_w
    phases = np.zeros((groups, sh, sw, lay.channels_padded, lay.row_len), dtype)
    images = phases[..., :group_in, :lay.reduction].reshape(
        groups, sh, sw, group_in, n, lay.phase_h, lay.phase_w)
    # Input row h is padded row h + pad_top: phase (h + pad_top) % s, row // s.
    keep_h = min(geo.height, lay.phase_h * sh - geo.pad_top)
    keep_w = min(geo.width, lay.phase_w * sw - geo.pad_left)
    for a in range(sh):
        h0 = (a - geo.pad_top) % sh
        rows = range(h0, keep_h, sh)
        for b in range(sw):
            w0 = (b - geo.pad_left) % sw
            cols = range(w0, keep_w, sw)
            if not rows or not cols:
                continue
            source = x[:, :, h0:keep_h:sh, w0:keep_w:sw].reshape(
                n, groups, group_in, len(rows), len(cols))
            hq, wq = (h0 + geo.pad_top) // sh, (w0 + geo.pad_left) // sw
            images[:, a, b, :, :, hq:hq + len(rows), wq:wq + len(cols)] = (
                source.transpose(1, 2, 0, 3, 4))
    # grad_output at the virtual pixels, NR channels per panel.
    k_padded = lay.k_panels * lay.nr
    panels = np.zeros((groups, lay.k_panels, n, lay.phase_h, lay.phase_w, lay.nr), dtype)
    source = np.ascontiguousarray(g.reshape(n, groups, group_out, geo.out_h, geo.out_w),
                                  dtype)
    if k_padded != group_out:
        padded = np.zeros((n, groups, k_padded, geo.out_h, geo.out_w), dtype)
        padded[:, :, :group_out] = source
        source = padded
    # The channels into the lanes by the compiled gather, an image at a
    # time ((groups, panel) as its outer axis, pixels its rows and columns,
    # the panel's NR channels its taps): NumPy's transposed copy took 0.25
    # ms of a 1.9 ms weight gradient at (1,64,56,56).
    pixels = geo.out_h * geo.out_w
    for image in range(n):
        target = panels[:, :, image, :geo.out_h, :geo.out_w]
        target.shape = (groups * lay.k_panels, geo.out_h, geo.out_w, lay.nr)  # a view
        if not gather_taps(target, source, (lay.nr * pixels, geo.out_w, 1),
                           [(image * groups * k_padded + r) * pixels for r in range(lay.nr)],
                           threads):
            panels[:, :, :, :geo.out_h, :geo.out_w] = source.reshape(
                n, groups, lay.k_panels, lay.nr, geo.out_h, geo.out_w).transpose(
                    1, 2, 0, 4, 5, 3)
            break
    out = np.empty((groups, geo.kernel_h * geo.kernel_w, lay.channels_padded, k_padded), dtype)
    _direct_gemm.conv2d_weight_grad(
        phases.reshape(groups, sh * sw, lay.channels_padded, lay.row_len),
        panels.reshape(groups, lay.k_panels, lay.reduction, lay.nr), out, geo.kernel_h,
        geo.kernel_w, sh, sw, geo.dil_h, geo.dil_w, lay.phase_w, plan.threads, plan.blocking)
    return out


def conv2d_bias(grad_output: ArrayLike, *, layout: Layout = "NCHW") -> NDArray[Any]:
    """The gradient of :func:`fastconv.conv2d` with respect to its bias:
    ``grad_output`` summed over the batch and the pixels.

    Parameters
    ----------
    grad_output : array_like of shape (N, K, H_out, W_out) or (K, H_out, W_out)
        Channels last with ``layout="NHWC"``.

    Returns
    -------
    grad_bias : ndarray of shape (K,)
        In ``grad_output``'s dtype (float16 summed in float32; integers
        and bool in int64).
    """
    g = _as_array(grad_output, "grad_output")
    layout = _choice(layout, LAYOUTS, "layout")
    if g.ndim not in (3, 4):
        raise ValueError(f"grad_output must have 4 dimensions (or 3, unbatched); got shape "
                         f"{g.shape}")
    axis = -1 if layout == "NHWC" else -3
    axes = tuple(a for a in range(g.ndim) if a != g.ndim + axis)
    result_dtype, compute_dtype = _result_dtypes(g, g, None)
    return g.sum(axis=axes, dtype=compute_dtype).astype(result_dtype, copy=False)
