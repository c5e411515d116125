"""fastconv.plan: every kernel path is reachable and named, a call runs the
plan it reports, and the workspace it reports is what the call allocates."""

import tracemalloc

import numpy as np
import pytest

import fastconv
from fastconv import _direct, _direct_gemm, _plan, _winograd

LANES = _direct.lanes_width(np.float32) > 0

# (input shape, weight shape, options, threads, path)
PATHS = [
    ((2, 8, 20, 20), (8, 1, 3, 3), dict(groups=8, padding=1), 2, "planes"),
    ((1, 16, 30, 30), (24, 16, 3, 3), dict(padding=1, algorithm="direct"), 2, "rows"),
    ((2, 16, 30, 30), (24, 16, 3, 3), dict(stride=2, algorithm="direct"), 1, "rows"),
    # in reduction chunks, with their sums
    ((1, 64, 30, 30), (24, 64, 3, 3), dict(stride=2, padding=1, algorithm="direct"), 2, "rows"),
    ((2, 32, 20, 20), (24, 32, 1, 1), {}, 2, "packed"),
    ((1, 256, 14, 14), (512, 256, 1, 1), dict(stride=2), 2, "shared_columns"),
    # a pointwise stride-1 layer packs contiguous runs: no shared phase
    ((1, 256, 7, 7), (512, 256, 1, 1), {}, 2, "packed"),
    pytest.param((1, 64, 7, 7), (128, 64, 3, 3), dict(padding=1, algorithm="direct",
                                                       prepared=True), 2, "channel_lanes",
                 marks=pytest.mark.skipif(not LANES, reason="needs the AVX-512 tile")),
    ((2, 16, 24, 24), (32, 16, 3, 3), dict(padding=1, algorithm="winograd4"), 1,
     "winograd_tiles"),
    ((1, 64, 14, 14), (64, 64, 3, 3), dict(padding=1, algorithm="winograd4"), 2,
     "winograd_cooperative"),
]


def _numpy_bytes_at_kernel_calls(monkeypatch):
    """Bytes of the NumPy arrays allocated since tracemalloc started and
    alive when a compiled kernel starts (packed weights, padded copies, the
    channel-lanes offsets), recorded per kernel call."""
    seen = []
    domain = np.lib.tracemalloc_domain
    for module in (_direct, _direct_gemm, _winograd):
        for name in dir(module):
            if name.startswith("conv2d_"):
                def spy(*args, _kernel=getattr(module, name)):
                    snapshot = tracemalloc.take_snapshot().filter_traces(
                        [tracemalloc.DomainFilter(True, domain)])
                    seen.append(sum(stat.size for stat in snapshot.statistics("filename")))
                    return _kernel(*args)

                monkeypatch.setattr(module, name, spy)
    return seen


def _call(monkeypatch, input_shape, weight_shape, options, threads, dtype=np.float32):
    """Run the call ``fastconv.plan`` describes; returns (plan, scratch bytes
    the kernels held at once on the busiest thread, NumPy bytes alive when
    the kernel started)."""
    options = dict(options)
    prepared = options.pop("prepared", False)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(input_shape).astype(dtype)
    w = rng.standard_normal(weight_shape).astype(dtype)
    plan = fastconv.plan(input_shape, weight_shape, dtype=dtype, num_threads=threads,
                         prepared=prepared, **options)
    if prepared:
        layer = fastconv.Conv2d(w, **options, num_threads=threads)
        out = layer(x)  # transforms its weights once

        def run():
            layer(x, out)
    else:
        out = fastconv.conv2d(x, w, **options, num_threads=threads)

        def run():
            fastconv.conv2d(x, w, **options, num_threads=threads, out=out)
    with monkeypatch.context() as patch:
        numpy_bytes = _numpy_bytes_at_kernel_calls(patch)
        _direct.scratch_peak_bytes(True)  # the package's one scratch pool
        tracemalloc.start()
        try:
            run()
        finally:
            tracemalloc.stop()
    scratch = _direct.scratch_peak_bytes(True)
    want = fastconv.conv2d(x, w, **{**options, "algorithm": "direct"}, num_threads=1)
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    (numpy_bytes,) = numpy_bytes
    return plan, scratch, numpy_bytes


@pytest.mark.parametrize("input_shape, weight_shape, options, threads, path", PATHS)
def test_every_path_is_reachable_and_named(monkeypatch, input_shape, weight_shape, options,
                                           threads, path):
    plan, scratch, _ = _call(monkeypatch, input_shape, weight_shape, options, threads)
    assert plan.path == path
    assert plan.algorithm == ("winograd" if path.startswith("winograd") else "direct")
    assert (plan.tile is not None) == (plan.algorithm == "winograd")
    assert 1 <= plan.threads <= threads
    assert scratch > 0
    assert path in repr(plan) and "workspace_bytes" in repr(plan)


@pytest.mark.parametrize("input_shape, weight_shape, options, threads, path", PATHS)
def test_workspace_is_what_the_call_allocates(monkeypatch, input_shape, weight_shape,
                                              options, threads, path):
    """At one thread the workspace is the kernel's scratch plus the NumPy
    arrays the call made for it (packed weights, padded copies), within 5%;
    at more threads every thread holds its share."""
    plan, scratch, numpy_bytes = _call(monkeypatch, input_shape, weight_shape, options, 1)
    assert plan.threads == 1
    assert abs(plan.workspace_bytes - (scratch + numpy_bytes)) <= 0.05 * plan.workspace_bytes
    if threads > 1:
        plan, busiest, numpy_bytes = _call(monkeypatch, input_shape, weight_shape, options,
                                           threads)
        kernel = plan.workspace_bytes - numpy_bytes
        assert busiest <= kernel * 1.05 and kernel <= plan.threads * busiest * 1.05


def test_plan_follows_threads_and_dtype():
    args = ((1, 64, 56, 56), (64, 64, 3, 3))
    with fastconv.threads(1):
        assert fastconv.plan(*args, padding=1).threads == 1
    assert fastconv.plan(*args, padding=1, num_threads=2).threads == 2
    assert fastconv.plan(*args, dtype=np.int32).algorithm == "direct"
    half = fastconv.plan(*args, padding=1, dtype=np.float16)
    assert half == fastconv.plan(*args, padding=1, dtype=np.float32)
    # unbatched and channels-last shapes plan like their NCHW batch of one
    assert fastconv.plan(args[0][1:], args[1], padding=1) == fastconv.plan(*args, padding=1)
    nhwc = fastconv.plan((1, 56, 56, 64), args[1], padding=1, layout="NHWC")
    assert nhwc == fastconv.plan(*args, padding=1)


def test_layer_plan_is_the_prepared_plan():
    w = np.zeros((128, 64, 3, 3), np.float32)
    layer = fastconv.Conv2d(w, padding=1, num_threads=2)
    assert layer.plan((1, 64, 7, 7)) == fastconv.plan((1, 64, 7, 7), w.shape, padding=1,
                                                      num_threads=2, prepared=True)
    assert layer.plan((1, 64, 7, 7), num_threads=1).threads == 1


@pytest.mark.parametrize("call, match", [
    (lambda: fastconv.plan((1, 3, 8, 8), (4, 3, 3)), "weight_shape"),
    (lambda: fastconv.plan((3, 8), (4, 3, 3, 3)), "input must have 4 dimensions"),
    (lambda: fastconv.plan((1, 4, 8, 8), (4, 3, 3, 3)), "C = weight.shape"),
    (lambda: fastconv.plan((1, 3, 8, 8), (4, 3, 3, 3), stride=2, algorithm="winograd"),
     "needs stride 1, dilation 1 and a kernel it has tiles for"),
    (lambda: fastconv.plan((1, 3, 8, 8), (4, 3, 3, 3), algorithm="fast"), "algorithm"),
    (lambda: fastconv.plan((1, 3, 8, 8), (4, 3, 3, 3), dtype=np.int64,
                           algorithm="winograd"), "floating-point"),
])
def test_plan_checks_its_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("path, blocking", [
    ("packed", {"kc_max": 0, "pixel_blocks": 1, "channel_blocks": 1, "weights_outer": 0}),
    ("packed", {"kc_max": 8, "pixel_blocks": 10**6, "channel_blocks": 1, "weights_outer": 1}),
    ("packed", {"kc_max": 8, "pixel_blocks": 1, "channel_blocks": 99, "weights_outer": 0}),
    ("packed", {"kc_max": 8, "pixel_blocks": 1, "channel_blocks": 1, "weights_outer": 2}),
    ("rows", {"row_blocks": 0, "channel_blocks": 1, "dense": 1}),
    ("rows", {"row_blocks": 99, "channel_blocks": 1, "dense": 0}),
    ("shared_columns", {"chunk_taps": 0}),
    ("packed", {"pixel_blocks": 1, "channel_blocks": 1}),  # a key missing
])
def test_gemm_drivers_reject_a_blocking_that_does_not_fit(path, blocking):
    """A driver executes the blocking it is given, so it checks it first: a
    wrong one must be an error, never a write out of bounds."""
    x = np.ones((1, 8, 10, 10), np.float32)
    out = np.empty((1, 4, 8, 8), np.float32)
    weight, tails, bias = _direct.pack_weights(np.ones((4, 8, 3, 3), np.float32),
                                               np.zeros(4, np.float32), 1)
    with pytest.raises((ValueError, KeyError)):
        getattr(_direct_gemm, f"conv2d_{path}")(x, weight, tails, bias, out, 3, 3, 1, 1, 0, 0,
                                                 1, 1, 1, 1, blocking)
    plan = fastconv.plan(x.shape, (4, 8, 3, 3), algorithm="direct", num_threads=1)
    getattr(_direct_gemm, f"conv2d_{plan.path}")(x, weight, tails, bias, out, 3, 3, 1, 1, 0,
                                                  0, 1, 1, 1, 1, plan.blocking)
    np.testing.assert_allclose(out, fastconv.conv2d(x, np.ones((4, 8, 3, 3), np.float32)))


def test_planes_driver_rejects_a_blocking_that_does_not_fit():
    x = np.ones((1, 4, 10, 10), np.float32)
    out = np.empty((1, 4, 8, 8), np.float32)
    weight, bias = _direct.pack_weights(np.ones((4, 1, 3, 3), np.float32),
                                        np.zeros(4, np.float32), 4, True)[::2]
    for rows in (0, 9):
        with pytest.raises(ValueError, match="row_blocks"):
            _direct.conv2d_planes(x, weight, bias, out, 3, 3, 1, 1, 0, 0, 1, 1, 4, 1,
                                  {"row_blocks": rows})


def test_the_cases_above_reach_every_path_and_plans_are_read_only():
    named = {case.values[-1] if hasattr(case, "values") else case[-1] for case in PATHS}
    # The FFT paths (one per FFT library) have their own workspace test in
    # test_fft.py: most of their memory is the FFTs' arrays, not kernel scratch.
    assert named | {"fft_scipy", "fft_numpy"} == set(_plan.PATHS)
    plan = fastconv.plan((1, 16, 30, 30), (24, 16, 3, 3), padding=1, algorithm="direct")
    with pytest.raises(TypeError):
        plan.blocking["row_blocks"] = 7  # plans are cached: nobody may change one
    with pytest.raises(AttributeError):
        plan.threads = 3
    # equal plans have equal blocking
    again = fastconv.plan((1, 16, 30, 30), (24, 16, 3, 3), padding=1, algorithm="direct")
    assert again == plan and hash(again) == hash(plan) and again.blocking == plan.blocking


@pytest.mark.parametrize("kernel, channels", [(1, 300), (1, 40), (3, 24)])
def test_packed_loop_orders_give_the_same_bits(kernel, channels):
    """The packed path's two tile orders (weight panels or pixel panels
    outside) sum every output in the same order: bit-identical results, in
    one reduction chunk and in several."""
    rng = np.random.default_rng(kernel * 1000 + channels)
    x = rng.standard_normal((2, channels, 9, 11)).astype(np.float32)
    weight = rng.standard_normal((20, channels, kernel, kernel)).astype(np.float32)
    packed = _direct.pack_weights(weight, rng.standard_normal(20).astype(np.float32), 1)
    results = []
    for weights_outer in (0, 1):
        out = np.empty((2, 20, 9 - kernel + 1, 11 - kernel + 1), np.float32)
        blocking = {"kc_max": min(128, channels * kernel * kernel), "pixel_blocks": 2,
                    "channel_blocks": 2,
                    "weights_outer": weights_outer}
        _direct_gemm.conv2d_packed(x, *packed, out, kernel, kernel, 1, 1, 0, 0, 1, 1, 1, 1,
                                   blocking)
        results.append(out)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_allclose(results[0], fastconv.conv2d(
        x, weight, packed[2][:20], algorithm="direct"), rtol=1e-5, atol=1e-4)
