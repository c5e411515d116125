"""Every way a user can misuse the API gets a clear error, or is handled
correctly, and never crashes or corrupts memory.

Complements test_errors.py (one broken hyper-parameter at a time) with
wrong Python types, wrong array kinds and dtypes, every bad ``out``
(including aliasing the operands, also through non-ndarray buffers),
memory layouts that are legal but unusual (unaligned, byte-swapped,
negative strides, read-only, memory-mapped), huge ``num_threads`` and NaN
weights; for both :func:`fastconv.conv2d` and :class:`fastconv.Conv2d`.
"""

import inspect
import mmap
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastconv
from reference import conv2d_ref

X = np.arange(50, dtype=np.float64).reshape(1, 2, 5, 5) / 10
W = np.linspace(-1, 1, 54).reshape(3, 2, 3, 3)
B = np.array([0.5, -1.0, 2.0])
HAS_LAYOUT = "layout" in inspect.signature(fastconv.conv2d).parameters


def _raises(exc, pattern, fn, *args, **kwargs):
    with pytest.raises(exc, match=re.compile(pattern, re.IGNORECASE)):
        fn(*args, **kwargs)


def _layer_call(x, w, b=None, **kwargs):
    """The same call through a Conv2d layer (out= and num_threads at call)."""
    call_kwargs = {k: kwargs.pop(k) for k in ("out", "num_threads") if k in kwargs}
    return fastconv.Conv2d(w, b, **kwargs)(x, **call_kwargs)


API = pytest.mark.parametrize("conv", [fastconv.conv2d, _layer_call], ids=["conv2d", "Conv2d"])


# --- wrong Python types ----------------------------------------------------------

class Opaque:
    pass


BAD_VALUES = [
    ("None", None), ("str", "abc"), ("bytes", b"abc"), ("dict", {"a": 1}), ("set", {1, 2}),
    ("object", Opaque()), ("generator", (i for i in range(3))), ("function", len),
    ("ragged", [[[[1.0, 2.0], [3.0]]]]), ("nested-str", [[[["a"]]]]),
    ("complex", X.astype(complex)), ("object-array", X.astype(object)),
    ("datetime64", X.astype("datetime64[s]")), ("timedelta64", X.astype("timedelta64[s]")),
    ("structured", np.zeros((1, 2, 5, 5), dtype=[("a", "f4")])),
]
if np.dtype(np.longdouble).itemsize > 8:
    BAD_VALUES.append(("longdouble", X.astype(np.longdouble)))


def _named(name, value):
    """The message must name the argument, also for a ragged nested list
    (NumPy's own "inhomogeneous shape" error is re-raised naming it)."""
    return name


@API
@pytest.mark.parametrize("value", [v for _, v in BAD_VALUES], ids=[n for n, _ in BAD_VALUES])
def test_bad_input_values(conv, value):
    _raises((TypeError, ValueError), _named("input", value), conv, value, W)


@API
@pytest.mark.parametrize("value", [v for _, v in BAD_VALUES], ids=[n for n, _ in BAD_VALUES])
def test_bad_weight_values(conv, value):
    _raises((TypeError, ValueError), _named("weight", value), conv, X, value)


@API
@pytest.mark.parametrize("value", [v for n, v in BAD_VALUES if n != "None"],
                         ids=[n for n, _ in BAD_VALUES if n != "None"])
def test_bad_bias_values(conv, value):
    _raises((TypeError, ValueError), _named("bias", value), conv, X, W, value)


@API
@pytest.mark.parametrize("name", ["stride", "padding", "dilation", "groups"])
@pytest.mark.parametrize("value", [None, 1.0, "2", [1.5, 1], np.array([1, 1]), {1: 1}, Opaque(),
                                   True, np.float64(1)],
                         ids=["None", "float", "str", "float-pair", "ndarray", "dict", "object",
                              "bool", "np-float"])
def test_bad_hyperparameter_types(conv, name, value):
    if name == "padding" and isinstance(value, str):
        pytest.skip("a string padding is a ValueError (tested in test_errors)")
    _raises((TypeError, ValueError), name, conv, X, W, **{name: value})


@API
@pytest.mark.parametrize("name, value", [
    ("stride", np.int64(1)), ("stride", (np.int32(1), np.int8(1))),
    ("padding", np.uint8(1)), ("dilation", [np.int16(1), 1]), ("groups", np.int64(1)),
    ("num_threads", np.int64(2)), ("num_threads", 2**100),
])
def test_numpy_and_python_ints_are_accepted(conv, name, value):
    kwargs = {name: value}
    got = conv(X, W, B, **kwargs)
    ref_kwargs = {k: v for k, v in kwargs.items() if k != "num_threads"}
    ref_kwargs = {k: (tuple(map(int, v)) if isinstance(v, (tuple, list)) else int(v))
                  for k, v in ref_kwargs.items()}
    np.testing.assert_allclose(got, conv2d_ref(X, W, B, **ref_kwargs), rtol=1e-12, atol=1e-12)


@API
@pytest.mark.parametrize("name, value, exc", [
    ("algorithm", None, ValueError), ("algorithm", 3, ValueError),
    ("algorithm", "Direct", ValueError), ("num_threads", 0, ValueError),
    ("num_threads", -5, ValueError), ("num_threads", 1.0, TypeError),
    ("num_threads", True, TypeError), ("num_threads", "4", TypeError),
])
def test_bad_options(conv, name, value, exc):
    _raises(exc, name, conv, X, W, **{name: value})


# --- wrong array shapes ------------------------------------------------------------

@API
@pytest.mark.parametrize("shape", [(), (5,), (5, 5), (1, 1, 2, 5, 5)], ids=str)
def test_input_rank(conv, shape):
    _raises(ValueError, "input", conv, np.ones(shape), W)


@API
@pytest.mark.parametrize("shape", [(), (3,), (3, 2), (3, 2, 3), (3, 2, 3, 3, 1)], ids=str)
def test_weight_rank(conv, shape):
    _raises(ValueError, "weight", conv, X, np.ones(shape))


@API
@pytest.mark.parametrize("shape", [(), (1,), (4,), (3, 1), (1, 3)], ids=str)
def test_bias_shape(conv, shape):
    _raises(ValueError, "bias", conv, X, W, np.ones(shape))


def test_zero_output_channels_are_refused():
    """PyTorch refuses a weight with K = 0 ("expected weight to be at least 1
    at dimension 0"); so does every entry point here, naming the weight."""
    _raises(ValueError, "weight", fastconv.conv2d, X, np.ones((0, 2, 3, 3)))
    _raises(ValueError, "weight", fastconv.Conv2d, np.ones((0, 2, 3, 3)))


# --- dtypes and memory layouts that are legal ---------------------------------------

def _expected(x, w, b=None, **kwargs):
    return conv2d_ref(np.asarray(x, np.float64), np.asarray(w, np.float64),
                      None if b is None else np.asarray(b, np.float64), **kwargs)


@API
@pytest.mark.parametrize("order", [">", "<"])
def test_non_native_byte_order(conv, order):
    """Byte-swapped operands are converted, not misread."""
    swap = lambda a: a.astype(a.dtype.newbyteorder(order))  # noqa: E731
    for dtype in (np.float32, np.float64, np.int32, np.int64):
        x, w, b = X.astype(dtype), W.astype(dtype), B.astype(dtype)
        want = conv(x, w, b, padding=1)
        got = conv(swap(x), swap(w), swap(b), padding=1)
        assert got.dtype.isnative
        np.testing.assert_array_equal(got, want)


def _unaligned(a):
    a = np.ascontiguousarray(a)
    buf = np.empty(a.nbytes + 1, np.uint8)
    offset = 1 if buf.ctypes.data % a.dtype.itemsize == 0 else 0
    view = buf[offset:offset + a.nbytes].view(a.dtype).reshape(a.shape)
    view[...] = a
    return view


@API
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("algorithm", ["direct", "auto"])
def test_unaligned_operands_and_out(conv, dtype, algorithm):
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, (2, 8, 9, 40)).astype(dtype)
    w = rng.integers(-3, 4, (5, 8, 3, 3)).astype(dtype)
    want = conv(x, w, padding=1, algorithm=algorithm)
    ux, uw = _unaligned(x), _unaligned(w)
    assert not ux.flags.aligned or dtype == np.float32  # float32 may land aligned
    out = _unaligned(np.zeros_like(want))
    got = conv(ux, uw, padding=1, algorithm=algorithm, out=out)
    assert got is out
    np.testing.assert_array_equal(got, want)


@API
def test_negative_strides_and_views(conv):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 8, 9))
    w = rng.standard_normal((3, 4, 2, 3))
    for view in (x[::-1], x[:, ::-1], x[..., ::-1, :], x[..., ::-2], x.transpose(0, 1, 3, 2)):
        np.testing.assert_allclose(conv(view, w, padding=1), _expected(view, w, padding=1),
                                   rtol=1e-12, atol=1e-12)


@API
def test_read_only_and_memory_mapped_operands(conv, tmp_path):
    """Read-only inputs are fine: a read-only file mapping would fault on
    any write to it."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 3, 10, 11)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    path = tmp_path / "x.bin"
    x.tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r", shape=x.shape)
    w_ro = w.copy()
    w_ro.flags.writeable = False
    want = conv(x, w, padding=1)
    np.testing.assert_array_equal(conv(mapped, w_ro, padding=1), want)
    with open(path, "rb") as f:  # a PROT_READ mapping
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            view = np.frombuffer(mm, np.float32).reshape(x.shape)
            np.testing.assert_array_equal(conv(view, w, padding=1), want)
            del view
        finally:
            mm.close()


# --- out= -----------------------------------------------------------------------

OUT_SHAPE = (1, 3, 3, 3)


def _bad_outs():
    def read_only():
        out = np.zeros(OUT_SHAPE)
        out.flags.writeable = False
        return out

    def read_only_mapping():
        mm = mmap.mmap(-1, 8 * 27, access=mmap.ACCESS_READ)
        return np.frombuffer(mm, np.float64).reshape(OUT_SHAPE)

    return [
        ("None-like-list", lambda: np.zeros(OUT_SHAPE).tolist()),
        ("scalar", lambda: np.float64(0)),
        ("0-d", lambda: np.zeros(())),
        ("str", lambda: "out"),
        ("memoryview", lambda: memoryview(np.zeros(OUT_SHAPE))),
        ("wrong-shape", lambda: np.zeros((1, 3, 3, 4))),
        ("unbatched-shape", lambda: np.zeros(OUT_SHAPE[1:])),
        ("flat", lambda: np.zeros(27)),
        ("wrong-dtype", lambda: np.zeros(OUT_SHAPE, np.float32)),
        ("int-dtype", lambda: np.zeros(OUT_SHAPE, np.int64)),
        ("non-native-dtype", lambda: np.zeros(OUT_SHAPE, ">f8" if sys.byteorder == "little"
                                              else "<f8")),
        ("non-contiguous", lambda: np.zeros((1, 3, 3, 6))[..., ::2]),
        ("fortran", lambda: np.asfortranarray(np.zeros(OUT_SHAPE))),
        ("transposed", lambda: np.zeros((3, 3, 1, 3)).transpose(2, 3, 0, 1)),
        ("negative-strides", lambda: np.zeros(OUT_SHAPE)[:, ::-1]),
        ("read-only", read_only),
        ("read-only-mapping", read_only_mapping),
    ]


@API
@pytest.mark.parametrize("make", [m for _, m in _bad_outs()], ids=[n for n, _ in _bad_outs()])
def test_bad_out_is_refused_and_untouched(conv, make):
    out = make()
    before = np.array(out, copy=True) if isinstance(out, np.ndarray) else None
    _raises(ValueError, "out", conv, X, W, B, out=out)
    if before is not None:
        np.testing.assert_array_equal(out, before)


def test_broadcast_out_is_refused():
    out = np.broadcast_to(np.zeros(1), OUT_SHAPE)
    _raises(ValueError, "out", fastconv.conv2d, X, W, out=out)


@pytest.mark.skipif(not HAS_LAYOUT, reason="no layout argument")
def test_out_in_the_other_layout_is_refused():
    x = X.transpose(0, 2, 3, 1).copy()  # NHWC (1, 5, 5, 2)
    w = np.ones((4, 2, 3, 3))
    got = fastconv.conv2d(x, w, layout="NHWC")
    assert got.shape == (1, 3, 3, 4)
    _raises(ValueError, "out", fastconv.conv2d, x, w, layout="NHWC",
            out=np.zeros((1, 4, 3, 3)))  # the NCHW shape
    _raises(ValueError, "out", fastconv.conv2d, x, w, layout="NHWC",
            out=np.zeros((1, 4, 3, 3)).transpose(0, 2, 3, 1))  # right shape, not C-contiguous


def _same_shape_case():
    """A 1x1 convolution with as many output as input channels: ``out``
    can be the input itself."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 6, 7))
    w = rng.standard_normal((4, 4, 1, 1))
    return x, w


@API
def test_out_is_the_input(conv):
    x, w = _same_shape_case()
    before = x.copy()
    _raises(ValueError, "out", conv, x, w, out=x)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("which", ["weight", "bias"])
def test_out_overlapping_weight_or_bias(which):
    """Refused by conv2d; a layer copied its weights, so there it is no
    overlap at all and the result is right."""
    buf = np.zeros(200)
    out = buf[:27].reshape(OUT_SHAPE)
    w, b = W.copy(), B.copy()
    if which == "weight":
        buf[20:74] = W.ravel()
        w = buf[20:74].reshape(W.shape)
    else:
        buf[25:28] = B
        b = buf[25:28]
    _raises(ValueError, "out", fastconv.conv2d, X, w, b, out=out)
    layer = fastconv.Conv2d(w, b)
    got = layer(X, out=out)
    np.testing.assert_allclose(got, conv2d_ref(X, W, B), rtol=1e-12, atol=1e-12)


@API
@pytest.mark.parametrize("overlap", ["prefix", "suffix", "interleaved", "reversed"])
def test_out_overlapping_a_view_of_the_input(conv, overlap):
    """Partial overlap of any kind is refused (np.may_share_memory), and
    nothing is written."""
    buf = np.arange(400, dtype=np.float64)
    x = buf[100:150].reshape(1, 2, 5, 5)
    if overlap == "prefix":
        out = buf[90:117].reshape(OUT_SHAPE)
    elif overlap == "suffix":
        out = buf[140:167].reshape(OUT_SHAPE)
    elif overlap == "interleaved":  # x: every other element; out: inside x's extent
        x = buf[100:200:2].reshape(1, 2, 5, 5)
        out = buf[101:128].reshape(OUT_SHAPE)
    else:
        x = buf[149:99:-1].reshape(1, 2, 5, 5)
        out = buf[120:147].reshape(OUT_SHAPE)
    before = buf.copy()
    _raises(ValueError, "out", conv, x, W, out=out)
    np.testing.assert_array_equal(buf, before)


def _alias_through(kind, out):
    """``out``'s memory as an input of another Python type."""
    if kind == "memoryview":
        return memoryview(out)

    class Wrapper:
        def __init__(self, array):
            self.array = array

        def __array__(self, dtype=None, copy=None):
            return self.array

    class Interface:
        def __init__(self, array):
            self.__array_interface__ = array.__array_interface__
            self._keep = array

    return Wrapper(out) if kind == "__array__" else Interface(out)


@API
@pytest.mark.parametrize("kind", ["memoryview", "__array__", "__array_interface__"])
def test_out_aliasing_the_input_through_another_buffer_type(conv, kind):
    """The overlap must be refused, or handled (the right result). Winograd
    F(2x2) with one thread reads each tile block's input after the previous
    block wrote its output, so an undetected alias gives wrong numbers."""
    rng = np.random.default_rng(4)
    x0 = rng.standard_normal((1, 2, 40, 40))
    w = rng.standard_normal((2, 2, 3, 3))
    want = conv2d_ref(x0, w, padding=1)
    out = x0.copy()
    try:
        got = conv(_alias_through(kind, out), w, padding=1, out=out, algorithm="winograd2",
                   num_threads=1)
    except ValueError as exc:
        assert "out" in str(exc)
        np.testing.assert_array_equal(out, x0)  # refused before writing
        return
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


@API
def test_out_aliasing_the_weight_is_refused_or_harmless(conv):
    """The weights are packed before anything is written, so reading them
    through an alias of ``out`` is harmless; refusing is fine too."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 1, 5, 5))
    w = rng.standard_normal((1, 1, 3, 3))
    for alias in (lambda out: out, memoryview):
        out = w.copy()
        try:
            got = conv(x, alias(out), out=out)
        except ValueError as exc:
            assert "out" in str(exc)
            continue
        np.testing.assert_allclose(got, conv2d_ref(x, w), rtol=1e-12, atol=1e-12)


# --- threads ------------------------------------------------------------------------

@API
@pytest.mark.parametrize("num_threads", [10**6, 2**31, 2**63, 10**30])
def test_huge_num_threads_on_a_small_problem(conv, num_threads):
    """Capped (by the work items): a small call starts only a few threads."""
    got = conv(X, W, B, padding=1, num_threads=num_threads)
    np.testing.assert_allclose(got, conv2d_ref(X, W, B, padding=1), rtol=1e-12, atol=1e-12)


def _run_child(code, address_space):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))

    def limit():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=300, preexec_fn=limit)


@pytest.mark.subprocess
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS (Linux)")
@pytest.mark.skipif("asan" in os.environ.get("LD_PRELOAD", ""),
                    reason="RLIMIT_AS cannot be combined with AddressSanitizer")
def test_huge_num_threads_does_not_kill_the_process():
    proc = _run_child("""
        import numpy as np, fastconv
        x = np.ones((4, 64, 60, 60), np.float32)
        w = np.ones((64, 1, 3, 3), np.float32)
        y = fastconv.conv2d(x, w, groups=64, num_threads=10**6)
        assert float(y[0, 0, 0, 0]) == 9.0 and float(y[0, 0, 0, 1]) == 9.0
        print("OK")
    """, address_space=4 * 2**30)
    if "Traceback (most recent call last)" in proc.stderr:  # not the failure expected
        raise RuntimeError(f"the child script failed:\n{proc.stderr[-3000:]}")
    assert proc.returncode == 0 and "OK" in proc.stdout, (proc.returncode, proc.stderr[-2000:])


# --- values -------------------------------------------------------------------------

@API
@pytest.mark.parametrize("algorithm, groups", [
    ("direct", 1), ("direct", 3), ("winograd2", 1), ("winograd4", 1), ("winograd6", 1),
    ("auto", 1)])
def test_nan_weights_poison_only_their_output_channel(conv, algorithm, groups):
    """A NaN in filter k makes every output of channel k NaN (0 * NaN is
    NaN, also against the zero padding) and leaves the others exact."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 7, 8))
    w = rng.standard_normal((6, 6 // groups, 3, 3))
    w[2, 0, 1, 2] = np.nan
    got = conv(x, w, padding=1, groups=groups, algorithm=algorithm)
    assert np.isnan(got[:, 2]).all()
    others = [k for k in range(6) if k != 2]
    want = conv2d_ref(x, w, padding=1, groups=groups)
    assert np.isfinite(got[:, others]).all()
    np.testing.assert_allclose(got[:, others], want[:, others], rtol=1e-9, atol=1e-9)


def test_layer_is_isolated_from_the_callers_arrays():
    """The layer copies its weights: later changes to the caller's arrays do
    not reach it, and its own are read-only."""
    w, b = W.copy(), B.copy()
    layer = fastconv.Conv2d(w, b)
    want = layer(X)
    w[...] = 0
    b[...] = 0
    np.testing.assert_array_equal(layer(X), want)
    with pytest.raises(ValueError):
        layer.weight[0, 0, 0, 0] = 1.0
    with pytest.raises(ValueError):
        layer.bias[0] = 1.0


def test_repeated_calls_reuse_checks_but_never_data():
    """conv2d remembers a call's validated parameters by the arguments'
    types, shapes and values, never their data: other weights, biases and
    inputs of the same shapes give their own results, a bool or NumPy
    integer where an int was remembered is still checked, and the caller's
    arrays are not kept alive."""
    import gc
    import weakref

    from reference import assert_conv_close

    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 9, 9)).astype(np.float32)
    for _ in range(3):
        w = rng.standard_normal((4, 6, 3, 3)).astype(np.float32)
        b = rng.standard_normal(4).astype(np.float32)
        got = fastconv.conv2d(x, w, b, 2, (1, 0), 1, 1)
        assert_conv_close(got, x, w, b, 2, (1, 0), 1, 1)
    with pytest.raises(TypeError, match="stride"):
        fastconv.conv2d(x, w, b, True, (1, 0), 1, 1)
    with pytest.raises(ValueError, match="padding"):
        fastconv.conv2d(x, w, b, 2, (1, 0, 0), 1, 1)
    got = fastconv.conv2d(x, w, b, np.int64(2), (1, 0), 1, 1)
    assert_conv_close(got, x, w, b, 2, (1, 0), 1, 1)
    # A different bias shape or weight dtype is another key, checked in full.
    with pytest.raises(ValueError, match="bias"):
        fastconv.conv2d(x, w, b[:3], 2, (1, 0), 1, 1)
    assert fastconv.conv2d(x, w.astype(np.float64), b, 2, (1, 0)).dtype == np.float64

    w_big = rng.standard_normal((4, 6, 3, 3)).astype(np.float32)
    alive = weakref.ref(w_big)
    fastconv.conv2d(x, w_big, None, 2, (1, 0), 1, 1)
    del w_big
    gc.collect()
    assert alive() is None
