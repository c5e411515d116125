"""Independent NumPy reference for ``torch.nn.functional.conv2d`` semantics.

Written from scratch on purpose: it shares no code with ``fastconv`` so that a
bug in the library cannot hide behind the same bug in the oracle.  The input
is padded with ``np.pad``, windows are taken with ``sliding_window_view`` and
the products are summed with ``np.einsum`` in float64 (or exactly in int64).

Also provides the tolerance model used by the whole suite: an error is judged
relative to ``conv(|x|, |w|) + |bias|``, the magnitude of the terms that were
summed, not relative to the (possibly cancelled) result itself.
"""

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "pair",
    "resolve_padding",
    "output_size",
    "conv2d_ref",
    "naive_conv2d",
    "tolerance_scale",
    "rtol_for",
    "atol_for",
    "expected_dtype",
    "assert_conv_close",
]


def pair(value):
    """Expand an int-or-pair argument to a ``(h, w)`` tuple of ints."""
    if isinstance(value, (tuple, list)):
        h, w = value
        return int(h), int(w)
    return int(value), int(value)


def resolve_padding(padding, kernel_hw, dilation=1, stride=1):
    """Return explicit ``((top, bottom), (left, right))`` padding.

    ``"same"`` splits the total ``d * (k - 1)`` as ``total // 2`` before and
    the rest after, so the extra row/column goes at the bottom/right exactly
    as PyTorch does for even effective kernel sizes.
    """
    kh, kw = kernel_hw
    dh, dw = pair(dilation)
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            assert pair(stride) == (1, 1), "'same' needs stride 1"
            total_h, total_w = dh * (kh - 1), dw * (kw - 1)
            return ((total_h // 2, total_h - total_h // 2),
                    (total_w // 2, total_w - total_w // 2))
        raise ValueError(f"unknown padding string {padding!r}")
    ph, pw = pair(padding)
    return (ph, ph), (pw, pw)


def output_size(in_hw, kernel_hw, stride=1, padding=0, dilation=1):
    """``(H_out, W_out)`` from the PyTorch formula (may be < 1 for bad cases)."""
    (pt, pb), (pl, pr) = resolve_padding(padding, kernel_hw, dilation, stride)
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    (h, w), (kh, kw) = in_hw, kernel_hw
    ho = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    wo = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    return ho, wo


def conv2d_ref(input, weight, bias=None, stride=1, padding=0, dilation=1,
               groups=1, dtype=np.float64):
    """Reference conv2d computed in ``dtype`` (float64 by default).

    Pass ``dtype=np.int64`` for an exact integer result.  Accepts batched
    ``(N, C, H, W)`` or unbatched ``(C, H, W)`` input like torch.
    """
    x = np.asarray(input).astype(dtype)
    w = np.asarray(weight).astype(dtype)
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    n, c, _, _ = x.shape
    k, cg, kh, kw = w.shape
    assert c == cg * groups and k % groups == 0, "inconsistent case"
    kg = k // groups
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    (pt, pb), (pl, pr) = resolve_padding(padding, (kh, kw), dilation, stride)

    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    eff_h, eff_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    assert xp.shape[2] >= eff_h and xp.shape[3] >= eff_w, "kernel too large"
    # windows[n, c, oy, ox, i, j] = xp[n, c, oy*sh + i*dh, ox*sw + j*dw]
    windows = sliding_window_view(xp, (eff_h, eff_w), axis=(2, 3))
    windows = windows[:, :, ::sh, ::sw, ::dh, ::dw]
    ho, wo = windows.shape[2:4]
    windows = windows.reshape(n, groups, cg, ho, wo, kh, kw)
    wg = w.reshape(groups, kg, cg, kh, kw)
    out = np.einsum("ngchwij,gkcij->ngkhw", windows, wg, optimize=True)
    out = out.reshape(n, k, ho, wo)
    if bias is not None:
        out = out + np.asarray(bias).astype(dtype).reshape(1, k, 1, 1)
    out = np.ascontiguousarray(out)
    return out[0] if unbatched else out


def naive_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1,
                 groups=1):
    """Plain loop over output pixels with elementwise IEEE products.

    Slow, only for tiny cases; used for NaN/Inf semantics (``inf * 0`` is
    NaN) where BLAS-backed einsum paths are not guaranteed to be faithful.
    """
    x = np.asarray(input, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    n, c, _, _ = x.shape
    k, cg, kh, kw = w.shape
    kg = k // groups
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    (pt, pb), (pl, pr) = resolve_padding(padding, (kh, kw), dilation, stride)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    ho, wo = output_size(x.shape[2:], (kh, kw), stride, padding, dilation)
    out = np.zeros((n, k, ho, wo))
    with np.errstate(invalid="ignore", over="ignore"):
        for b in range(n):
            for oc in range(k):
                g = oc // kg
                for oy in range(ho):
                    for ox in range(wo):
                        patch = xp[b, g * cg:(g + 1) * cg,
                                   oy * sh: oy * sh + dh * (kh - 1) + 1: dh,
                                   ox * sw: ox * sw + dw * (kw - 1) + 1: dw]
                        out[b, oc, oy, ox] = np.sum(patch * w[oc])
        if bias is not None:
            out += np.asarray(bias, dtype=np.float64).reshape(1, k, 1, 1)
    return out[0] if unbatched else out


def tolerance_scale(input, weight, bias=None, stride=1, padding=0,
                    dilation=1, groups=1):
    """``conv(|x|, |w|) + |bias|``: the size of the terms summed per output."""
    absbias = None if bias is None else np.abs(np.asarray(bias, np.float64))
    return conv2d_ref(np.abs(np.asarray(input, np.float64)),
                      np.abs(np.asarray(weight, np.float64)), absbias,
                      stride, padding, dilation, groups)


def rtol_for(dtype, n_terms):
    """Relative tolerance (w.r.t. :func:`tolerance_scale`) for a result dtype.

    float32: a few ulps grown like sqrt(n_terms) (random rounding errors),
    capped at 1e-4.  float16 is computed in float32 and rounded once, so its
    output rounding (2**-11) dominates.
    """
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return 1e-12
    if dtype == np.float32:
        return min(max(2e-6 * math.sqrt(max(n_terms, 1)), 1e-6), 1e-4)
    if dtype == np.float16:
        return 2e-3
    raise AssertionError(f"no float tolerance for {dtype}")


def atol_for(dtype):
    """Tiny absolute slack so exact zeros and subnormals are not over-judged."""
    dtype = np.dtype(dtype)
    if dtype == np.float16:
        return 1e-7  # float16 subnormal spacing is ~6e-8
    return float(np.finfo(dtype).tiny) * 16


def expected_dtype(*dtypes):
    """Result dtype rule of fastconv (``None`` entries, e.g. no bias, ignored).

    Floats combine with ``numpy.result_type``; integer/bool operands take the
    float dtype of the others; all-integer/bool operands give int64.
    """
    dts = [np.dtype(d) for d in dtypes if d is not None]
    floats = [d for d in dts if d.kind == "f"]
    if floats:
        return np.result_type(*floats)
    assert all(d.kind in "biu" for d in dts), dts
    return np.dtype(np.int64)


def assert_conv_close(got, input, weight, bias=None, stride=1, padding=0,
                      dilation=1, groups=1, dtype=None):
    """Check ``got`` against the float64 reference with the scaled tolerance.

    ``dtype`` is the expected result dtype; by default it is derived from the
    operands with :func:`expected_dtype`.  Integer results must be exact.
    """
    ops = [np.asarray(input), np.asarray(weight)]
    if bias is not None:
        ops.append(np.asarray(bias))
    if dtype is None:
        dtype = expected_dtype(*(a.dtype for a in ops))
    dtype = np.dtype(dtype)
    assert isinstance(got, np.ndarray), type(got)
    assert got.dtype == dtype, f"dtype {got.dtype} != expected {dtype}"
    args = (stride, padding, dilation, groups)
    if dtype.kind == "i":
        want = conv2d_ref(input, weight, bias, *args, dtype=np.int64)
        assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
        np.testing.assert_array_equal(got, want)
        return
    want = conv2d_ref(input, weight, bias, *args)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    scale = tolerance_scale(input, weight, bias, *args)
    w_shape = np.shape(weight)
    n_terms = w_shape[1] * w_shape[2] * w_shape[3] + (bias is not None)
    limit = rtol_for(dtype, n_terms) * scale + atol_for(dtype)
    err = np.abs(got.astype(np.float64) - want)
    bad = ~(err <= limit)  # also catches NaN
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{int(bad.sum())} of {bad.size} outputs off (dtype {dtype}); "
            f"first at {idx}: got {got[idx]!r}, want {want[idx]!r}, "
            f"err {err[idx]:.3g} > limit {limit[idx]:.3g}; "
            f"max err/limit {float(np.nanmax(err / limit)):.3g}")


# -- the transposed convolution and the gradients ---------------------------------

def conv_transpose2d_ref(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                         groups=1, dilation=1):
    """``torch.nn.functional.conv_transpose2d`` in float64 by its definition:
    every input pixel times the kernel scattered into a full output at
    ``ih * s + kh * d``, then ``padding`` cut from each border (NCHW,
    batched). One NumPy scatter per kernel tap; shares nothing with fastconv."""
    x = np.asarray(input, np.float64)
    w = np.asarray(weight, np.float64)
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = map(pair, (stride, padding, output_padding,
                                                          dilation))
    n, c, h, wd = x.shape
    cin, out_g, kh, kw = w.shape
    in_g = cin // groups
    full_h = (h - 1) * sh + dh * (kh - 1) + 1 + oph
    full_w = (wd - 1) * sw + dw * (kw - 1) + 1 + opw
    full = np.zeros((n, out_g * groups, full_h, full_w))
    for g in range(groups):
        xg = x[:, g * in_g:(g + 1) * in_g]
        wg = w[g * in_g:(g + 1) * in_g]
        for i in range(kh):
            for j in range(kw):
                contribution = np.einsum("nchw,ck->nkhw", xg, wg[:, :, i, j])
                full[:, g * out_g:(g + 1) * out_g, i * dh:i * dh + (h - 1) * sh + 1:sh,
                     j * dw:j * dw + (wd - 1) * sw + 1:sw] += contribution
    out = full[:, :, ph:full_h - ph, pw:full_w - pw]
    if bias is not None:
        out = out + np.asarray(bias, np.float64).reshape(-1, 1, 1)
    return out


def conv2d_weight_ref(input, weight_shape, grad_output, stride=1, padding=0, dilation=1,
                      groups=1):
    """``torch.nn.grad.conv2d_weight`` in float64 by its definition: per
    kernel tap, the sum over the batch and pixels of grad_output times the
    input the tap sees (NCHW, batched, int padding)."""
    x = np.asarray(input, np.float64)
    go = np.asarray(grad_output, np.float64)
    (sh, sw), (ph, pw), (dh, dw) = map(pair, (stride, padding, dilation))
    k, in_g, kh, kw = weight_shape
    n, c, h, w = x.shape
    _, _, oh, ow = go.shape
    xp = np.zeros((n, c, h + 2 * ph + dh * kh + sh * oh, w + 2 * pw + dw * kw + sw * ow))
    xp[:, :, ph:ph + h, pw:pw + w] = x
    out_g = k // groups
    grad = np.zeros(weight_shape)
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                seen = xp[:, g * in_g:(g + 1) * in_g, i * dh:i * dh + sh * oh:sh,
                          j * dw:j * dw + sw * ow:sw]
                grad[g * out_g:(g + 1) * out_g, :, i, j] = np.einsum(
                    "nkhw,nchw->kc", go[:, g * out_g:(g + 1) * out_g], seen)
    return grad
