"""Argument checks shared by conv2d, conv1d and the layers (private).

Each raises a ValueError or TypeError that names the argument at fault.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Optional, Sequence, Tuple

import numpy as np
from numpy.typing import NDArray

_INTEGER_KINDS = "biu"

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


def _conv_params(stride: Any, dilation: Any, groups: Any
                 ) -> Tuple[Tuple[int, int], Tuple[int, int], int]:
    """``stride`` and ``dilation`` as pairs (each >= 1) and ``groups`` (>= 1)."""
    stride = _pair(stride, "stride", minimum=1)
    dilation = _pair(dilation, "dilation", minimum=1)
    groups = _integer(groups, "groups")
    if groups < 1:
        raise ValueError(f"groups must be >= 1; got {groups}")
    return stride, dilation, groups


#: Winograd's output tile sizes m per square kernel size r, F(m x m, r x r):
#: what ``algorithm="winograd<m>"`` accepts and fastconv._winograd compiles.
WINOGRAD_TILE_SIZES = {3: (2, 4, 6), 5: (2, 4), 7: (2,)}


def _check_algorithm(algorithm: str, kernel_size: Tuple[int, int], stride: Tuple[int, int],
                     dilation: Tuple[int, int]) -> None:
    """A ValueError for an algorithm that cannot do this kernel: Winograd
    needs a square kernel of a size it has tiles for (the tile of
    ``"winograd<m>"`` among them), stride 1 and dilation 1; the FFT stride 1."""
    if algorithm == "fft" and stride != (1, 1):
        raise ValueError(
            f"algorithm='fft' needs stride 1; got stride {stride} (use algorithm='direct' "
            "or 'auto')")
    if not algorithm.startswith("winograd"):
        return
    sizes = WINOGRAD_TILE_SIZES.get(kernel_size[0], ()) if (
        kernel_size[0] == kernel_size[1]) else ()
    tile = algorithm[len("winograd"):]
    if not sizes or (tile and int(tile) not in sizes) or stride != (1, 1) or (
            dilation != (1, 1)):
        supported = "; ".join(
            f"{r}x{r} with " + ", ".join(f"'winograd{m}'" for m in tiles)
            for r, tiles in WINOGRAD_TILE_SIZES.items())
        raise ValueError(
            f"algorithm={algorithm!r} needs stride 1, dilation 1 and a kernel it has "
            f"tiles for ({supported}, each also with 'winograd'); got kernel "
            f"{kernel_size}, stride {stride}, dilation {dilation}")


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
