"""Explicit padding: "reflect", "replicate", "circular", and "zeros" (private).

The compiled kernels pad with zeros implicitly (no padded copy), except the
channel-lanes direct kernel, which reads a zero-padded copy. The other
modes of ``torch.nn.Conv2d`` are done as PyTorch does them: the input is
padded explicitly, then convolved with no padding. :func:`pad_nchw` builds
the padded input in one pass over the input (the copy that makes it
C-contiguous in the compute dtype anyway), then fills the borders from the
copy itself.
"""

from __future__ import annotations

from typing import Any, Sequence, Tuple

import numpy as np
from numpy.typing import DTypeLike, NDArray

__all__ = ["PADDING_MODES", "check_padding_mode", "check_padding", "pad_nchw"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

Pads = Tuple[Tuple[int, int], ...]


def check_padding_mode(padding_mode: object) -> str:
    """``padding_mode`` validated (a ValueError names the valid modes)."""
    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
        raise ValueError(
            f"padding_mode must be one of {', '.join(map(repr, PADDING_MODES))}; "
            f"got {padding_mode!r}")
    return padding_mode


def check_padding(padding: Pads, sizes: Sequence[int], padding_mode: str,
                  names: Sequence[str] = ("height", "width")) -> None:
    """Raise PyTorch's errors for padding the mode cannot do.

    ``"reflect"`` needs each padding smaller than the input size along its
    axis (the edge row is not repeated); ``"circular"`` at most the size (it
    wraps around once). ``"zeros"`` and ``"replicate"`` take any padding.
    """
    for (before, after), size, name in zip(padding, sizes, names):
        if padding_mode == "reflect" and max(before, after) >= size:
            raise ValueError(
                f"padding_mode='reflect' needs padding smaller than the input {name}, "
                f"as in PyTorch; got padding ({before}, {after}) for {name} {size}")
        if padding_mode == "circular" and max(before, after) > size:
            raise ValueError(
                f"padding_mode='circular' needs padding at most the input {name} (it "
                f"wraps around once), as in PyTorch; got padding ({before}, {after}) "
                f"for {name} {size}")


def _source_index(size: int, before: int, after: int, padding_mode: str) -> NDArray[np.intp]:
    """For each position of a padded axis, the input index it copies."""
    index = np.arange(-before, size + after)
    if padding_mode == "reflect":
        return (size - 1) - np.abs((size - 1) - np.abs(index))
    if padding_mode == "replicate":
        return np.clip(index, 0, size - 1)
    return index % size  # circular


def pad_nchw(x: NDArray[Any], padding: Pads, padding_mode: str,
             dtype: DTypeLike) -> NDArray[Any]:
    """``x`` of shape (N, C, H, W), any strides, padded on H and W.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    padding : ((top, bottom), (left, right))
        Checked by :func:`check_padding` already.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}
    dtype : dtype
        The dtype of the result.

    Returns
    -------
    padded : C-contiguous ndarray of shape (N, C, H + top + bottom, W + left + right)
    """
    (top, bottom), (left, right) = padding
    n, channels, height, width = x.shape
    shape = (n, channels, height + top + bottom, width + left + right)
    if padding_mode == "zeros":
        padded = np.zeros(shape, dtype)
        padded[:, :, top:top + height, left:left + width] = x
        return padded
    padded = np.empty(shape, dtype)
    padded[:, :, top:top + height, left:left + width] = x
    # Every mode copies along each axis independently, so the corners come
    # out right when the rows are padded first (interior columns only) and
    # then the columns of every row.
    rows = _source_index(height, top, bottom, padding_mode) + top
    interior = slice(left, left + width)
    if top:
        padded[:, :, :top, interior] = padded[:, :, rows[:top], interior]
    if bottom:
        padded[:, :, top + height:, interior] = padded[:, :, rows[top + height:], interior]
    cols = _source_index(width, left, right, padding_mode) + left
    if left:
        padded[..., :left] = padded[..., cols[:left]]
    if right:
        padded[..., left + width:] = padded[..., cols[left + width:]]
    return padded
