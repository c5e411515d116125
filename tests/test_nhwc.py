"""layout="NHWC": channels-last input and output, weights still (K, C/g, kH, kW)."""

import numpy as np
import pytest

import fastconv
from reference import assert_conv_close

CASES = [
    # (N, C, H, W), (K, C/groups, kH, kW), kwargs, algorithms
    ((2, 8, 9, 7), (6, 8, 3, 3), dict(padding=1), ("direct", "winograd2", "winograd4",
                                                     "winograd6", "auto")),
    ((1, 4, 10, 11), (4, 2, 3, 2), dict(stride=(2, 1), dilation=(1, 2), groups=2),
     ("direct",)),
    ((2, 3, 6, 6), (1, 3, 3, 3), dict(padding="same"), ("direct", "winograd4")),
    ((3, 1, 5, 5), (5, 1, 1, 1), dict(), ("direct",)),
]
PARAMS = [(x, w, kw, a) for x, w, kw, algorithms in CASES for a in algorithms]


def to_nhwc(a):
    return np.ascontiguousarray(np.moveaxis(a, -3, -1))


@pytest.mark.parametrize("x_shape, w_shape, kwargs, algorithm", PARAMS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_float_reference(x_shape, w_shape, kwargs, algorithm, dtype, rng):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    got = fastconv.conv2d(to_nhwc(x), w, b, layout="NHWC", algorithm=algorithm, **kwargs)
    assert got.flags.c_contiguous and got.shape[-1] == w_shape[0]
    if algorithm.startswith("winograd"):  # Winograd's own error bound is looser
        want = fastconv.conv2d(x, w, b, algorithm=algorithm, **kwargs)
        np.testing.assert_array_equal(got, to_nhwc(want))
    else:
        assert_conv_close(np.moveaxis(got, -1, -3), x, w, b, **kwargs)
    unbatched = fastconv.conv2d(to_nhwc(x[0]), w, b, layout="NHWC", algorithm=algorithm,
                                **kwargs)
    assert unbatched.ndim == 3
    np.testing.assert_array_equal(unbatched, got[0])


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.uint8])
def test_other_dtypes(dtype, rng):
    x = rng.integers(0, 5, (2, 3, 6, 5)).astype(dtype)
    w = rng.integers(-2, 3, (4, 3, 3, 3)).astype(dtype)
    got = fastconv.conv2d(to_nhwc(x), w, padding=1, layout="NHWC")
    assert_conv_close(np.moveaxis(got, -1, -3), x, w, padding=1)


def test_strided_input_view(rng):
    """A non-contiguous NHWC view (e.g. a crop of a larger image batch)."""
    big = rng.standard_normal((3, 20, 20, 6))
    view = big[::2, 2:15, 1:19:2, :4]
    w = rng.standard_normal((5, 4, 3, 3))
    got = fastconv.conv2d(view, w, layout="NHWC")
    assert_conv_close(np.moveaxis(got, -1, -3), np.moveaxis(view, -1, -3), w)


def test_out(rng):
    x = rng.standard_normal((2, 7, 7, 4)).astype(np.float32)
    w = rng.standard_normal((3, 4, 3, 3)).astype(np.float32)
    want = fastconv.conv2d(x, w, padding=1, layout="NHWC")
    out = np.full((2, 7, 7, 3), np.nan, np.float32)
    assert fastconv.conv2d(x, w, padding=1, layout="NHWC", out=out) is out
    np.testing.assert_array_equal(out, want)
    out16 = np.empty((7, 7, 3), np.float16)  # unbatched, through a float32 buffer
    fastconv.conv2d(x[0].astype(np.float16), w.astype(np.float16), padding=1,
                    layout="NHWC", out=out16)
    np.testing.assert_allclose(out16, want[0], rtol=2e-3, atol=2e-2)
    with pytest.raises(ValueError, match=r"out must have shape \(2, 7, 7, 3\)"):
        fastconv.conv2d(x, w, padding=1, layout="NHWC", out=np.empty((2, 3, 7, 7), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        fastconv.conv2d(x, w, padding=1, layout="NHWC",
                        out=np.empty((2, 3, 7, 7), np.float32).transpose(0, 2, 3, 1))


def test_layer(rng):
    x = rng.standard_normal((1, 30, 30, 16)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    layer = fastconv.Conv2d(w, padding=1, layout="NHWC")
    assert layer.layout == "NHWC" and "layout='NHWC'" in repr(layer)
    want = fastconv.Conv2d(w, padding=1)(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    np.testing.assert_array_equal(layer(x), to_nhwc(want))
    assert layer.plan(x.shape) == fastconv.Conv2d(w, padding=1).plan((1, 16, 30, 30))


def test_errors():
    w = np.ones((2, 3, 3, 3))
    with pytest.raises(ValueError, match=r"input has C=5 channels"):
        fastconv.conv2d(np.ones((1, 8, 8, 5)), w, layout="NHWC")
    with pytest.raises(ValueError, match=r"\(N, H, W, C\) or 3 \(H, W, C\)"):
        fastconv.conv2d(np.ones((8, 3)), w, layout="NHWC")
    with pytest.raises(ValueError, match="layout must be one of 'NCHW', 'NHWC'"):
        fastconv.conv2d(np.ones((1, 3, 8, 8)), w, layout="nhwc")
    with pytest.raises(ValueError, match="layout"):
        fastconv.Conv2d(w, layout="CHWN")


def test_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 9, 8, 6)).astype(np.float32)  # NHWC
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    want = torch.nn.functional.conv2d(
        torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last),
        torch.from_numpy(w), torch.from_numpy(b), padding=1, groups=2).permute(0, 2, 3, 1)
    got = fastconv.conv2d(x, w, b, padding=1, groups=2, layout="NHWC")
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)
