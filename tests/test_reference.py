"""fastconv.conv2d against the independent NumPy reference.

Covers seeded random layers (including large ones that exercise the blocked
kernel's several reduction chunks and output-channel panels), hypothesis
property tests, dtype promotion, array-likes, unbatched and empty batches,
``out=``, thread-count determinism and NaN/Inf propagation.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from cases import Case, big_cases, conv_cases, random_case
from reference import (
    assert_conv_close,
    conv2d_ref,
    naive_conv2d,
    output_size,
)

RANDOM_CASES = [random_case(seed) for seed in range(60)]
# Algorithms every semantic guarantee must hold for.
ALGORITHMS = ["auto", "direct"]
# NaN/Inf stay exactly inside their receptive field only for the direct
# kernel; Winograd (which "auto" may pick for 3x3 layers) spreads them over
# whole output tiles, see test_winograd.py.
NAN_LOCAL_ALGORITHMS = ["direct"]
BIG_CASES = big_cases()


def _run(case, **extra):
    x, w, b = case.arrays()
    return fastconv.conv2d(x, w, b, **case.kwargs(), **extra), (x, w, b)


# --------------------------------------------------------------------------
# The reference itself: it is only useful if it is right.
# --------------------------------------------------------------------------

def _loop_count(case):
    ho, wo = output_size(case.hw, case.kernel, case.stride, case.padding,
                         case.dilation)
    return (case.batch or 1) * case.out_channels * ho * wo


SMALL_CASES = [c for c in RANDOM_CASES if _loop_count(c) < 3000][:15]


@pytest.mark.parametrize("case", SMALL_CASES, ids=lambda c: f"seed{c.seed}-{c.id}")
def test_reference_agrees_with_naive_loop(case):
    """Two from-scratch formulations of the reference agree on small cases."""
    x, w, b = case.arrays()
    np.testing.assert_allclose(
        conv2d_ref(x, w, b, **case.kwargs()),
        naive_conv2d(x, w, b, **case.kwargs()), rtol=1e-12, atol=1e-12)


def test_reference_same_padding_is_asymmetric_for_even_kernels():
    """'same' with an even kernel pads one extra row/col at bottom/right."""
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    w = np.zeros((1, 1, 2, 2))
    w[0, 0, 0, 0] = 1.0  # picks the top-left tap: output == input
    np.testing.assert_array_equal(conv2d_ref(x, w, padding="same"), x)


# --------------------------------------------------------------------------
# Seeded random layers.
# --------------------------------------------------------------------------

@pytest.mark.parametrize("case", RANDOM_CASES, ids=lambda c: f"seed{c.seed}-{c.id}")
def test_random_case_matches_reference(case):
    got, (x, w, b) = _run(case)
    assert_conv_close(got, x, w, b, **case.kwargs())
    assert got.flags.c_contiguous


@pytest.mark.parametrize("case", BIG_CASES, ids=lambda c: c.id)
def test_big_layer_matches_reference(case):
    """Long reductions and many output channels: blocked kernel paths."""
    got, (x, w, b) = _run(case)
    assert_conv_close(got, x, w, b, **case.kwargs())


@pytest.mark.parametrize("case", BIG_CASES, ids=lambda c: c.id)
def test_big_layer_exact_on_small_integers(case):
    """Integer-valued floats sum exactly in any order, so any indexing slip
    in the blocked direct paths (wrong panel, chunk, or tail) shows as
    inequality.  Pinned to "direct": transform-based algorithms are not
    exact even on integers."""
    case = Case(**{**case.__dict__, "values": "int"})
    got, (x, w, b) = _run(case, algorithm="direct")
    want = conv2d_ref(x, w, b, **case.kwargs())
    assert np.abs(want).max() < 2**24  # exact in float32 too
    np.testing.assert_array_equal(got, want.astype(case.dtype))


# --------------------------------------------------------------------------
# Hypothesis properties.
# --------------------------------------------------------------------------

@settings(max_examples=300, deadline=None, derandomize=True)
@given(conv_cases())
def test_property_matches_reference(args):
    x, w, b, stride, padding, dilation, groups = args
    got = fastconv.conv2d(x, w, b, stride, padding, dilation, groups)
    assert_conv_close(got, x, w, b, stride, padding, dilation, groups)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(conv_cases(dtypes=(np.float64, np.float32), values=("int",)))
def test_property_exact_on_small_integers(args):
    """Small integer values: the direct float result equals the int64
    reference exactly (every partial sum is exactly representable)."""
    x, w, b, stride, padding, dilation, groups = args
    got = fastconv.conv2d(x, w, b, stride, padding, dilation, groups,
                          algorithm="direct")
    want = conv2d_ref(x, w, b, stride, padding, dilation, groups,
                      dtype=np.int64)
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, want)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(conv_cases(dtypes=(np.int64,), values=("int",)))
def test_property_int64_exact(args):
    x, w, b, stride, padding, dilation, groups = args
    got = fastconv.conv2d(x, w, b, stride, padding, dilation, groups)
    assert_conv_close(got, x, w, b, stride, padding, dilation, groups)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(conv_cases())
def test_property_thread_count_does_not_change_bits(args):
    x, w, b, stride, padding, dilation, groups = args
    one = fastconv.conv2d(x, w, b, stride, padding, dilation, groups,
                          num_threads=1)
    two = fastconv.conv2d(x, w, b, stride, padding, dilation, groups,
                          num_threads=2)
    np.testing.assert_array_equal(one, two)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(conv_cases(), st.sampled_from(ALGORITHMS))
def test_property_algorithm_names(args, algorithm):
    x, w, b, stride, padding, dilation, groups = args
    got = fastconv.conv2d(x, w, b, stride, padding, dilation, groups,
                          algorithm=algorithm)
    assert_conv_close(got, x, w, b, stride, padding, dilation, groups)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(conv_cases())
def test_property_batch_items_are_independent(args):
    """Each batch item equals the unbatched convolution of that item."""
    x, w, b, stride, padding, dilation, groups = args
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    batched = x if x.ndim == 4 else x[None]
    whole = fastconv.conv2d(batched, w, b, **kw)
    for i in range(batched.shape[0]):
        one = fastconv.conv2d(batched[i], w, b, **kw)
        assert one.shape == whole.shape[1:]
        assert_conv_close(one, batched[i], w, b, **kw)
        assert_conv_close(whole[i], batched[i], w, b, **kw)


# --------------------------------------------------------------------------
# Result dtypes.
# --------------------------------------------------------------------------

DTYPE_CASES = [
    # (input dtype, weight dtype, bias dtype or None, expected result dtype)
    ("float32", "float32", None, "float32"),
    ("float64", "float64", None, "float64"),
    ("float32", "float64", None, "float64"),
    ("float64", "float32", None, "float64"),
    ("float16", "float16", None, "float16"),
    ("float16", "float16", "float16", "float16"),
    ("float16", "float32", None, "float32"),
    ("float32", "float32", "float64", "float64"),
    ("int64", "float32", None, "float32"),
    ("int64", "float64", None, "float64"),
    ("uint8", "float32", None, "float32"),
    ("int32", "float16", None, "float16"),
    ("bool", "float32", None, "float32"),
    ("float32", "int64", None, "float32"),
    ("int64", "int64", None, "int64"),
    ("int8", "int8", None, "int64"),
    ("uint8", "int16", None, "int64"),
    ("int32", "uint16", None, "int64"),
    ("bool", "bool", None, "int64"),
    ("bool", "int64", None, "int64"),
    ("int64", "int64", "int32", "int64"),
    ("int64", "int64", "float64", "float64"),
    ("int16", "int64", "float32", "float32"),
    ("float32", "float32", "int64", "float32"),
]


def _dtype_id(case):
    xd, wd, bd, rd = case
    return f"{xd}*{wd}{'+' + bd if bd else ''}->{rd}"


def _typed(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if dtype.kind == "u":
        return rng.integers(0, 6, size=shape).astype(dtype)
    if dtype.kind == "i":
        return rng.integers(-5, 6, size=shape).astype(dtype)
    return rng.uniform(-2, 2, size=shape).astype(dtype)


@pytest.mark.parametrize("case", DTYPE_CASES, ids=_dtype_id)
def test_result_dtype_and_values(case, rng):
    xd, wd, bd, rd = case
    x = _typed(rng, (2, 6, 9, 8), xd)
    w = _typed(rng, (4, 3, 3, 2), wd)
    b = None if bd is None else _typed(rng, (4,), bd)
    got = fastconv.conv2d(x, w, b, padding=1, groups=2)
    assert got.dtype == np.dtype(rd)
    assert_conv_close(got, x, w, b, padding=1, groups=2, dtype=rd)


def test_float16_large_layer_rounded_once(rng):
    """float16 is accumulated in float32: a long reduction stays within the
    float16 output rounding of the exact result, which pure float16
    accumulation over 576 terms would not."""
    x = rng.uniform(0, 1, (1, 64, 10, 10)).astype(np.float16)
    w = rng.uniform(0, 1 / 64, (8, 64, 3, 3)).astype(np.float16)
    got = fastconv.conv2d(x, w)
    assert got.dtype == np.float16
    assert_conv_close(got, x, w)


def test_float16_accumulates_in_float32():
    """Partial sums beyond the float16 range (65504) must not overflow when
    the final result is representable: 3*30000 - 3*30000 = 0."""
    x = np.full((1, 1, 3, 3), 30000, dtype=np.float16)
    w = np.array([[1, 1, 1], [-1, -1, -1], [0, 0, 0]],
                 dtype=np.float16).reshape(1, 1, 3, 3)
    got = fastconv.conv2d(x, w)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, np.zeros((1, 1, 1, 1), np.float16))


def test_float32_overflow_gives_inf():
    x = np.full((1, 1, 3, 3), 3e38, dtype=np.float32)
    got = fastconv.conv2d(x, np.ones((1, 1, 3, 3), np.float32))
    assert got.dtype == np.float32 and np.isposinf(got).all()


def test_int64_large_values_exact():
    """int64 is computed exactly: products beyond 2**53 are not rounded."""
    x = np.full((1, 2, 3, 3), 2**31 + 1, dtype=np.int64)
    w = np.full((1, 2, 3, 3), 2**26 + 3, dtype=np.int64)
    got = fastconv.conv2d(x, w)
    want = 18 * (2**31 + 1) * (2**26 + 3)  # about 2**61.2, fits int64
    assert got.dtype == np.int64
    assert got.item() == want


# --------------------------------------------------------------------------
# Array-likes, layouts and input immutability.
# --------------------------------------------------------------------------

def _layouts(rng):
    """Named (input, weight, bias) triples in unusual memory layouts."""
    x = rng.standard_normal((2, 4, 11, 10))
    w = rng.standard_normal((6, 4, 3, 2))
    b = rng.standard_normal(6)
    big = rng.standard_normal((3, 9, 23, 31))
    return {
        "lists": (x.tolist(), w.tolist(), b.tolist()),
        "tuples": (_to_tuples(x), _to_tuples(w), tuple(b)),
        "fortran": (np.asfortranarray(x), np.asfortranarray(w), b),
        "negative-strides": (x[::-1, :, ::-1, ::-1], w[:, ::-1, ::-1, ::-1],
                             b[::-1]),
        "strided-views": (big[:2, 1:9:2, 1::2, ::3], w, b),
        "transposed": (x.transpose(0, 1, 3, 2), w.transpose(0, 1, 3, 2), b),
        "bias-view": (x, w, rng.standard_normal(12)[::2]),
        "read-only": tuple(_readonly(a) for a in (x, w, b)),
        "broadcast-weight": (x, np.broadcast_to(w[:1], w.shape), b),
    }


def _to_tuples(a):
    return tuple(_to_tuples(v) for v in a) if a.ndim else a.item()


def _readonly(a):
    a = a.copy()
    a.setflags(write=False)
    return a


@pytest.mark.parametrize("layout", list(_layouts(np.random.default_rng(0))))
def test_array_likes_and_layouts(layout):
    x, w, b = _layouts(np.random.default_rng(1))[layout]
    got = fastconv.conv2d(x, w, b, stride=(2, 1), padding=(1, 2))
    assert_conv_close(got, x, w, b, stride=(2, 1), padding=(1, 2))


@pytest.mark.parametrize("layout", list(_layouts(np.random.default_rng(0))))
def test_inputs_are_not_modified(layout):
    x, w, b = _layouts(np.random.default_rng(2))[layout]
    before = [np.array(a, copy=True) for a in (x, w, b)]
    fastconv.conv2d(x, w, b, padding="same", num_threads=2)
    for a, saved in zip((x, w, b), before):
        np.testing.assert_array_equal(np.asarray(a), saved)


def test_float32_nontrivial_views_inputs_not_modified(rng):
    """float32 inputs are used natively (no copy needed): still untouched."""
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(2).astype(np.float32)
    copies = [a.copy() for a in (x, w, b)]
    got = fastconv.conv2d(x, w, b, padding=1)
    assert not np.shares_memory(got, x)
    for a, saved in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, saved)


@pytest.mark.parametrize("dtype", ["<f8", ">f8", ">f4", ">i8"],
                         ids=["little-f8", "big-endian-f8", "big-endian-f4",
                              "big-endian-i8"])
def test_non_native_byte_order(dtype, rng):
    """Byte-swapped arrays hold the same numbers; reading raw bytes as
    native would give garbage."""
    x = rng.integers(-4, 5, (2, 3, 7, 6)).astype(dtype)
    w = rng.integers(-4, 5, (4, 3, 3, 2)).astype(dtype)
    got = fastconv.conv2d(x, w, padding=1)
    native = np.dtype(dtype).newbyteorder("=")
    assert got.dtype.kind == native.kind
    want = fastconv.conv2d(x.astype(native), w.astype(native), padding=1)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, conv2d_ref(x, w, padding=1, dtype=np.int64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_unaligned_arrays(dtype, rng):
    """Buffers at odd byte offsets (e.g. from file headers) must work:
    aligned SIMD loads on them would crash."""
    x = rng.standard_normal((2, 5, 9, 9)).astype(dtype)
    w = rng.standard_normal((7, 5, 3, 3)).astype(dtype)

    def unaligned(a, offset):
        u = np.ndarray(a.shape, a.dtype, buffer=bytearray(a.nbytes + offset),
                       offset=offset)
        u[...] = a
        return u

    xu, wu = unaligned(x, 1), unaligned(w, 3)
    assert not xu.flags.aligned and not wu.flags.aligned
    assert_conv_close(fastconv.conv2d(xu, wu, padding=1), x, w, padding=1)


def test_input_and_weight_may_be_the_same_array(rng):
    """Aliasing between read-only operands is legal (only out is special)."""
    a = rng.standard_normal((4, 3, 5, 5))
    assert_conv_close(fastconv.conv2d(a, a, a[0, 0, 0, :4]), a, a, a[0, 0, 0, :4])


@pytest.mark.parametrize("kwargs", [
    dict(stride=np.int64(2), padding=np.int32(1), dilation=np.int16(1),
         groups=np.int64(1)),
    dict(stride=[2, 1], padding=[1, 0], dilation=[1, 2]),
    dict(stride=(np.int64(1), 2), padding=(np.uint8(2), 1)),
], ids=["numpy-ints", "lists-as-pairs", "numpy-ints-in-pairs"])
def test_integer_like_hyperparameters(kwargs, rng):
    """NumPy integers and lists are accepted like ints and tuples (torch
    accepts both too; shapes computed with NumPy are NumPy ints)."""
    x = rng.standard_normal((2, 4, 10, 9))
    w = rng.standard_normal((3, 4, 3, 3))
    plain = {k: (tuple(int(i) for i in v) if isinstance(v, (list, tuple)) else int(v))
             for k, v in kwargs.items()}
    assert_conv_close(fastconv.conv2d(x, w, **kwargs), x, w, **plain)


# --------------------------------------------------------------------------
# Shapes: unbatched input and empty batches.
# --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64],
                         ids=["float32", "float64", "int64"])
def test_unbatched_input_has_no_batch_axis(dtype, rng):
    x = rng.integers(-4, 5, (3, 9, 7)).astype(dtype)
    w = rng.integers(-4, 5, (5, 3, 2, 3)).astype(dtype)
    got = fastconv.conv2d(x, w, stride=(1, 2), padding="valid")
    assert got.shape == (5, 8, 3)
    assert_conv_close(got, x, w, stride=(1, 2))
    np.testing.assert_array_equal(
        got, fastconv.conv2d(x[None], w, stride=(1, 2))[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64],
                         ids=["float32", "float64", "int64"])
@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(stride=2, padding=1),
    dict(padding="same", dilation=(2, 1)),
    dict(groups=2, padding=(0, 3)),
], ids=["plain", "stride2-pad1", "same-dilated", "groups2-pad0x3"])
def test_empty_batch(kwargs, dtype):
    x = np.zeros((0, 4, 8, 9), dtype=dtype)
    w = np.ones((6, 4 // kwargs.get("groups", 1), 3, 2), dtype=dtype)
    got = fastconv.conv2d(x, w, np.ones(6, dtype=dtype), **kwargs)
    ho, wo = output_size((8, 9), (3, 2), kwargs.get("stride", 1),
                         kwargs.get("padding", 0), kwargs.get("dilation", 1))
    assert got.shape == (0, 6, ho, wo)
    assert got.dtype == dtype


def test_one_by_one_image_with_padding():
    """A 1x1 image, padded, with a 3x3 kernel: only the centre tap sees it."""
    w = np.arange(9.0).reshape(1, 1, 3, 3)
    got = fastconv.conv2d(np.full((1, 1, 1, 1), 2.0), w, padding=1)
    np.testing.assert_array_equal(got, [[[[8.0]]]])


@pytest.mark.parametrize("hw,kernel,stride,padding,dilation", [
    ((5, 5), (5, 5), 1, 0, 1),
    ((1, 9), (1, 3), 1, 0, 1),
    ((7, 1), (3, 1), 2, 0, 1),
    ((4, 4), (3, 3), 3, 1, 1),
    ((5, 5), (2, 2), 1, 0, 4),
    ((3, 3), (2, 2), 1, "same", 3),
    ((2, 2), (4, 4), 1, "same", 1),
    ((2, 2), (3, 3), 1, 10, 1),
    ((2, 3), (3, 2), (3, 1), (10, 2), (4, 1)),
    ((3, 1001), (3, 3), (1, 3), (0, 1), (1, 2)),
], ids=["kernel-equals-input", "row-image", "col-image-stride2",
        "stride-over-padding", "dilated-fills-input", "same-dilated-even",
        "same-kernel-bigger-than-input", "mostly-padding",
        "mostly-padding-strided-dilated", "wide-image-strided"])
def test_edge_geometries(hw, kernel, stride, padding, dilation, rng):
    x = rng.standard_normal((2, 3, *hw))
    w = rng.standard_normal((4, 3, *kernel))
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    got = fastconv.conv2d(x, w, **kw)
    assert_conv_close(got, x, w, **kw)


# --------------------------------------------------------------------------
# out=: in-place results.
# --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.float16],
                         ids=["float32", "float64", "int64", "float16"])
def test_out_is_written_and_returned(dtype, rng):
    x = rng.integers(-3, 4, (2, 4, 7, 6)).astype(dtype)
    w = rng.integers(-3, 4, (6, 2, 3, 3)).astype(dtype)
    b = rng.integers(-3, 4, 6).astype(dtype)
    out = np.full((2, 6, 5, 3), 99, dtype=dtype)  # garbage must be overwritten
    ret = fastconv.conv2d(x, w, b, stride=(1, 2), padding=(0, 1), groups=2,
                          out=out)
    assert ret is out
    np.testing.assert_array_equal(
        out, fastconv.conv2d(x, w, b, stride=(1, 2), padding=(0, 1), groups=2))
    assert_conv_close(out, x, w, b, stride=(1, 2), padding=(0, 1), groups=2)


def test_out_nan_garbage_is_overwritten(rng):
    """A kernel that accumulates into out would keep the NaNs."""
    x = rng.standard_normal((1, 70, 9, 9)).astype(np.float32)
    w = rng.standard_normal((40, 70, 3, 3)).astype(np.float32)
    out = np.full((1, 40, 7, 7), np.nan, dtype=np.float32)
    assert fastconv.conv2d(x, w, out=out) is out
    assert_conv_close(out, x, w)


def test_out_unbatched(rng):
    x = rng.standard_normal((3, 6, 6))
    w = rng.standard_normal((2, 3, 3, 3))
    out = np.empty((2, 6, 6))
    assert fastconv.conv2d(x, w, padding="same", out=out) is out
    assert_conv_close(out, x, w, padding="same")


def test_out_empty_batch():
    out = np.empty((0, 2, 3, 3))
    ret = fastconv.conv2d(np.zeros((0, 1, 5, 5)), np.ones((2, 1, 3, 3)), out=out)
    assert ret is out


# --------------------------------------------------------------------------
# Threads.
# --------------------------------------------------------------------------

THREAD_LAYERS = {
    # name: (input shape, weight shape, kwargs)
    "reduce864-K70": ((2, 96, 17, 19), (70, 96, 3, 3), dict(padding=1)),
    "single-image-wide": ((1, 16, 48, 64), (32, 16, 3, 3), dict(padding=1)),
    "many-images-stride2": ((7, 3, 20, 20), (5, 3, 5, 5), dict(stride=2)),
    "pointwise512": ((1, 512, 4, 4), (260, 512, 1, 1), dict()),
    "depthwise": ((3, 32, 30, 30), (32, 1, 3, 3), dict(groups=32, padding=1)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("layer", list(THREAD_LAYERS))
def test_num_threads_bit_identical(layer, dtype, rng):
    """The summation order must not depend on how work is split."""
    xshape, wshape, kw = THREAD_LAYERS[layer]
    x = rng.standard_normal(xshape).astype(dtype)
    w = rng.standard_normal(wshape).astype(dtype)
    b = rng.standard_normal(wshape[0]).astype(dtype)
    runs = [fastconv.conv2d(x, w, b, **kw, num_threads=t) for t in (1, 2, 3, 5)]
    for other in runs[1:]:
        np.testing.assert_array_equal(runs[0], other)
    np.testing.assert_array_equal(runs[0], fastconv.conv2d(x, w, b, **kw))
    assert_conv_close(runs[0], x, w, b, **kw)


@pytest.mark.parametrize("num_threads", [None, 1, 2, 4])
def test_num_threads_values_accepted(num_threads, rng):
    x = rng.standard_normal((1, 3, 8, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    got = fastconv.conv2d(x, w, num_threads=num_threads)
    assert_conv_close(got, x, w)


def test_num_threads_is_per_call(rng):
    """A num_threads call must not break a later default-threaded call."""
    x = rng.standard_normal((2, 8, 12, 12))
    w = rng.standard_normal((8, 8, 3, 3))
    first = fastconv.conv2d(x, w, num_threads=1)
    again = fastconv.conv2d(x, w)
    np.testing.assert_array_equal(first, again)


# --------------------------------------------------------------------------
# NaN / Inf propagation (IEEE semantics as in torch).
# --------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", NAN_LOCAL_ALGORITHMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("where", [(0, 0), (2, 3), (5, 5), (4, 0)],
                         ids=["corner", "inside", "far-corner", "edge"])
def test_nan_propagates_to_its_receptive_field(where, dtype, algorithm, rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(dtype)
    x[1, 1][where] = np.nan
    w = rng.uniform(0.5, 1.5, (4, 3, 3, 2)).astype(dtype)  # no zero taps
    kw = dict(stride=(1, 2), padding=1)
    got = fastconv.conv2d(x, w, **kw, algorithm=algorithm)
    hit = conv2d_ref(np.isnan(x).astype(float), np.ones(w.shape), **kw) > 0
    np.testing.assert_array_equal(np.isnan(got), hit)
    assert hit[1].any() and not hit[0].any()
    clean = np.where(np.isnan(x), 0, x)
    want = conv2d_ref(clean, w, **kw)
    np.testing.assert_allclose(got[~hit], want[~hit], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("algorithm", NAN_LOCAL_ALGORITHMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_inf_times_zero_weight_is_nan(dtype, algorithm):
    """inf meets a zero tap -> NaN (inf * 0); a non-zero tap -> +-inf."""
    x = np.ones((1, 1, 3, 3), dtype=dtype)
    x[0, 0, 1, 1] = np.inf
    w = np.array([[1.0, 0.0, -2.0],
                  [0.0, 0.0, 0.0],
                  [3.0, 0.0, 1.0]], dtype=dtype).reshape(1, 1, 3, 3)
    got = fastconv.conv2d(x, w, padding=1, algorithm=algorithm)
    want = naive_conv2d(x, w, padding=1)
    assert np.isnan(want).sum() == 5 and np.isinf(want).sum() == 4
    np.testing.assert_array_equal(got, want.astype(dtype))


@pytest.mark.parametrize("algorithm", NAN_LOCAL_ALGORITHMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_inf_in_weight_and_nan_in_bias(dtype, algorithm):
    x = np.zeros((1, 2, 4, 4), dtype=dtype)
    x[0, 0, 0, 0] = 1.0
    w = np.zeros((2, 2, 2, 2), dtype=dtype)
    w[0, 1, 0, 0] = np.inf
    b = np.array([0.0, np.nan], dtype=dtype)
    got = fastconv.conv2d(x, w, b, algorithm=algorithm)
    # Channel 0: inf tap over zeros everywhere -> inf * 0 = NaN everywhere.
    assert np.isnan(got[0, 0]).all()
    # Channel 1: NaN bias poisons every output.
    assert np.isnan(got[0, 1]).all()


@pytest.mark.parametrize("algorithm", NAN_LOCAL_ALGORITHMS)
def test_nan_in_big_blocked_layer(algorithm, rng):
    """NaN survives the blocked float32 path (chunked reduction, panels)
    and stays inside its receptive field."""
    x = rng.standard_normal((1, 96, 10, 10)).astype(np.float32)
    x[0, 77, 4, 6] = np.nan
    w = rng.uniform(0.5, 1.5, (70, 96, 3, 3)).astype(np.float32)
    got = fastconv.conv2d(x, w, algorithm=algorithm)
    hit = np.zeros((8, 8), dtype=bool)
    hit[2:5, 4:7] = True
    for k in range(70):
        np.testing.assert_array_equal(np.isnan(got[0, k]), hit)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_nan_is_never_dropped(algorithm, rng):
    """Whatever algorithm runs, an output that reads a NaN is NaN."""
    x = rng.standard_normal((2, 64, 40, 40)).astype(np.float32)
    x[1, 5, 20, 17] = np.nan
    w = rng.standard_normal((32, 64, 3, 3)).astype(np.float32)
    got = fastconv.conv2d(x, w, padding=1, algorithm=algorithm)
    assert np.isnan(got[1, :, 19:22, 16:19]).all()
    assert np.isfinite(got[0]).all()
