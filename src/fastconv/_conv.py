"""conv2d: argument validation, dtype rules and algorithm choice (private).

Everything about shapes and types is checked here, in Python, so the compiled
kernel (:mod:`fastconv._direct`) receives only C-contiguous arrays of one
dtype and a consistent geometry.
"""

import operator

import numpy as np

from . import _direct
from ._isa import active_isa  # noqa: F401  (selects the ISA at import)

__all__ = ["conv2d"]

ALGORITHMS = ("auto", "direct")

# dtype kinds: b bool, i/u integers, f floats
_INTEGER_KINDS = "biu"


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           *, algorithm="auto", num_threads=None, out=None):
    """2-D convolution (cross-correlation) with the semantics of
    ``torch.nn.functional.conv2d``, on NumPy arrays.

    Parameters
    ----------
    input : array_like of shape (N, C, H, W) or (C, H, W)
        Batched or unbatched input. An unbatched input gives an unbatched
        result.
    weight : array_like of shape (K, C // groups, kH, kW)
        Filters. They are not flipped (cross-correlation, as in PyTorch).
    bias : array_like of shape (K,), optional
        Added to every output pixel of channel ``k``.
    stride : int or tuple of 2 ints, default=1
        Step of the kernel window, ``(sH, sW)``; each >= 1.
    padding : int, tuple of 2 ints, "valid" or "same", default=0
        Implicit zeros added on both sides, ``(pH, pW)``. ``"valid"`` is no
        padding. ``"same"`` (stride 1 only) pads so the output has the
        input's size; when ``dilation * (k - 1)`` is odd the extra row/column
        goes at the bottom/right, exactly as PyTorch pads.
    dilation : int or tuple of 2 ints, default=1
        Spacing between kernel taps; each >= 1.
    groups : int, default=1
        Number of blocked connections; must divide ``C`` and ``K``.
    algorithm : {"auto", "direct"}, default="auto"
        Convolution algorithm. ``"auto"`` picks the fastest for the shape.
    num_threads : int, optional
        OpenMP threads for this call. ``None`` uses OpenMP's default at call
        time (``OMP_NUM_THREADS``, ``threadpoolctl`` limits). Never more
        threads are started than there are work items.
    out : ndarray, optional
        C-contiguous, writeable array of exactly the result's shape and dtype,
        not overlapping the operands; written in place and returned.

    Returns
    -------
    output : ndarray of shape (N, K, H_out, W_out) or (K, H_out, W_out)
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
        For inconsistent shapes or parameters; the message names the argument.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(
            f"algorithm must be one of {', '.join(map(repr, ALGORITHMS))}; "
            f"got {algorithm!r}")
    requested_threads = _check_num_threads(num_threads)

    x = _as_array(input, "input")
    w = _as_array(weight, "weight")
    b = None if bias is None else _as_array(bias, "bias")

    if x.ndim not in (3, 4):
        raise ValueError(
            "input must have 4 dimensions (N, C, H, W) or 3 (C, H, W); "
            f"got shape {x.shape}")
    if w.ndim != 4:
        raise ValueError(
            f"weight must have 4 dimensions (K, C/groups, kH, kW); got shape {w.shape}")
    batched = x.ndim == 4
    if not batched:
        x = x[np.newaxis]

    stride_h, stride_w = _pair(stride, "stride", minimum=1)
    dil_h, dil_w = _pair(dilation, "dilation", minimum=1)
    groups = _integer(groups, "groups")
    if groups < 1:
        raise ValueError(f"groups must be >= 1; got {groups}")

    n, channels, height, width = x.shape
    out_channels, group_in, kernel_h, kernel_w = w.shape
    if group_in == 0 or kernel_h == 0 or kernel_w == 0:
        raise ValueError(f"weight must not be zero-sized; got shape {w.shape}")
    if channels % groups:
        raise ValueError(
            f"groups={groups} must divide the input channels C={channels}")
    if out_channels % groups:
        raise ValueError(
            f"groups={groups} must divide the output channels "
            f"K={out_channels} (weight.shape[0])")
    if group_in * groups != channels:
        raise ValueError(
            f"input has C={channels} channels but weight of shape {w.shape} "
            f"with groups={groups} expects C = weight.shape[1] * groups = "
            f"{group_in * groups}")
    if height == 0 or width == 0:
        raise ValueError(f"input must have nonzero height and width; got shape {x.shape}")
    if b is not None and b.shape != (out_channels,):
        raise ValueError(
            f"bias must have shape ({out_channels},) to match weight.shape[0]; "
            f"got shape {b.shape}")

    (pad_top, pad_bottom), (pad_left, pad_right) = _padding(
        padding, (stride_h, stride_w), (dil_h * (kernel_h - 1), dil_w * (kernel_w - 1)))
    span_h = dil_h * (kernel_h - 1) + 1
    span_w = dil_w * (kernel_w - 1) + 1
    padded_h = height + pad_top + pad_bottom
    padded_w = width + pad_left + pad_right
    if span_h > padded_h or span_w > padded_w:
        raise ValueError(
            f"kernel size ({kernel_h}, {kernel_w}) with dilation ({dil_h}, {dil_w}) "
            f"spans ({span_h}, {span_w}), larger than the padded input "
            f"({padded_h}, {padded_w})")
    out_h = (padded_h - span_h) // stride_h + 1
    out_w = (padded_w - span_w) // stride_w + 1

    result_dtype, compute_dtype = _result_dtypes(x, w, b)
    out_shape = (n, out_channels, out_h, out_w)
    result = _check_out(out, out_shape if batched else out_shape[1:], result_dtype,
                        (input, weight, bias))
    if result is None:
        result = np.empty(out_shape if batched else out_shape[1:], result_dtype)
    if result.size == 0:
        return result

    x = np.ascontiguousarray(x, dtype=compute_dtype)
    w = np.ascontiguousarray(w, dtype=compute_dtype)
    b = (np.zeros(out_channels, compute_dtype) if b is None
         else np.ascontiguousarray(b, dtype=compute_dtype))
    result4d = result if batched else result[np.newaxis]
    target = result4d if result.dtype == compute_dtype else np.empty(out_shape, compute_dtype)

    _direct.conv2d_direct(x, w, b, target, stride_h, stride_w, pad_top, pad_left,
                          dil_h, dil_w, groups, requested_threads)
    if target is not result4d:
        result4d[...] = target
    return result


def _as_array(value, name):
    array = np.asarray(value)
    kind = array.dtype.kind
    if kind not in _INTEGER_KINDS + "f":
        raise TypeError(
            f"{name} must hold real numbers (bool, integer or float); got dtype "
            f"{array.dtype}")
    if kind == "f" and array.dtype.itemsize > 8:
        raise TypeError(f"{name} dtype {array.dtype} is not supported; use float64")
    return array


def _result_dtypes(x, w, b):
    """(dtype returned, dtype computed in) by the rules of the docstring."""
    operands = [a for a in (x, w, b) if a is not None]
    floats = [a.dtype for a in operands if a.dtype.kind == "f"]
    if not floats:
        return np.dtype(np.int64), np.dtype(np.int64)
    result = np.result_type(*floats)
    compute = np.dtype(np.float32) if result == np.float16 else result
    return result, compute


def _integer(value, name):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, not bool ({value!r})")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an int or a tuple of ints; got {value!r}") from None


def _pair(value, name, minimum):
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
    return pair


def _padding(padding, strides, total_same):
    """((top, bottom), (left, right)) for any accepted ``padding`` value."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if strides != (1, 1):
                raise ValueError(
                    f"padding='same' needs stride 1, as in PyTorch; got stride {strides}")
            # PyTorch puts the odd extra row/column at the bottom/right.
            return tuple((t // 2, t - t // 2) for t in total_same)
        raise ValueError(
            f"padding must be an int, a pair, 'valid' or 'same'; got {padding!r}")
    pad_h, pad_w = _pair(padding, "padding", minimum=0)
    return (pad_h, pad_h), (pad_w, pad_w)


def _check_num_threads(num_threads):
    """0 means "OpenMP's default at call time" for the kernel."""
    if num_threads is None:
        return 0
    if isinstance(num_threads, (bool, np.bool_)):
        raise TypeError(f"num_threads must be an int or None; got {num_threads!r}")
    try:
        n = operator.index(num_threads)
    except TypeError:
        raise TypeError(
            f"num_threads must be an int or None; got {num_threads!r}") from None
    if n < 1:
        raise ValueError(f"num_threads must be >= 1 or None; got {n}")
    return min(n, 1 << 16)


def _check_out(out, shape, dtype, operands):
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
