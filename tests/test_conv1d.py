"""conv1d: torch.nn.functional.conv1d semantics on the 2-D kernels."""

import numpy as np
import pytest

import fastconv
from reference import assert_conv_close

CASES = [
    # (N, C, L), (K, C/groups, kL), kwargs
    ((2, 3, 17), (4, 3, 3), dict()),
    ((2, 3, 17), (4, 3, 3), dict(stride=2, padding=1)),
    ((1, 4, 20), (6, 2, 5), dict(groups=2, dilation=3, padding=(4,))),
    ((3, 2, 9), (2, 2, 4), dict(padding="same")),
    ((3, 2, 9), (2, 2, 4), dict(padding="same", dilation=2)),
    ((2, 2, 9), (5, 2, 4), dict(padding="valid", stride=(3,), dilation=(2,))),
    ((2, 6, 8), (6, 1, 3), dict(groups=6, padding=1)),
    ((2, 3, 5), (4, 3, 1), dict(stride=4)),
]


def reference_1d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """The 2-D float64 reference on (N, C, 1, L): (input, weight, bias, kwargs)."""
    one = lambda v: v[0] if isinstance(v, tuple) else v  # noqa: E731
    pad = padding if isinstance(padding, str) else (0, one(padding))
    return (x[..., None, :], w[:, :, None, :], b,
            dict(stride=(1, one(stride)), padding=pad, dilation=(1, one(dilation)),
                 groups=groups))


@pytest.mark.parametrize("x_shape, w_shape, kwargs", CASES)
@pytest.mark.parametrize("bias", [False, True])
def test_float64_reference(x_shape, w_shape, kwargs, bias, rng):
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0]) if bias else None
    got = fastconv.conv1d(x, w, b, **kwargs)
    assert got.ndim == 3
    x2, w2, b2, kw2 = reference_1d(x, w, b, **kwargs)
    assert_conv_close(got[:, :, None, :], x2, w2, b2, **kw2)
    # Unbatched input, unbatched result.
    np.testing.assert_array_equal(fastconv.conv1d(x[0], w, b, **kwargs), got[0])


@pytest.mark.parametrize("x_shape, w_shape, kwargs", CASES[:4])
def test_nlc_layout_and_out(x_shape, w_shape, kwargs, rng):
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    want = fastconv.conv1d(x, w, **kwargs)
    x_nlc = np.ascontiguousarray(x.transpose(0, 2, 1))
    np.testing.assert_array_equal(fastconv.conv1d(x_nlc, w, layout="NLC", **kwargs),
                                  want.transpose(0, 2, 1))
    np.testing.assert_array_equal(fastconv.conv1d(x_nlc[0], w, layout="NLC", **kwargs),
                                  want[0].T)
    out = np.empty(want.shape, np.float32)
    assert fastconv.conv1d(x, w, out=out, **kwargs) is out
    np.testing.assert_array_equal(out, want)
    out_nlc = np.empty(want.transpose(0, 2, 1).shape, np.float32)
    assert fastconv.conv1d(x_nlc, w, out=out_nlc, layout="NLC", **kwargs) is out_nlc
    np.testing.assert_array_equal(out_nlc, want.transpose(0, 2, 1))


def test_integer_relu_and_padding_mode(rng):
    x = rng.integers(-9, 9, (2, 3, 11))
    w = rng.integers(-3, 3, (4, 3, 3))
    got = fastconv.conv1d(x, w, padding=2, activation="relu", padding_mode="circular")
    assert got.dtype == np.int64
    x_padded = np.pad(x, ((0, 0), (0, 0), (2, 2)), mode="wrap")
    plain = fastconv.conv1d(x_padded, w)
    np.testing.assert_array_equal(got, np.maximum(plain, 0))


@pytest.mark.parametrize("call, error, match", [
    (lambda x, w: fastconv.conv1d(x[0, 0], w), ValueError,
     r"input must have 3 dimensions \(N, C, L\) or 2 \(C, L\)"),
    (lambda x, w: fastconv.conv1d(x[..., None], w), ValueError, "input must have 3 dim"),
    (lambda x, w: fastconv.conv1d(x, w[..., None]), ValueError,
     r"weight must have 3 dimensions \(K, C/groups, kL\)"),
    (lambda x, w: fastconv.conv1d(x, w, stride=(1, 2)), ValueError,
     "stride must be an int or a 1-tuple for conv1d"),
    (lambda x, w: fastconv.conv1d(x, w, padding=(1, 1)), ValueError, "padding .*1-tuple"),
    (lambda x, w: fastconv.conv1d(x, w, dilation=0), ValueError, "dilation must be >= 1"),
    (lambda x, w: fastconv.conv1d(x, w, stride=2.0), TypeError, "stride"),
    (lambda x, w: fastconv.conv1d(x, w, padding="same", stride=2), ValueError,
     "padding='same' needs stride 1"),
    (lambda x, w: fastconv.conv1d(x, w, padding="full"), ValueError, "padding"),
    (lambda x, w: fastconv.conv1d(x, w, algorithm="winograd"), ValueError,
     "algorithm for conv1d must be 'auto', 'direct' or 'fft'"),
    (lambda x, w: fastconv.conv1d(x[:, :2], w), ValueError,
     r"input has C=2 channels but weight of shape \(4, 3, 3\)"),
    (lambda x, w: fastconv.conv1d(x[:, :, :2], w), ValueError,
     "kernel size 3 with dilation 1 spans 3, larger than the padded input length 2"),
    (lambda x, w: fastconv.conv1d(x[:, :, :0], w), ValueError, "nonzero length"),
    (lambda x, w: fastconv.conv1d(x, w, padding=5, padding_mode="reflect"), ValueError,
     "smaller than the input length"),
    (lambda x, w: fastconv.conv1d(x, w, layout="NCHW"), ValueError,
     "layout must be one of 'NCL', 'NLC'"),
    (lambda x, w: fastconv.conv1d(x, w, out=np.empty((2, 4, 4))), ValueError,
     r"out must have shape \(2, 4, 3\) .*got shape \(2, 4, 4\)"),
    (lambda x, w: fastconv.conv1d(x, w[:, :, :0]), ValueError, "zero-sized"),
])
def test_errors(call, error, match):
    x = np.ones((2, 3, 5))
    w = np.ones((4, 3, 3))
    with pytest.raises(error, match=match):
        call(x, w)


# --- PyTorch ------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("x_shape, w_shape, kwargs", CASES)
def test_matches_torch(x_shape, w_shape, kwargs, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    want = torch.nn.functional.conv1d(torch.from_numpy(x), torch.from_numpy(w),
                                      torch.from_numpy(b), **kwargs).numpy()
    got = fastconv.conv1d(x, w, b, **kwargs)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    unbatched = torch.nn.functional.conv1d(torch.from_numpy(x[0]), torch.from_numpy(w),
                                           torch.from_numpy(b), **kwargs).numpy()
    np.testing.assert_allclose(fastconv.conv1d(x[0], w, b, **kwargs), unbatched,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_padding_mode_matches_torch_conv1d_module(mode, rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    module = torch.nn.Conv1d(3, 5, 4, padding=3, padding_mode=mode, dilation=2)
    x = rng.standard_normal((2, 3, 10)).astype(np.float32)
    with torch.no_grad():
        want = torch.relu(module(torch.from_numpy(x))).numpy()
    got = fastconv.conv1d(x, module.weight.detach().numpy(), module.bias.detach().numpy(),
                          padding=3, dilation=2, padding_mode=mode, activation="relu")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_no_copy_of_contiguous_input(monkeypatch, rng):
    """The kernel reads the caller's (N, C, L) array through a view."""
    x = rng.standard_normal((2, 3, 40)).astype(np.float32)
    seen = []
    from fastconv import _direct_gemm as drivers
    for name in ("conv2d_packed", "conv2d_rows", "conv2d_shared_columns"):
        def spy(x4d, *args, _kernel=getattr(drivers, name)):
            seen.append(np.shares_memory(x4d, x))
            return _kernel(x4d, *args)

        monkeypatch.setattr(drivers, name, spy)
    fastconv.conv1d(x, np.ones((4, 3, 5), np.float32))
    assert seen == [True]
