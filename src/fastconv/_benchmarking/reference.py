"""The float64 reference convolution that benchmark results are checked
against, and the error measure.

Imports nothing from fastconv (see the package docstring): the asv suite
loads this file from the source tree. The tests do not use it: they have
their own reference (``tests/reference.py``).
"""

import numpy as np

__all__ = ["conv2d_float64", "reference_conv2d", "reference_name", "error_scale",
           "relative_error"]


def conv2d_float64(x, w, stride=1, padding=0, groups=1, dilation=1):
    """conv2d in float64 as a sum over the kernel taps of channel matrix
    products (``np.tensordot``): independent of fastconv's kernels and of
    im2col, and no larger in memory than a few copies of the input.

    Parameters
    ----------
    x : array_like of shape (N, C, H, W)
    w : array_like of shape (K, C // groups, kH, kW)
    stride, padding, groups, dilation : int

    Returns
    -------
    ndarray of shape (N, K, Ho, Wo), float64, C-contiguous
    """
    x = np.asarray(x, np.float64)
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    w = np.asarray(w, np.float64)
    out_channels, group_in, kernel_h, kernel_w = w.shape
    out_h = (x.shape[2] - dilation * (kernel_h - 1) - 1) // stride + 1
    out_w = (x.shape[3] - dilation * (kernel_w - 1) - 1) // stride + 1
    group_out = out_channels // groups
    out = np.zeros((out_channels, x.shape[0], out_h, out_w))
    for g in range(groups):
        planes = x[:, g * group_in:(g + 1) * group_in]
        filters = w[g * group_out:(g + 1) * group_out]
        for i in range(kernel_h):
            for j in range(kernel_w):
                top, left = i * dilation, j * dilation
                patch = planes[:, :, top:top + stride * (out_h - 1) + 1:stride,
                               left:left + stride * (out_w - 1) + 1:stride]
                out[g * group_out:(g + 1) * group_out] += np.tensordot(
                    filters[:, :, i, j], patch, axes=([1], [1]))
    return np.ascontiguousarray(np.moveaxis(out, 0, 1))


def reference_conv2d(layer, x, w, torch=None):
    """``layer`` (a :class:`~.layers.Layer`) on ``x`` and ``w`` in float64, by
    ``torch.nn.functional.conv2d`` when ``torch`` is given, else by
    :func:`conv2d_float64`."""
    if torch is None:
        return conv2d_float64(x, w, **layer.conv_kwargs())
    x, w = x.astype(np.float64), w.astype(np.float64)
    with torch.no_grad():
        result = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                                            **layer.conv_kwargs())
    return result.numpy()


def reference_name(torch=None):
    """What :func:`reference_conv2d` computes with, for a report."""
    return "torch float64" if torch is not None else "NumPy float64 (sum over kernel taps)"


def error_scale(layer, x, w, torch=None):
    """``max(conv(|x|, |w|))``: the magnitude of the summed terms, which the
    errors are relative to."""
    return float(np.max(reference_conv2d(layer, np.abs(x), np.abs(w), torch)))


def relative_error(result, reference, scale):
    """``max |result - reference| / scale``."""
    diff = np.abs(np.asarray(result, np.float64) - reference)
    return float(diff.max() / scale) if scale else float(diff.max())
