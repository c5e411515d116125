"""activation="relu": max(y, 0) fused into the kernels' output stage."""

import numpy as np
import pytest

import fastconv
from reference import assert_conv_close, conv2d_ref

ALGORITHMS = ["direct", "winograd2", "winograd4", "winograd6"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_equals_clipped_convolution(algorithm, dtype, rng):
    x = rng.standard_normal((2, 8, 11, 10)).astype(dtype)
    w = rng.standard_normal((7, 8, 3, 3)).astype(dtype)
    b = rng.standard_normal(7).astype(dtype)
    plain = fastconv.conv2d(x, w, b, padding=1, algorithm=algorithm)
    fused = fastconv.conv2d(x, w, b, padding=1, algorithm=algorithm, activation="relu")
    assert (plain < 0).any() and fused.dtype == plain.dtype
    np.testing.assert_array_equal(fused, np.maximum(plain, 0))


@pytest.mark.parametrize("kwargs", [dict(stride=2, padding=2), dict(dilation=2, groups=2),
                                    dict(padding="same")])
def test_float64_reference_direct(kwargs, rng):
    x = rng.standard_normal((2, 4, 9, 9))
    w = rng.standard_normal((6, 4 // kwargs.get("groups", 1), 3, 2))
    b = rng.standard_normal(6)
    got = fastconv.conv2d(x, w, b, activation="relu", **kwargs)
    want = conv2d_ref(x, w, b, **kwargs)
    # Clipping to 0 only moves values towards the reference's clipped ones.
    assert_conv_close(np.where(want > 0, got, want), x, w, b, **kwargs)
    assert (got[want <= 0] <= 1e-12).all() and (got >= 0).all()


@pytest.mark.parametrize("dtype", [np.int64, np.int8, np.float16])
def test_other_dtypes(dtype, rng):
    x = rng.integers(-4, 4, (1, 3, 6, 6)).astype(dtype)
    w = rng.integers(-2, 2, (5, 3, 3, 3)).astype(dtype)
    got = fastconv.conv2d(x, w, padding=1, activation="relu")
    want = np.maximum(conv2d_ref(x, w, padding=1), 0)
    if np.dtype(dtype).kind == "i":
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, want)
    else:
        assert got.dtype == np.float16
        np.testing.assert_allclose(got, want, rtol=2e-3)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_nan_stays_nan(algorithm, rng):
    x = rng.standard_normal((1, 8, 10, 10))
    x[0, 3, 4, 5] = np.nan
    w = rng.standard_normal((8, 8, 3, 3))
    plain = fastconv.conv2d(x, w, padding=1, algorithm=algorithm)
    fused = fastconv.conv2d(x, w, padding=1, algorithm=algorithm, activation="relu")
    np.testing.assert_array_equal(np.isnan(fused), np.isnan(plain))
    assert np.isnan(fused).any()


def test_layer_conv1d_out_and_nhwc(rng):
    x = rng.standard_normal((2, 6, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 6, 3, 3)).astype(np.float32)
    layer = fastconv.Conv2d(w, padding=1, activation="relu")
    assert layer.activation == "relu" and "activation='relu'" in repr(layer)
    want = np.maximum(fastconv.conv2d(x, w, padding=1), 0)
    np.testing.assert_array_equal(layer(x), want)
    out = np.empty_like(want)
    assert layer(x, out) is out
    np.testing.assert_array_equal(out, want)
    nhwc = fastconv.conv2d(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w, padding=1,
                           layout="NHWC", activation="relu")
    np.testing.assert_array_equal(nhwc, want.transpose(0, 2, 3, 1))
    x1 = x[:, :, 0]
    np.testing.assert_array_equal(
        fastconv.conv1d(x1, w[:, :, 0], activation="relu"),
        np.maximum(fastconv.conv1d(x1, w[:, :, 0]), 0))


@pytest.mark.parametrize("name", ["ReLU", "gelu", "", 1, False])
def test_unknown_activation(name):
    with pytest.raises(ValueError, match="activation must be one of None, 'relu'"):
        fastconv.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)), activation=name)
    with pytest.raises(ValueError, match="activation"):
        fastconv.Conv2d(np.ones((1, 1, 3, 3)), activation=name)


@pytest.mark.parametrize("algorithm", ["direct", "winograd4"])
def test_matches_torch(algorithm, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 16, 12, 12)).astype(np.float32)
    w = rng.standard_normal((8, 16, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    want = torch.relu(torch.nn.functional.conv2d(
        torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), padding=1)).numpy()
    got = fastconv.conv2d(x, w, b, padding=1, algorithm=algorithm, activation="relu")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
