"""conv1d on the 2-D kernels (private).

A 1-D convolution of ``(N, C, L)`` is the 2-D convolution of the view
``(N, C, 1, L)`` with the weight view ``(K, C/groups, 1, kL)``, stride
``(1, s)``, padding ``(0, p)`` and dilation ``(1, d)``: no data is copied
beyond what :func:`fastconv.conv2d` itself does. Its spec (``spatial=1``)
checks shapes as conv2d's does, in messages that speak of conv1d's
arguments and shapes.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Tuple, Union, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._checks import _as_array, _choice, _integer
from ._conv import Activation, ConvSpec, PaddingArg

__all__ = ["conv1d", "LAYOUTS_1D"]

#: Layouts of conv1d's input and output.
LAYOUTS_1D = ("NCL", "NLC")

SingleArg = Union[int, Tuple[int]]
Padding1D = Union[int, Tuple[int], Literal["valid", "same"]]


def conv1d(input: ArrayLike, weight: ArrayLike, bias: Optional[ArrayLike] = None,
           stride: SingleArg = 1, padding: Padding1D = 0, dilation: SingleArg = 1,
           groups: int = 1, *, algorithm: Literal["auto", "direct", "fft"] = "auto",
           num_threads: Optional[int] = None, out: Optional[NDArray[Any]] = None,
           layout: Literal["NCL", "NLC"] = "NCL", activation: Activation = None,
           padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros",
           ) -> NDArray[Any]:
    """1-D convolution (cross-correlation) with the semantics of
    ``torch.nn.functional.conv1d``, on NumPy arrays.

    Parameters
    ----------
    input : array_like of shape (N, C, L) or (C, L)
        Batched or unbatched input; (N, L, C) or (L, C) with
        ``layout="NLC"``. An unbatched input gives an unbatched result.
    weight : array_like of shape (K, C // groups, kL)
        Filters, in this shape for both layouts; not flipped.
    bias : array_like of shape (K,), optional
    stride : int or tuple of 1 int, default=1
        Step of the kernel window; >= 1.
    padding : int, tuple of 1 int, "valid" or "same", default=0
        Padding added at both ends. ``"same"`` (stride 1 only) keeps the
        length; an odd total ``dilation * (kL - 1)`` puts the extra element
        at the end, as PyTorch does.
    dilation : int or tuple of 1 int, default=1
        Spacing between kernel taps; >= 1.
    groups : int, default=1
        Must divide ``C`` and ``K``.
    algorithm : {"auto", "direct", "fft"}, default="auto"
        ``"fft"`` (stride 1, float dtypes) as for :func:`fastconv.conv2d`;
        ``"auto"`` runs it for long kernels where its cost model expects it
        faster, the direct kernel otherwise (the Winograd kernels need square
        kernels).
    num_threads : int, optional
        As for :func:`fastconv.conv2d`.
    out : ndarray, optional
        C-contiguous, writeable array of exactly the result's shape (in
        ``layout``) and dtype, not overlapping the operands.
    layout : {"NCL", "NLC"}, default="NCL"
        Channels first (PyTorch's) or channels last. NLC costs one transposed
        copy of the input and of the output.
    activation : {None, "relu"}, default=None
        Fused into the kernel's output stage.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}, default="zeros"
        As ``torch.nn.Conv1d``'s ``padding_mode`` (the functional form has
        zeros only); other modes than zeros pad a copy of the input.

    Returns
    -------
    output : ndarray of shape (N, K, L_out) or (K, L_out)
        (N, L_out, K) or (L_out, K) with ``layout="NLC"``;
        ``L_out = (L + 2*p - d*(kL - 1) - 1) // s + 1``. The dtype follows
        :func:`fastconv.conv2d`'s rules.

    Raises
    ------
    TypeError
        For complex, object or string data, or non-integer parameters.
    ValueError
        For inconsistent shapes or parameters; the message names the
        argument.

    See Also
    --------
    fastconv.conv2d

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.conv1d(np.arange(6.0).reshape(1, 1, 6), np.ones((1, 1, 3)))
    array([[[ 3.,  6.,  9., 12.]]])
    >>> fastconv.conv1d(np.arange(6.0).reshape(1, 6), np.ones((1, 1, 3)), padding="same")
    array([[ 1.,  3.,  6.,  9., 12.,  9.]])
    """
    if algorithm not in ("auto", "direct", "fft"):
        raise ValueError(
            "algorithm for conv1d must be 'auto', 'direct' or 'fft' (the Winograd "
            f"kernels need square kernels); got {algorithm!r}")
    layout = _choice(layout, LAYOUTS_1D, "layout")
    x = _as_array(input, "input")
    w = _as_array(weight, "weight")
    if w.ndim != 3:
        raise ValueError(
            f"weight must have 3 dimensions (K, C/groups, kL); got shape {w.shape}")
    if 0 in w.shape[1:]:
        raise ValueError(f"weight must not be zero-sized; got shape {w.shape}")
    step = _single(stride, "stride", minimum=1)
    spread = _single(dilation, "dilation", minimum=1)
    if isinstance(padding, str):
        if padding == "same" and step != 1:
            raise ValueError(
                f"padding='same' needs stride 1, as in PyTorch; got stride {step}")
        pad = cast(PaddingArg, padding)  # ConvSpec rejects other strings
    else:
        pad = (0, _single(padding, "padding", minimum=0))
    spec = ConvSpec(w[:, :, np.newaxis, :], bias, (1, step), pad, (1, spread), groups,
                    algorithm=algorithm, cache=False, padding_mode=padding_mode,
                    layout="NHWC" if layout == "NLC" else "NCHW", activation=activation,
                    spatial=1)
    return spec.apply(x, num_threads=num_threads, out=out)


def _single(value: Any, name: str, minimum: int) -> int:
    """An int (or a 1-tuple of one) >= ``minimum``, for conv1d's arguments."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(
                f"{name} must be an int or a 1-tuple for conv1d; got {len(value)} "
                f"values {tuple(value)!r}")
        value = value[0]
    v = _integer(value, name)
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {v}")
    return v

