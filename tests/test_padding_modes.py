"""padding_mode: "zeros", "reflect", "replicate", "circular".

The float64 checks pad with ``np.pad`` (an implementation independent of
fastconv's) and convolve with the reference; the torch checks compare with
``torch.nn.Conv2d(padding_mode=...)``, errors included.
"""

import numpy as np
import pytest

import fastconv
from fastconv._padding import pad_nchw
from reference import assert_conv_close, resolve_padding

NUMPY_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
              "circular": "wrap"}
MODES = ["zeros", "reflect", "replicate", "circular"]


def padded_reference_input(x, padding, kernel, mode, dilation=1):
    """``x`` (N, C, H, W) padded by np.pad the way torch pads for ``mode``."""
    (top, bottom), (left, right) = resolve_padding(padding, kernel, dilation)
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), mode=NUMPY_MODE[mode])


GEOMETRIES = [(1, (3, 3), 1), (2, (3, 3), 1), ((1, 3), (3, 3), 1), ((0, 2), (1, 3), 1),
              ("same", (3, 3), 1), ("same", (2, 4), 1), ("same", (3, 3), 2),
              ("valid", (3, 3), 1)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding, kernel, dilation, algorithm", [
    geometry + (algorithm,) for geometry in GEOMETRIES for algorithm in ("direct", "winograd4")
    if algorithm == "direct" or geometry[1:] == ((3, 3), 1)])
def test_float64_reference(mode, padding, kernel, dilation, algorithm, rng):
    x = rng.standard_normal((2, 4, 7, 6))
    w = rng.standard_normal((5, 4) + kernel)
    b = rng.standard_normal(5)
    layer = fastconv.Conv2d(w, b, padding=padding, dilation=dilation, padding_mode=mode,
                            algorithm=algorithm)
    got = layer(x)
    assert_conv_close(got, padded_reference_input(x, padding, kernel, mode, dilation), w, b,
                      dilation=dilation)
    functional = fastconv.conv2d(x, w, b, padding=padding, dilation=dilation,
                                 padding_mode=mode, algorithm=algorithm)
    np.testing.assert_array_equal(functional, got)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_strided_grouped_unbatched_integer(mode, rng):
    x = rng.integers(-5, 5, (4, 6, 7))
    w = rng.integers(-3, 3, (6, 2, 3, 2))
    got = fastconv.Conv2d(w, stride=(2, 1), padding=(2, 1), groups=2, padding_mode=mode)(x)
    assert got.dtype == np.int64 and got.ndim == 3
    assert_conv_close(got, padded_reference_input(x[None], (2, 1), (3, 2), mode)[0], w,
                      stride=(2, 1), groups=2)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint8])
def test_pad_nchw_matches_numpy(mode, dtype, rng):
    x = rng.integers(0, 100, (2, 3, 5, 4)).astype(dtype)
    view = x[:, :, ::-1, :]  # not contiguous
    pads = ((2, 4), (3, 1))
    want = np.pad(view, ((0, 0), (0, 0)) + pads, mode=NUMPY_MODE[mode])
    got = pad_nchw(view, pads, mode, np.float64)
    assert got.flags.c_contiguous and got.dtype == np.float64
    np.testing.assert_array_equal(got, want)


def test_nhwc_and_out(rng):
    x = rng.standard_normal((2, 5, 6, 3))  # NHWC
    w = rng.standard_normal((4, 3, 3, 3))
    out = np.empty((2, 5, 6, 4))
    got = fastconv.conv2d(x, w, padding=1, padding_mode="reflect", layout="NHWC", out=out)
    assert got is out
    want_input = padded_reference_input(x.transpose(0, 3, 1, 2), 1, (3, 3), "reflect")
    assert_conv_close(out.transpose(0, 3, 1, 2), want_input, w)


def test_empty_batch_and_no_padding():
    w = np.ones((2, 1, 3, 3))
    assert fastconv.Conv2d(w, padding=1, padding_mode="reflect")(
        np.ones((0, 1, 4, 4))).shape == (0, 2, 4, 4)
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(fastconv.conv2d(x, w, padding_mode="circular"),
                                  fastconv.conv2d(x, w))


@pytest.mark.parametrize("mode, padding, size", [
    ("reflect", 3, (3, 3)), ("reflect", (1, 4), (5, 4)), ("reflect", 1, (1, 5)),
    ("circular", 4, (3, 3)), ("circular", (0, 5), (3, 4)),
])
def test_padding_too_large_errors(mode, padding, size):
    layer = fastconv.Conv2d(np.ones((1, 1, 1, 1)), padding=padding, padding_mode=mode)
    with pytest.raises(ValueError, match=f"padding_mode='{mode}'.*padding"):
        layer(np.ones((1, 1) + size))


@pytest.mark.parametrize("mode", ["Reflect", "constant", None, 0])
def test_unknown_padding_mode(mode):
    with pytest.raises(ValueError, match="padding_mode must be one of 'zeros', 'reflect'"):
        fastconv.Conv2d(np.ones((1, 1, 3, 3)), padding_mode=mode)
    with pytest.raises(ValueError, match="padding_mode"):
        fastconv.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)), padding_mode=mode)


# --- PyTorch ------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("config", [
    dict(kernel_size=3, padding=1), dict(kernel_size=3, padding=(2, 1), stride=2),
    dict(kernel_size=(2, 3), padding="same", dilation=(2, 1)),
    dict(kernel_size=3, padding=2, groups=2, bias=False), dict(kernel_size=3, padding="valid"),
])
def test_matches_torch(torch, mode, config, rng):
    torch.manual_seed(0)
    module = torch.nn.Conv2d(4, 6, padding_mode=mode, **config)
    x = rng.standard_normal((2, 4, 6, 7)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    layer = fastconv.Conv2d(module.weight.detach().numpy(),
                            None if module.bias is None else module.bias.detach().numpy(),
                            module.stride, module.padding, module.dilation, module.groups,
                            padding_mode=mode)
    got = layer(x)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode, padding, size", [
    ("reflect", 3, (3, 3)), ("reflect", 2, (4, 2)), ("circular", 4, (3, 3)),
    ("circular", 3, (3, 3)), ("reflect", 2, (3, 3)), ("replicate", 5, (2, 2)),
])
def test_errors_as_torch(torch, mode, padding, size):
    """fastconv raises ValueError exactly where torch raises (RuntimeError)."""
    module = torch.nn.Conv2d(1, 1, 1, padding=padding, padding_mode=mode)
    layer = fastconv.Conv2d.from_torch(module)
    x = np.ones((1, 1) + size, np.float32)
    try:
        with torch.no_grad():
            want = module(torch.from_numpy(x)).numpy()
    except RuntimeError:
        with pytest.raises(ValueError, match="padding_mode"):
            layer(x)
    else:
        np.testing.assert_allclose(layer(x), want, rtol=1e-6, atol=1e-6)
