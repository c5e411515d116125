"""The FFT convolution (``algorithm="fft"``): accuracy against the float64
reference within the documented bound, every argument it takes, both FFT
libraries (SciPy's and NumPy's), its plans and memory, and when ``"auto"``
picks it.

The documented bound (docs/algorithms.md): every output is within
``2 * eps * max(1, log2(fft_h * fft_w)) * max(conv(|x|, |w|) + |bias|)`` of the exact
correlation, the maximum taken over the whole result (an FFT spreads its
rounding errors over each window, unlike a direct sum).
"""

import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import _cpu, _fft, _plan
from reference import conv2d_ref, resolve_padding, tolerance_scale

try:
    import scipy.fft  # noqa: F401
    BACKENDS = ["scipy", "numpy"]
except ImportError:  # the NumPy FFT is always there
    BACKENDS = ["numpy"]

try:
    import torch
except ImportError:
    torch = None


@pytest.fixture(params=BACKENDS)
def backend(request):
    _fft.set_backend(request.param)
    yield request.param
    _fft.set_backend(None)


def fft_bound(got, x, w, b, plan, padding=0, dilation=1, groups=1):
    """The documented error bound for this call's result."""
    eps = np.finfo(got.dtype if got.dtype != np.float16 else np.float32).eps
    scale = tolerance_scale(x, w, b, 1, padding, dilation, groups)
    points = plan.blocking["fft_h"] * plan.blocking["fft_w"]
    return 2 * eps * max(1.0, math.log2(points)) * float(scale.max()) + 1e-30


def check(x, w, b=None, padding=0, dilation=1, groups=1, **kwargs):
    """Run algorithm="fft" and hold it to the reference and the bound."""
    got = fastconv.conv2d(x, w, b, padding=padding, dilation=dilation, groups=groups,
                          algorithm="fft", **kwargs)
    layout = kwargs.get("layout", "NCHW")
    x_nchw = np.moveaxis(x, -1, -3) if layout == "NHWC" else x
    want = conv2d_ref(x_nchw, w, b, 1, padding, dilation, groups)
    got_nchw = np.moveaxis(got, -1, -3) if layout == "NHWC" else got
    assert got_nchw.shape == want.shape
    plan = fastconv.plan(x.shape, w.shape, padding=padding, dilation=dilation, groups=groups,
                         dtype=x.dtype, algorithm="fft", layout=layout,
                         num_threads=kwargs.get("num_threads"))
    assert plan.algorithm == "fft" and plan.path == f"fft_{_fft.backend()}"
    if got.size:
        err = np.abs(got_nchw.astype(np.float64) - want).max()
        assert err <= fft_bound(got, x_nchw, w, b, plan, padding, dilation, groups), err
    return got


def random_fft_case(seed):
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 3)
    groups = 1 if kind == 0 else int(rng.integers(2, 4))
    cg = 1 if kind == 2 else int(rng.integers(1, 9))
    kg = int(rng.integers(1, 7))
    kernel = (int(rng.integers(1, 14)), int(rng.integers(1, 14)))
    dilation = (int(rng.integers(1, 4)), int(rng.integers(1, 4))) if rng.random() < 0.3 else 1
    padding = ["same", "valid", int(rng.integers(0, 6)),
               (int(rng.integers(0, 6)), int(rng.integers(0, 6)))][rng.integers(0, 4)]
    (pt, pb), (pl, pr) = resolve_padding(padding, kernel, dilation)
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    h = max(1, dh * (kernel[0] - 1) + 1 - pt - pb) + int(rng.integers(0, 40))
    w = max(1, dw * (kernel[1] - 1) + 1 - pl - pr) + int(rng.integers(0, 40))
    batch = int(rng.integers(0, 4))
    dtype = [np.float32, np.float64][rng.integers(0, 2)]
    x = rng.standard_normal((batch, cg * groups, h, w)).astype(dtype)
    wt = rng.standard_normal((kg * groups, cg, *kernel)).astype(dtype)
    b = rng.standard_normal(kg * groups).astype(dtype) if rng.random() < 0.6 else None
    return x, wt, b, padding, dilation, groups


@pytest.mark.parametrize("seed", range(40))
def test_random_cases_match_the_reference(backend, seed):
    x, w, b, padding, dilation, groups = random_fft_case(seed)
    for threads in (1, 2):
        check(x, w, b, padding, dilation, groups, num_threads=threads)


@pytest.mark.parametrize("shape, kernel, channels", [
    ((1, 1, 200, 180), (15, 15), (1, 1)),   # single channel, windows of ~128
    ((2, 16, 70, 45), (11, 7), (16, 24)),  # several chunks of tiles, the GEMM products
    ((1, 40, 30, 30), (9, 9), (40, 20)),   # a reduction of 2 * 40
])
def test_larger_layers_match_the_reference(backend, shape, kernel, channels):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((channels[1], channels[0], *kernel)).astype(np.float32)
    b = rng.standard_normal(channels[1]).astype(np.float32)
    check(x, w, b, "same", num_threads=2)


def test_threads_do_not_change_the_result_and_chunks_only_round_off(backend, monkeypatch):
    """Threads take whole chunks, so the thread count does not change a bit
    of the result; other chunks change how the FFT library batches its
    transforms (and so its rounding), within the bound."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 8, 64, 50)).astype(np.float32)
    w = rng.standard_normal((12, 8, 7, 7)).astype(np.float32)
    whole = fastconv.conv2d(x, w, padding=3, algorithm="fft", num_threads=1)
    monkeypatch.setattr(_plan.fft, "CHUNK_BYTES", 1 << 14)
    _plan.clear_cache()
    plan = fastconv.plan(x.shape, w.shape, padding=3, algorithm="fft", num_threads=2)
    assert plan.blocking["band_rows"] < plan.blocking["tiles_h"] and plan.threads == 2
    chunked = fastconv.conv2d(x, w, padding=3, algorithm="fft", num_threads=1)
    np.testing.assert_array_equal(
        fastconv.conv2d(x, w, padding=3, algorithm="fft", num_threads=2), chunked)
    assert np.abs(chunked - whole).max() <= 2 * fft_bound(whole, x, w, None, plan, 3)
    # Chunks of a few tiles of a row: windows of a column range.
    monkeypatch.setattr(_plan.fft, "CHUNK_BYTES", 1 << 12)
    _plan.clear_cache()
    plan = fastconv.plan(x.shape, w.shape, padding=3, algorithm="fft", num_threads=2)
    assert plan.blocking["band_cols"] < plan.blocking["tiles_w"]
    narrow = fastconv.conv2d(x, w, padding=3, algorithm="fft", num_threads=2)
    np.testing.assert_array_equal(
        fastconv.conv2d(x, w, padding=3, algorithm="fft", num_threads=1), narrow)
    assert np.abs(narrow - whole).max() <= 2 * fft_bound(whole, x, w, None, plan, 3)
    depthwise = rng.standard_normal((8, 1, 9, 9)).astype(np.float32)
    np.testing.assert_array_equal(
        fastconv.conv2d(x, depthwise, padding=4, groups=8, algorithm="fft", num_threads=2),
        fastconv.conv2d(x, depthwise, padding=4, groups=8, algorithm="fft", num_threads=1))
    _plan.clear_cache()


@given(seed=st.integers(0, 2**32 - 1), threads=st.sampled_from([1, 2]))
@settings(max_examples=25)
@pytest.mark.fuzz
def test_property_random_fft_cases(seed, threads):
    x, w, b, padding, dilation, groups = random_fft_case(seed)
    check(x, w, b, padding, dilation, groups, num_threads=threads)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_padding_modes(mode):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 20, 17))
    w = rng.standard_normal((4, 3, 5, 7))
    got = fastconv.conv2d(x, w, padding=(2, 3), padding_mode=mode, algorithm="fft")
    want = fastconv.conv2d(x, w, padding=(2, 3), padding_mode=mode, algorithm="direct")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())


def test_layout_out_relu_unbatched_and_float16():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 21, 19, 6)).astype(np.float32)  # NHWC
    w = rng.standard_normal((5, 6, 5, 5)).astype(np.float32)
    out = np.empty((2, 21, 19, 5), np.float32)
    got = check(x, w, layout="NHWC", padding="same", out=out)
    assert got is out
    relu = fastconv.conv2d(x, w, padding="same", layout="NHWC", algorithm="fft",
                           activation="relu")
    np.testing.assert_array_equal(relu, np.maximum(got, 0))
    single = check(x[0].transpose(2, 0, 1).copy(), w, padding=2)
    assert single.shape == (5, 21, 19)
    half = fastconv.conv2d(x[:1].astype(np.float16), w.astype(np.float16), padding=2,
                           layout="NHWC", algorithm="fft")
    assert half.dtype == np.float16
    np.testing.assert_allclose(half.astype(np.float32), got[:1], rtol=2e-3, atol=2e-2)


def test_batch_zero_gives_an_empty_result():
    got = fastconv.conv2d(np.zeros((0, 3, 12, 12)), np.ones((2, 3, 5, 5)), algorithm="fft")
    assert got.shape == (0, 2, 8, 8)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("seed", range(8))
def test_matches_torch(seed):
    x, w, b, padding, dilation, groups = random_fft_case(100 + seed)
    got = fastconv.conv2d(x, w, b, padding=padding, dilation=dilation, groups=groups,
                          algorithm="fft")
    t = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a))
    want = torch.nn.functional.conv2d(t(x), t(w), t(b), padding=padding, dilation=dilation,
                                      groups=groups).numpy()
    scale = tolerance_scale(x, w, b, 1, padding, dilation, groups)
    assert got.shape == want.shape
    if got.size:
        # Both are within their own bounds of the exact result.
        assert np.abs(got - want).max() <= 1e-4 * scale.max() + 1e-30


# -- arguments and errors ----------------------------------------------------------

def test_fft_needs_stride_one_and_float_data():
    x, w = np.ones((1, 2, 9, 9)), np.ones((3, 2, 3, 3))
    with pytest.raises(ValueError, match="algorithm='fft' needs stride 1"):
        fastconv.conv2d(x, w, stride=2, algorithm="fft")
    with pytest.raises(ValueError, match="algorithm='fft' needs floating-point data"):
        fastconv.conv2d(x.astype(np.int64), w.astype(np.int64), algorithm="fft")
    with pytest.raises(ValueError, match="algorithm='fft' needs stride 1"):
        fastconv.Conv2d(w, stride=(1, 2), algorithm="fft")


def test_set_backend_rejects_unknown_names():
    with pytest.raises(ValueError, match="backend must be"):
        _fft.set_backend("mkl")


# -- NaN, Inf and auto ----------------------------------------------------------------

def test_forced_fft_spreads_nan_over_windows_and_auto_does_not(monkeypatch):
    """A NaN reaches every output of the windows that read it with
    algorithm="fft" (documented); "auto", when it picks the FFT, recomputes
    with the direct kernel so NaN lands exactly where PyTorch puts it."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 4, 64, 64)).astype(np.float32)
    w = rng.standard_normal((4, 4, 9, 9)).astype(np.float32)
    x[0, 1, 30, 30] = np.nan
    direct = fastconv.conv2d(x, w, padding=4, algorithm="direct")
    forced = fastconv.conv2d(x, w, padding=4, algorithm="fft")
    assert np.isnan(forced).sum() >= np.isnan(direct).sum()
    monkeypatch.setattr(_plan.fft, "faster_than_direct", lambda *args: True)
    _plan.clear_cache()
    assert fastconv.plan(x.shape, w.shape, padding=4).algorithm == "fft"
    auto = fastconv.conv2d(x, w, padding=4)
    np.testing.assert_array_equal(np.isnan(auto), np.isnan(direct))
    np.testing.assert_allclose(np.nan_to_num(auto), np.nan_to_num(direct), rtol=1e-4, atol=1e-3)
    _plan.clear_cache()


def test_auto_picks_fft_for_large_kernels_only():
    big = fastconv.plan((1, 1, 1024, 1024), (1, 1, 31, 31), padding="same", num_threads=1)
    assert big.algorithm == "fft"
    if _cpu.active_isa() == "avx512":
        # Below AVX-512 the direct kernel is slower and the FFT rightly
        # takes this one too (baseline: direct 18.0 ms, FFT 14.4 at 1 thread).
        # (Winograd F(4x4, 5x5) where its rule takes the layer.)
        assert fastconv.plan((1, 64, 56, 56), (64, 64, 5, 5), padding=2).algorithm in (
            "direct", "winograd")
    assert fastconv.plan((1, 64, 56, 56), (64, 64, 3, 3), padding=1).algorithm == "winograd"
    assert fastconv.plan((1, 1, 1024, 1024), (1, 1, 31, 31), stride=2).algorithm == "direct"
    assert fastconv.plan((1, 1, 256, 256), (1, 1, 31, 31), dtype="int64").algorithm == "direct"


# -- prepared layers and plans --------------------------------------------------------

def test_layer_transforms_its_weights_once_per_window(monkeypatch):
    calls = []
    original = _fft.weight_spectra

    def counting(*args):
        calls.append(args[3])
        return original(*args)

    monkeypatch.setattr(_fft, "weight_spectra", counting)
    rng = np.random.default_rng(4)
    layer = fastconv.Conv2d(rng.standard_normal((6, 3, 9, 9)), padding=4, algorithm="fft")
    x = rng.standard_normal((1, 3, 40, 40))
    first = layer(x)
    np.testing.assert_array_equal(layer(x), first)
    assert len(calls) == 1
    layer(rng.standard_normal((1, 3, 200, 200)))  # other windows: transformed again
    layer(x)
    assert len(calls) == len(set(calls)) <= 2


def test_plan_reports_windows_threads_and_memory():
    plan = fastconv.plan((1, 16, 256, 256), (16, 16, 11, 11), padding=5, algorithm="fft",
                         num_threads=2)
    b = plan.blocking
    assert plan.path == f"fft_{_fft.backend()}" and plan.tile is None
    assert b["tile_h"] == b["fft_h"] - 10 and b["tile_w"] == b["fft_w"] - 10
    assert b["tiles_h"] * b["tile_h"] >= 256 and b["tiles_w"] * b["tile_w"] >= 256
    assert plan.threads == 2
    assert "fft_h=" in repr(plan)


def test_large_images_are_transformed_in_bounded_chunks(backend):
    """A 4K image with a 31x31 kernel: the planned memory is a few copies of
    the image, not a transform of all of it at once."""
    plan = fastconv.plan((1, 1, 2160, 3840), (1, 1, 31, 31), padding="same",
                         algorithm="fft", num_threads=2)
    image = 2160 * 3840 * 4
    assert plan.blocking["band_rows"] < plan.blocking["tiles_h"]
    assert plan.workspace_bytes < 2 * image


def test_workspace_covers_what_a_call_allocates(backend):
    rng = np.random.default_rng(9)
    for shape, weight in [((1, 1, 300, 260), (1, 1, 21, 21)),
                          ((2, 8, 60, 60), (16, 8, 9, 9))]:
        x = rng.standard_normal(shape).astype(np.float32)
        w = rng.standard_normal(weight).astype(np.float32)
        plan = fastconv.plan(shape, weight, padding="same", algorithm="fft", num_threads=1)
        out = np.empty((shape[0], weight[0], shape[2], shape[3]), np.float32)
        fastconv.conv2d(x, w, padding="same", algorithm="fft", num_threads=1, out=out)
        tracemalloc.start()
        fastconv.conv2d(x, w, padding="same", algorithm="fft", num_threads=1, out=out)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert 0.5 * plan.workspace_bytes <= peak <= 1.5 * plan.workspace_bytes, (
            peak, plan.workspace_bytes)


@pytest.mark.parametrize("kernel", [(1, 31), (17, 1), (1, 1)])
def test_kernels_spanning_one_axis_transform_only_the_other(backend, kernel):
    """A 1 x k kernel needs no transform along the height: windows of height
    1 (a 1-D FFT per row)."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 3, 40, 50))
    w = rng.standard_normal((4, 3, *kernel))
    padding = (kernel[0] // 2, kernel[1] // 2)
    check(x, w, None, padding)
    plan = fastconv.plan(x.shape, w.shape, padding=padding, algorithm="fft", dtype="float64")
    assert (plan.blocking["fft_h"] == 1) == (kernel[0] == 1)
    assert (plan.blocking["fft_w"] == 1) == (kernel[1] == 1)


def test_conv1d_runs_the_fft():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((3, 4, 300)).astype(np.float32)
    w = rng.standard_normal((5, 4, 41)).astype(np.float32)
    got = fastconv.conv1d(x, w, padding=20, algorithm="fft")
    want = conv2d_ref(x[:, :, None], w[:, :, None], None, 1, (0, 20))[:, :, 0]
    scale = tolerance_scale(x[:, :, None], w[:, :, None], None, 1, (0, 20))
    assert np.abs(got - want).max() <= 2 * np.finfo(np.float32).eps * 20 * scale.max()


def test_run_chunks_raises_the_first_error_and_runs_every_chunk_otherwise():
    from fastconv import _spectral
    done = []
    _spectral.run_chunks(done.append, 7, 2)
    assert sorted(done) == list(range(7))

    def fail(index):
        if index == 3:
            raise ZeroDivisionError("chunk 3")

    with pytest.raises(ZeroDivisionError, match="chunk 3"):
        _spectral.run_chunks(fail, 7, 2)
