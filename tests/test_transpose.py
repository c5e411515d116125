"""conv_transpose2d, ConvTranspose2d and fastconv.grad against the float64
reference (tests/reference.py), PyTorch when installed, and finite
differences."""

import pickle

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastconv
from fastconv import grad
from reference import conv2d_ref, conv2d_weight_ref, conv_transpose2d_ref

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs PyTorch")

# (input shape, weight shape, stride, padding, output_padding, groups, dilation)
CASES = [
    ((2, 4, 5, 6), (4, 3, 3, 3), 1, 1, 0, 1, 1),
    ((1, 6, 7, 7), (6, 4, 2, 2), 2, 0, 0, 1, 1),          # U-Net k2 s2
    ((2, 6, 5, 5), (6, 4, 4, 4), 2, 1, 0, 1, 1),          # k4 s2 p1
    ((1, 4, 5, 4), (4, 2, 3, 3), 2, 1, 1, 2, 1),          # k3 s2 p1 op1, groups
    ((3, 6, 4, 5), (6, 1, 3, 3), (2, 3), (1, 0), (1, 2), 6, 1),  # depthwise
    ((1, 4, 6, 6), (4, 3, 3, 2), (2, 1), (0, 2), (1, 0), 1, (2, 3)),
    ((1, 2, 3, 3), (2, 2, 3, 3), 3, 0, 2, 1, 2),          # op < stride, gcd(s, d) = 1
    ((1, 2, 4, 4), (2, 2, 3, 3), 2, 3, 1, 1, 2),          # gcd(s, d) = 2: bias-only phases
    ((1, 3, 6, 6), (3, 2, 3, 3), 1, 4, 1, 1, 3),          # padding > reach: input cropped
    ((0, 4, 5, 5), (4, 2, 3, 3), 2, 1, 1, 1, 1),          # batch 0
    ((2, 3, 1, 1), (3, 5, 5, 5), 4, 2, 3, 1, 1),
]


def _torch_transpose(x, w, b, stride, padding, output_padding, groups, dilation):
    return torch.nn.functional.conv_transpose2d(
        torch.from_numpy(x), torch.from_numpy(w), None if b is None else torch.from_numpy(b),
        stride, padding, output_padding, groups, dilation).numpy()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES)
def test_conv_transpose2d_matches_the_reference(case, dtype):
    x_shape, w_shape, stride, padding, output_padding, groups, dilation = case
    rng = np.random.default_rng(sum(x_shape) + sum(w_shape))
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[1] * groups).astype(dtype)
    args = (stride, padding, output_padding, groups, dilation)
    want = conv_transpose2d_ref(x, w, b, *args)
    got = fastconv.conv_transpose2d(x, w, b, *args)
    assert got.dtype == dtype and got.shape == want.shape
    tol = 1e-10 if dtype == np.float64 else 2e-4 * max(1.0, np.abs(want).max(initial=0))
    np.testing.assert_allclose(got, want, atol=tol, rtol=0)
    if torch is not None:
        np.testing.assert_allclose(got, _torch_transpose(x, w, b, *args), atol=tol, rtol=0)
    # NHWC, unbatched, out= and the layer give the same numbers
    nhwc = fastconv.conv_transpose2d(x.transpose(0, 2, 3, 1), w, b, *args, layout="NHWC")
    np.testing.assert_array_equal(nhwc.transpose(0, 3, 1, 2), got)
    out = np.full_like(got, np.nan)
    assert fastconv.conv_transpose2d(x, w, b, *args, out=out) is out
    np.testing.assert_array_equal(out, got)
    layer = fastconv.ConvTranspose2d(w, b, *args)
    np.testing.assert_array_equal(layer(x), got)
    np.testing.assert_array_equal(layer(x, num_threads=1), got)
    if x.shape[0]:
        np.testing.assert_array_equal(fastconv.conv_transpose2d(x[0], w, b, *args), got[0])


def test_integers_are_exact():
    rng = np.random.default_rng(3)
    x = rng.integers(-50, 50, (2, 4, 5, 5))
    w = rng.integers(-50, 50, (4, 3, 3, 3))
    for stride, padding, output_padding in ((1, 1, 0), (2, 1, 1), (3, 0, 2)):
        got = fastconv.conv_transpose2d(x, w, None, stride, padding, output_padding)
        want = conv_transpose2d_ref(x, w, None, stride, padding, output_padding)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, want.astype(np.int64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd_3x3_stride_1(dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 16, 12, 12)).astype(dtype)
    w = rng.standard_normal((16, 8, 3, 3)).astype(dtype)
    plans = fastconv.plan(x.shape, w.shape, padding=1, dtype=dtype,
                          operation="conv_transpose2d", algorithm="winograd4")
    assert [p.algorithm for p in plans] == ["winograd"]
    got = fastconv.conv_transpose2d(x, w, padding=1, algorithm="winograd4")
    want = conv_transpose2d_ref(x, w, padding=1)
    np.testing.assert_allclose(got, want, atol=1e-3 if dtype == np.float32 else 1e-9)


def test_errors_name_the_argument():
    x, w = np.ones((1, 4, 5, 5)), np.ones((4, 2, 3, 3))
    with pytest.raises(ValueError, match="output_padding must be smaller"):
        fastconv.conv_transpose2d(x, w, output_padding=1)
    with pytest.raises(ValueError, match="output_padding must be smaller"):
        fastconv.conv_transpose2d(x, w, stride=2, output_padding=2)
    fastconv.conv_transpose2d(x, w, dilation=2, output_padding=1)  # < dilation is allowed
    with pytest.raises(ValueError, match="padding"):
        fastconv.conv_transpose2d(x, w, padding=-1)
    with pytest.raises(ValueError, match="padding"):
        fastconv.conv_transpose2d(x, w, padding="same")
    with pytest.raises(ValueError, match="stride"):
        fastconv.conv_transpose2d(x, w, stride=0)
    with pytest.raises(ValueError, match="groups=3"):
        fastconv.conv_transpose2d(x, w, groups=3)
    with pytest.raises(ValueError, match="padding .* too large"):
        fastconv.conv_transpose2d(x, w, padding=5)
    with pytest.raises(ValueError, match="expects C = weight.shape\\[0\\] = 4"):
        fastconv.conv_transpose2d(np.ones((1, 3, 5, 5)), w)
    with pytest.raises(ValueError, match="bias"):
        fastconv.conv_transpose2d(x, w, np.ones(3))
    with pytest.raises(ValueError, match="algorithm"):
        fastconv.conv_transpose2d(x, w, stride=2, algorithm="winograd")
    with pytest.raises(TypeError, match="stride"):
        fastconv.conv_transpose2d(x, w, stride=1.5)
    w1 = np.ones((4, 2, 1, 1))
    with pytest.raises(ValueError, match="out must not share memory with weight"):
        fastconv.conv_transpose2d(np.ones((1, 4, 1, 1)), w1, out=w1[:1])


@needs_torch
def test_layer_from_torch_and_pickle():
    module = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1,
                                      groups=2, dilation=1)
    layer = fastconv.ConvTranspose2d.from_torch(module)
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 5)).astype(np.float32)
    want = module(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(layer(x), want, atol=1e-5)
    again = pickle.loads(pickle.dumps(layer))
    np.testing.assert_array_equal(again(x), layer(x))
    assert "ConvTranspose2d(4, 6" in repr(layer)
    assert all(p.path for p in layer.plan(x.shape))
    with pytest.raises(TypeError, match="ConvTranspose2d"):
        fastconv.ConvTranspose2d.from_torch(torch.nn.Conv2d(4, 6, 3))


# -- gradients ------------------------------------------------------------------

GRAD_CASES = [
    ((2, 4, 8, 8), (6, 4, 3, 3), 1, 1, 1, 1),
    ((1, 4, 9, 8), (4, 2, 3, 3), 2, 1, 1, 2),
    ((3, 6, 7, 7), (6, 1, 3, 3), 1, 2, 2, 6),       # depthwise, dilated
    ((2, 3, 11, 10), (5, 3, 4, 2), (3, 2), (2, 0), (1, 2), 1),
    ((1, 8, 7, 7), (8, 8, 1, 1), 2, 0, 1, 1),
    ((2, 2, 5, 5), (3, 2, 5, 5), 2, 2, 1, 1),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", GRAD_CASES)
def test_gradients_match_the_reference(case, dtype):
    x_shape, w_shape, stride, padding, dilation, groups = case
    rng = np.random.default_rng(sum(x_shape))
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    y_shape = conv2d_ref(x, w, None, stride, padding, dilation, groups).shape
    go = rng.standard_normal(y_shape).astype(dtype)
    args = (stride, padding, dilation, groups)
    tol = 1e-10 if dtype == np.float64 else 1e-3
    # conv2d_input is the adjoint of conv2d: <conv2d(x), go> = <x, grad_input>
    gi = grad.conv2d_input(x.shape, w, go, *args)
    assert gi.shape == x.shape and gi.dtype == dtype
    (sh, sw) = stride if isinstance(stride, tuple) else (stride, stride)
    y = conv2d_ref(x, w, None, *args)
    np.testing.assert_allclose(np.vdot(y, go), np.vdot(x, gi), rtol=1e-4 if tol > 1e-9 else 1e-10)
    gw = grad.conv2d_weight(x, w.shape, go, *args)
    assert gw.shape == w.shape and gw.dtype == dtype
    np.testing.assert_allclose(gw, conv2d_weight_ref(x, w.shape, go, *args),
                               atol=tol * max(1, np.abs(gw).max()), rtol=0)
    gb = grad.conv2d_bias(go)
    np.testing.assert_allclose(gb, go.sum(axis=(0, 2, 3)), rtol=1e-5)
    if torch is not None:
        tx, tw, tg = map(torch.from_numpy, (x, w, go))
        np.testing.assert_allclose(gi, torch.nn.grad.conv2d_input(x.shape, tw, tg, *args),
                                   atol=tol * max(1, np.abs(gi).max()), rtol=0)
        np.testing.assert_allclose(gw, torch.nn.grad.conv2d_weight(tx, w.shape, tg, *args),
                                   atol=tol * max(1, np.abs(gw).max()), rtol=0)
    # NHWC and one thread give the same numbers
    gw_nhwc = grad.conv2d_weight(x.transpose(0, 2, 3, 1), w.shape, go.transpose(0, 2, 3, 1),
                                 *args, layout="NHWC")
    np.testing.assert_array_equal(gw_nhwc, gw)
    np.testing.assert_array_equal(grad.conv2d_weight(x, w.shape, go, *args, num_threads=1), gw)
    gi_nhwc = grad.conv2d_input(x.transpose(0, 2, 3, 1).shape, w, go.transpose(0, 2, 3, 1),
                                *args, layout="NHWC")
    np.testing.assert_array_equal(gi_nhwc.transpose(0, 3, 1, 2), gi)


def test_finite_differences_float64():
    """Both gradients of L = sum(conv2d(x, w) * go) against central differences."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 4, 6, 5))
    w = rng.standard_normal((6, 2, 3, 2))
    args = dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)
    go = rng.standard_normal(fastconv.conv2d(x, w, **args).shape)

    def loss(x, w):
        return np.vdot(fastconv.conv2d(x, w, **args), go)

    gi = grad.conv2d_input(x.shape, w, go, **args)
    gw = grad.conv2d_weight(x, w.shape, go, **args)
    eps = 1e-6
    for array, gradient in ((x, gi), (w, gw)):
        for index in [tuple(rng.integers(0, s) for s in array.shape) for _ in range(12)]:
            plus, minus = array.copy(), array.copy()
            plus[index] += eps
            minus[index] -= eps
            numeric = ((loss(plus, w) - loss(minus, w)) if array is x
                       else (loss(x, plus) - loss(x, minus))) / (2 * eps)
            assert abs(numeric - gradient[index]) < 1e-6 * max(1, abs(numeric))


def test_gradients_of_integers_and_empty_batch():
    rng = np.random.default_rng(2)
    x = rng.integers(-9, 9, (2, 3, 6, 6))
    w = rng.integers(-9, 9, (4, 3, 3, 3))
    go = rng.integers(-9, 9, (2, 4, 3, 3))
    gw = grad.conv2d_weight(x, w.shape, go, stride=2, padding=1)
    assert gw.dtype == np.int64
    np.testing.assert_array_equal(gw, conv2d_weight_ref(x, w.shape, go, 2, 1).astype(np.int64))
    gw0 = grad.conv2d_weight(x[:0], w.shape, go[:0], stride=2, padding=1)
    np.testing.assert_array_equal(gw0, 0)
    assert grad.conv2d_input(x[:0].shape, w, go[:0], stride=2, padding=1).shape == x[:0].shape


def test_gradient_errors():
    x, w, go = np.ones((1, 3, 6, 6)), np.ones((4, 3, 3, 3)), np.ones((1, 4, 4, 4))
    with pytest.raises(ValueError, match="grad_output must have the shape"):
        grad.conv2d_weight(x, w.shape, go[:, :, :3])
    with pytest.raises(ValueError, match="grad_output must have the shape"):
        grad.conv2d_input((1, 3, 7, 8), w, go)
    with pytest.raises(ValueError, match="input has C=2"):
        grad.conv2d_weight(x[:, :2], w.shape, go)
    with pytest.raises(ValueError, match="out must have shape"):
        grad.conv2d_weight(x, w.shape, go, out=np.empty((4, 3, 3, 2)))


def test_conv2d_backward():
    rng = np.random.default_rng(4)
    w, b = rng.standard_normal((6, 2, 3, 3)), rng.standard_normal(6)
    layer = fastconv.Conv2d(w, b, stride=2, padding="valid", groups=2)
    x = rng.standard_normal((2, 4, 9, 9))
    go = rng.standard_normal(layer(x).shape)
    gi, gw, gb = layer.backward(go, x)
    np.testing.assert_allclose(gi, grad.conv2d_input(x.shape, w, go, 2, 0, 1, 2), atol=1e-12)
    np.testing.assert_allclose(gw, grad.conv2d_weight(x, w.shape, go, 2, 0, 1, 2), atol=1e-12)
    np.testing.assert_allclose(gb, go.sum(axis=(0, 2, 3)))
    np.testing.assert_array_equal(layer.backward(go, x)[0], gi)  # the cached spec
    same = fastconv.Conv2d(w[:, :, :2], None, padding="same", groups=2)
    go = rng.standard_normal(same(x).shape)
    gi, gw, gb = same.backward(go, x)
    assert gb is None
    y = same(x)
    np.testing.assert_allclose(np.vdot(y, go), np.vdot(x, gi), rtol=1e-10)
    with pytest.raises(ValueError, match="activation"):
        fastconv.Conv2d(w, activation="relu").backward(go, x)


def test_plan_covers_the_operations():
    p = fastconv.plan((1, 64, 56, 56), (64, 64, 3, 3), padding=1, operation="conv2d_weight",
                      num_threads=2)
    assert p.path == "weight_gemm" and 1 <= p.threads <= 2 and p.workspace_bytes > 0
    (p,) = fastconv.plan((1, 64, 56, 56), (64, 64, 3, 3), padding=1,
                         operation="conv2d_input", num_threads=1)
    assert p.algorithm == "winograd"
    assert len(fastconv.plan((1, 8, 9, 9), (8, 4, 4, 4), stride=2, padding=1,
                             operation="conv_transpose2d")) == 1
    assert len(fastconv.plan((1, 8, 9, 9), (8, 4, 3, 3), stride=2, padding=1,
                             operation="conv_transpose2d")) == 4
    with pytest.raises(ValueError, match="operation"):
        fastconv.plan((1, 8, 9, 9), (8, 4, 3, 3), operation="conv3d")


# -- hypothesis -----------------------------------------------------------------

@st.composite
def transpose_calls(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, 3))
    out_g = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1))
                           for s, d in zip(stride, dilation))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    sizes = [(e - 1) * s - 2 * p + d * (k - 1) + op + 1 for e, k, s, p, d, op in
             zip((h, w), (kh, kw), stride, padding, dilation, output_padding)]
    if min(sizes) < 1:
        padding = (0, 0)
    batch = draw(st.integers(0, 3))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64]))
    return ((batch, cin, h, w), (cin, out_g, kh, kw), stride, padding, output_padding,
            groups, dilation, dtype, draw(st.booleans()), draw(st.booleans()))


@pytest.mark.fuzz
@settings(max_examples=60, deadline=None, derandomize=True)
@given(transpose_calls())
def test_fuzz_conv_transpose2d(call):
    x_shape, w_shape, stride, padding, output_padding, groups, dilation, dtype, nhwc, bias = call
    rng = np.random.default_rng(0)
    x = rng.integers(-4, 5, x_shape).astype(dtype)
    w = rng.integers(-4, 5, w_shape).astype(dtype)
    b = rng.integers(-4, 5, w_shape[1] * groups).astype(dtype) if bias else None
    args = (stride, padding, output_padding, groups, dilation)
    want = conv_transpose2d_ref(x, w, b, *args)
    if nhwc:
        got = fastconv.conv_transpose2d(x.transpose(0, 2, 3, 1), w, b, *args,
                                        layout="NHWC").transpose(0, 3, 1, 2)
    else:
        got = fastconv.conv_transpose2d(x, w, b, *args)
    # small integers: every dtype is exact
    np.testing.assert_array_equal(got, want)


@pytest.mark.fuzz
@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(0, 2), st.integers(1, 2),
       st.sampled_from([1, 2]), st.integers(1, 3), st.integers(3, 9), st.integers(0, 3),
       st.sampled_from([np.float64, np.float32, np.int64]))
def test_fuzz_conv2d_weight(kernel, stride, padding, dilation, groups, group_in, size, batch,
                            dtype):
    if dilation * (kernel - 1) + 1 > size + 2 * padding:
        return
    rng = np.random.default_rng(1)
    x = rng.integers(-4, 5, (batch, groups * group_in, size, size + 1)).astype(dtype)
    w_shape = (groups * 2, group_in, kernel, kernel)
    y_shape = conv2d_ref(np.zeros(x.shape), np.zeros(w_shape), None, stride, padding,
                         dilation, groups).shape
    go = rng.integers(-4, 5, y_shape).astype(dtype)
    got = grad.conv2d_weight(x, w_shape, go, stride, padding, dilation, groups)
    np.testing.assert_array_equal(got, conv2d_weight_ref(x, w_shape, go, stride, padding,
                                                         dilation, groups))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.float16, np.int8,
                                   np.complex128])
def test_weight_rearrangement_is_numpy_s(dtype):
    """The compiled gather of the phases' sub-kernels and of the weight
    gradient's tiles (1 and 2 threads, every element size, NumPy's copy for
    16-byte elements) copies exactly what NumPy's indexing does."""
    from fastconv._transpose import GATHER_THREADS_BYTES, gather_taps
    rng = np.random.default_rng(3)
    # Large enough for two threads; odd sizes cut the 16 x 16 blocks.
    k, c = 37, max(19, GATHER_THREADS_BYTES // (37 * 9 * np.dtype(dtype).itemsize) + 1)
    w = (rng.standard_normal((k, c, 3, 3)) * 50).astype(dtype)
    want = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(1, c, k, 9)
    for threads in (1, 2):
        target = np.full((1, c, k, 9), 7, dtype)
        done = gather_taps(target, w, (0, 9, c * 9), [8 - t for t in range(9)], threads)
        assert done == (np.dtype(dtype).itemsize <= 8)
        if done:
            np.testing.assert_array_equal(target, want)
    # Strided targets (a phase of the stacked weights) and sources that are
    # not contiguous (left to NumPy).
    stacked = np.zeros((2, 3, 5, 4, 2), dtype)
    source = w[:4, :5, :2, :2].copy()
    if gather_taps(stacked[:, 1], source, (0, 4, 20), [0, 3], 2):
        want = source.reshape(4, 5, 4)[:, :, [0, 3]].transpose(1, 0, 2)
        np.testing.assert_array_equal(stacked[:, 1], np.broadcast_to(want, (2, 5, 4, 2)))
        assert not stacked[:, [0, 2]].any()
    assert not gather_taps(np.empty((1, 5, 4, 4), dtype), w[:4, :5, :2, :2], (0, 4, 20),
                           [0, 1, 2, 3], 1)


@pytest.mark.parametrize("threads", [1, 2])
def test_rearranged_weights_give_deterministic_gradients(threads):
    """The gradients with the compiled rearrangement on 1 and 2 threads are
    bit-identical, at a size where it runs on both."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 96, 6, 6)).astype(np.float32)
    w = rng.standard_normal((96, 96, 3, 3)).astype(np.float32)
    g = rng.standard_normal((2, 96, 6, 6)).astype(np.float32)
    one = (grad.conv2d_input(x.shape, w, g, 1, 1, num_threads=1),
           grad.conv2d_weight(x, w.shape, g, 1, 1, num_threads=1),
           fastconv.conv_transpose2d(x, w[:, :48, :2, :2], stride=2, num_threads=1))
    more = (grad.conv2d_input(x.shape, w, g, 1, 1, num_threads=threads),
            grad.conv2d_weight(x, w.shape, g, 1, 1, num_threads=threads),
            fastconv.conv_transpose2d(x, w[:, :48, :2, :2], stride=2, num_threads=threads))
    for a, b in zip(one, more):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(one[1], conv2d_weight_ref(x, w.shape, g, 1, 1, 1, 1),
                               rtol=0, atol=1e-3)
    # The weight gradient's 9 taps cut into whole rounds of the threads.
    blocking = fastconv.plan(x.shape, w.shape, padding=1, operation="conv2d_weight",
                             num_threads=threads).blocking
    assert (9 * blocking["channel_blocks"]) % threads == 0
