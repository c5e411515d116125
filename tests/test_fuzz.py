"""Property-based fuzzing of conv2d and Conv2d against the float64 reference.

One hypothesis strategy, :func:`conv_calls`, draws a whole call from the
parameter space: kernel sizes 1..7 (non-square), stride and dilation 1..3,
padding as an int, a pair, ``"valid"`` or ``"same"``, every padding mode,
plain / grouped / depthwise (with channel multiplier) / wide (more than 256
kernel taps, several reduction chunks) convolutions, batch 0..3 or
unbatched, every dtype rule (float32, float64, float16, mixed floats, integer
and bool operands, integer input with float weights), every algorithm that
applies to the case, both layouts, the fused ReLU, ``num_threads``, the
function or a ``Conv2d`` layer, ``out=``, and inputs that are
non-contiguous, Fortran-ordered, unaligned, read-only, byte-swapped or plain
lists. Each test runs at every SIMD level up to the active one (the kernels
are switched in-process through the private ``_cpu.select_isa`` hook and
restored afterwards), so ``FASTCONV_ISA=baseline`` still caps what runs.

Every example checks, besides the values against the float64 (or exact
int64) reference:

* the result's dtype, shape and C-contiguity, and that ``out=`` is returned;
* that nothing outside ``out`` was written (guard elements either side);
* that the operands were not modified;
* that the result is bit-identical with ``num_threads=1`` (the documented
  thread-count independence), and for a layer on a second (cached) call.

Tolerances: errors are measured against ``conv(|x|, |w|) + |bias|`` (see
``reference.py``). Winograd mixes every input of an output tile with every
filter tap, so its rounding error follows the whole tile's magnitude: for
the Winograd algorithms the allowance adds ``1e-4`` (float32 compute) or
``1e-11`` (float64) times the largest ``conv(|x|, max|w_k|) + |bias|`` in
the output's tile (``max|w_k|``: the filter's largest tap, since a zero tap
does not zero Winograd's rounding error; for ``"auto"``/``"winograd"`` any
tile size may run, so the largest over F(2), F(4), F(6) tiles).

Example counts: fixed and derandomized in the default (CI) profile; with
``FASTCONV_HYPOTHESIS_PROFILE=long`` (see conftest.py) each test runs the
long profile's ``max_examples`` (2000 by default, or
``FASTCONV_HYPOTHESIS_EXAMPLES``) on fresh random data.
"""

import contextlib
import inspect
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import _cpu, _direct, _isa
from cases import draw_padding
from reference import (atol_for, conv2d_ref, expected_dtype, resolve_padding,
                       rtol_for, tolerance_scale)

pytestmark = pytest.mark.fuzz

# --- what this build offers ----------------------------------------------------

_CONV2D_ARGS = set(inspect.signature(fastconv.conv2d).parameters)
_LAYER_ARGS = set(inspect.signature(fastconv.Conv2d).parameters)
# padding_mode, layout and activation were added after the first release;
# fuzz them where both the function and the layer take them.
HAS_PADDING_MODE = "padding_mode" in _CONV2D_ARGS and "padding_mode" in _LAYER_ARGS
HAS_LAYOUT = "layout" in _CONV2D_ARGS and "layout" in _LAYER_ARGS
HAS_ACTIVATION = "activation" in _CONV2D_ARGS and "activation" in _LAYER_ARGS
PADDING_MODES = (("zeros", "zeros", "reflect", "replicate", "circular")
                 if HAS_PADDING_MODE else ("zeros",))
NUMPY_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}

ISA_LEVELS = tuple(_cpu.ISA_LEVELS)
# Every level up to the active one: FASTCONV_ISA caps what this process runs.
LEVELS = ISA_LEVELS[:ISA_LEVELS.index(_isa.active_isa()) + 1]

WINOGRAD_RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-11}
# Winograd's output tiles per square kernel size (what the library documents).
WINOGRAD_TILES = {3: (2, 4, 6), 5: (2, 4), 7: (2,)}

# (input, weight, bias) dtypes; the result dtype follows reference.expected_dtype.
FLOAT_DTYPES = [
    ("float32", "float32", "float32"),
    ("float64", "float64", "float64"),
    ("float16", "float16", "float16"),
    ("float32", "float64", "float32"),   # mixed floats -> float64
    ("float64", "float32", "float16"),   # -> float64
    ("uint8", "float32", "float32"),     # integer image, float filters -> float32
    ("int16", "float16", "float16"),     # -> float16 (computed in float32)
]
INT_DTYPES = [
    ("int64", "int64", "int64"),
    ("int32", "int16", "int8"),          # all integer -> int64
    ("bool", "int8", "int32"),
    ("uint8", "int64", "uint8"),
]

_CI_PROFILE = settings.get_profile("fastconv")


def examples(n):
    """``n`` examples in the default profile; the active profile's
    ``max_examples`` when another one (e.g. "long") is loaded."""
    current = settings.default
    if (current.max_examples, current.derandomize) == (
            _CI_PROFILE.max_examples, _CI_PROFILE.derandomize):
        return n
    return max(n, current.max_examples)


@contextlib.contextmanager
def isa_level(name):
    """Run the kernels of SIMD level ``name`` inside the block (the package's
    one ISA state, fastconv._cpu's; a private hook)."""
    original = _isa.active_isa()
    got = _cpu.select_isa(name)
    try:
        assert got == name, (got, name)
        yield got
    finally:
        _cpu.select_isa(original)


# --- the strategy -------------------------------------------------------------

@dataclass
class Call:
    """One fuzzed call, arrays made from ``seed`` (printed on failure)."""

    batch: object          # None: unbatched
    in_channels: int
    out_channels: int
    hw: tuple
    kernel: tuple
    stride: object
    padding: object
    dilation: object
    groups: int
    padding_mode: str
    dtypes: tuple          # (input, weight, bias or None)
    values: str            # "normal" or "int" (small integers)
    algorithm: str
    layout: str
    activation: object
    api: str               # "function", "function-out", "layer", "layer-out"
    num_threads: object
    memory: str            # how the input is passed
    seed: int

    def arrays(self):
        """(x NCHW, w, b) in the operand dtypes."""
        rng = np.random.default_rng(self.seed)
        c, k = self.in_channels, self.out_channels
        xshape = ((c, *self.hw) if self.batch is None else (self.batch, c, *self.hw))
        wshape = (k, c // self.groups, *self.kernel)

        def draw(shape, dtype):
            dtype = np.dtype(dtype)
            if dtype == np.bool_:
                return rng.integers(0, 2, size=shape).astype(bool)
            if dtype.kind == "u":
                return rng.integers(0, 7, size=shape).astype(dtype)
            if dtype.kind == "i" or self.values == "int":
                return rng.integers(-3, 4, size=shape).astype(dtype)
            return rng.standard_normal(shape).astype(dtype)

        x_dtype, w_dtype, b_dtype = self.dtypes
        b = None if b_dtype is None else draw((k,), b_dtype)
        return draw(xshape, x_dtype), draw(wshape, w_dtype), b


def _macs(batch, out_channels, out_hw, group_in, kernel):
    return (max(batch or 1, 1) * out_channels * out_hw[0] * out_hw[1]
            * group_in * kernel[0] * kernel[1])


@st.composite
def conv_calls(draw, family=None):
    """A valid call (torch would accept it) anywhere in the parameter space."""
    family = family or draw(st.sampled_from(["general", "winograd"]))
    if family == "winograd":  # the shapes Winograd (and "auto"'s choice) apply to
        r = draw(st.sampled_from(sorted(WINOGRAD_TILES)))
        kernel, s, d = (r, r), (1, 1), (1, 1)
    else:
        kernel = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
        s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        d = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    as_int = st.booleans()
    stride = s[0] if s[0] == s[1] and draw(as_int) else s
    dilation = d[0] if d[0] == d[1] and draw(as_int) else d

    kind = draw(st.sampled_from(["dense", "grouped", "depthwise", "wide"]))
    if kind == "dense":
        groups, cg, kg = 1, draw(st.integers(1, 12)), draw(st.integers(1, 12))
    elif kind == "grouped":  # C/groups <= 4: plane kernel; more: grouped GEMM
        groups, cg, kg = draw(st.integers(2, 4)), draw(st.integers(1, 8)), draw(st.integers(1, 4))
    elif kind == "depthwise":
        groups, cg, kg = draw(st.integers(1, 9)), 1, draw(st.integers(1, 3))
    else:  # more than 256 taps for 3x3: several reduction chunks
        groups, cg, kg = 1, draw(st.integers(20, 40)), draw(st.integers(1, 24))

    padding = draw_padding(draw, s, max_pad=4, instead_of_same="int")
    (pt, pb), (pl, pr) = resolve_padding(padding, kernel, dilation, stride)
    padding_mode = draw(st.sampled_from(PADDING_MODES))

    # Smallest input the kernel (and the padding mode) accepts, plus extra.
    eff = [dd * (kk - 1) + 1 for dd, kk in zip(d, kernel)]
    min_h, min_w = max(1, eff[0] - pt - pb), max(1, eff[1] - pl - pr)
    if padding_mode != "zeros":  # reflect: pad < size; circular: pad <= size
        min_h, min_w = max(min_h, max(pt, pb) + 1), max(min_w, max(pl, pr) + 1)
    h = min_h + draw(st.integers(0, 12))
    # Wide rows reach the row-panel path (output width >= 3/4 of the panels).
    w = min_w + draw(st.one_of(st.integers(0, 12), st.integers(13, 72)))
    batch = draw(st.one_of(st.none(), st.integers(0, 3)))

    # Keep the float64 reference cheap: shrink the image, then the batch.
    def out_hw():
        return ((h + pt + pb - eff[0]) // s[0] + 1, (w + pl + pr - eff[1]) // s[1] + 1)

    while _macs(batch, kg * groups, out_hw(), cg, kernel) > 3_000_000 and w > min_w:
        w = max(min_w, w // 2)
    while _macs(batch, kg * groups, out_hw(), cg, kernel) > 3_000_000 and h > min_h:
        h = max(min_h, h // 2)
    if _macs(batch, kg * groups, out_hw(), cg, kernel) > 3_000_000 and batch:
        batch = 1

    winograd_ok = _winograd_tiles(kernel, s, d) != ()
    dtype_pool = FLOAT_DTYPES if winograd_ok and family == "winograd" else FLOAT_DTYPES + INT_DTYPES
    x_dtype, w_dtype, b_dtype = draw(st.sampled_from(dtype_pool))
    if not draw(st.booleans()):
        b_dtype = None
    float_result = any(np.dtype(t).kind == "f" for t in (x_dtype, w_dtype, b_dtype) if t)
    algorithms = ["auto", "direct"]
    if winograd_ok and float_result:
        algorithms += ["winograd"] + [f"winograd{m}" for m in WINOGRAD_TILES[kernel[0]]]
        if kernel != (3, 3) and family == "winograd":
            # The family is there for Winograd's tiles; "auto" on larger
            # kernels is drawn by the general family (where its FFT-or-direct
            # choice depends on the thread count, so results may differ in
            # the last bits between num_threads values).
            algorithms = algorithms[2:]
    algorithm = draw(st.sampled_from(algorithms))

    memory = draw(st.sampled_from(
        ["contiguous", "strided", "fortran", "unaligned", "readonly", "swapped", "list"]))
    if memory == "list" and not (batch != 0 and np.prod((batch or 1, cg * groups, h, w)) <= 1500
                                 and x_dtype in ("float64", "int64", "bool")):
        memory = "contiguous"  # nested lists keep only these dtypes (and no empty batch)
    return Call(
        batch=batch, in_channels=cg * groups, out_channels=kg * groups, hw=(h, w),
        kernel=kernel, stride=stride, padding=padding, dilation=dilation, groups=groups,
        padding_mode=padding_mode, dtypes=(x_dtype, w_dtype, b_dtype),
        values=draw(st.sampled_from(["normal", "int"])), algorithm=algorithm,
        layout=draw(st.sampled_from(["NCHW", "NHWC"] if HAS_LAYOUT else ["NCHW"])),
        activation=draw(st.sampled_from([None, "relu"] if HAS_ACTIVATION else [None])),
        api=draw(st.sampled_from(["function", "function-out", "layer", "layer-out"])),
        num_threads=draw(st.sampled_from([None, 1, 2, 3])),
        memory=memory,
        seed=draw(st.integers(0, 2**32 - 1)))


# --- running a call -----------------------------------------------------------

def _pair(v):
    return tuple(v) if isinstance(v, tuple) else (v, v)


def _to_layout(x_nchw, layout):
    if layout == "NCHW":
        return x_nchw
    return x_nchw.transpose((0, 2, 3, 1) if x_nchw.ndim == 4 else (1, 2, 0))


def _from_layout(y, layout):
    if layout == "NCHW":
        return y
    return y.transpose((0, 3, 1, 2) if y.ndim == 4 else (2, 0, 1))


def _unaligned_copy(a):
    """A C-contiguous copy of ``a`` whose data pointer is not aligned to its
    itemsize (its first byte is one past an aligned address)."""
    buf = np.empty(a.nbytes + a.dtype.itemsize, np.uint8)
    offset = 1 if buf.ctypes.data % a.dtype.itemsize == 0 else 0
    view = buf[offset:offset + a.nbytes].view(a.dtype).reshape(a.shape)
    view[...] = a
    return view


def _pass_input(x, memory):
    """``x`` as the user passes it, in the way ``memory`` names."""
    if memory == "contiguous":
        return np.ascontiguousarray(x)
    if memory == "strided":
        big = np.zeros(x.shape[:-1] + (2 * x.shape[-1] + 1,), x.dtype)
        big[..., 1::2] = x
        return big[..., 1::2]
    if memory == "fortran":
        return np.asfortranarray(x)
    if memory == "unaligned":
        return _unaligned_copy(np.ascontiguousarray(x)) if x.dtype.itemsize > 1 else x
    if memory == "readonly":
        y = np.array(x)
        y.flags.writeable = False
        return y
    if memory == "swapped":
        return x.astype(x.dtype.newbyteorder()) if x.dtype.itemsize > 1 else x
    if memory == "list":
        return x.tolist()
    raise AssertionError(memory)


GUARD = 37  # elements either side of ``out`` that must not change


def _guarded_out(shape, dtype):
    """(out, check): ``out`` C-contiguous inside a larger buffer; ``check()``
    asserts that the elements around it were not written."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    buf = np.empty(size + 2 * GUARD, dtype)
    sentinel = np.array(-1234.5 if dtype.kind == "f" else -7777).astype(dtype)
    buf[:] = sentinel
    out = buf[GUARD:GUARD + size].reshape(shape)

    def check():
        assert (buf[:GUARD] == sentinel).all(), "wrote before out"
        assert (buf[GUARD + size:] == sentinel).all(), "wrote after out"
    return out, check


def _winograd_tiles(kernel, stride, dilation):
    """Winograd's tile sizes for this kernel, stride and dilation (pairs)."""
    if kernel[0] != kernel[1] or stride != (1, 1) or dilation != (1, 1):
        return ()
    return WINOGRAD_TILES.get(kernel[0], ())


def _tile_scale(scale, m):
    """Largest ``scale`` over each output's m x m Winograd tile (tiles start
    at output (0, 0)); as ``tile_scale`` in test_winograd.py."""
    *lead, h, w = scale.shape
    th, tw = -(-h // m), -(-w // m)
    padded = np.zeros((*lead, th * m, tw * m))
    padded[..., :h, :w] = scale
    tiles = padded.reshape(*lead, th, m, tw, m).max(axis=(-3, -1))
    return np.repeat(np.repeat(tiles, m, axis=-2), m, axis=-1)[..., :h, :w]


def _reference(call, x, w, b, result_dtype):
    """(want, limit): float64 (or exact int64) result in NCHW and the allowed
    absolute error per element (None for exact integers)."""
    padding, args = call.padding, (call.stride, call.dilation, call.groups)
    if call.padding_mode != "zeros":
        (pt, pb), (pl, pr) = resolve_padding(padding, call.kernel, call.dilation, call.stride)
        pads = ((pt, pb), (pl, pr))
        lead = ((0, 0),) * (x.ndim - 2)
        x = np.pad(x, lead + pads, mode=NUMPY_PAD_MODE[call.padding_mode])
        padding = 0
    stride, dilation, groups = args
    if result_dtype.kind in "iu":
        want = conv2d_ref(x, w, b, stride, padding, dilation, groups, dtype=np.int64)
        if call.activation == "relu":
            want = np.maximum(want, 0)
        return want, None
    want = conv2d_ref(x, w, b, stride, padding, dilation, groups)
    if call.activation == "relu":
        want = np.maximum(want, 0)
    scale = tolerance_scale(x, w, b, stride, padding, dilation, groups)
    n_terms = w.shape[1] * w.shape[2] * w.shape[3] + (b is not None)
    limit = rtol_for(result_dtype, n_terms) * scale + atol_for(result_dtype)
    winograd_tiles = _winograd_tiles(call.kernel, _pair(call.stride), _pair(call.dilation))
    if winograd_tiles and call.algorithm != "direct":
        # Winograd mixes every input of a tile with every filter tap, so its
        # error follows the tile's inputs times the filter's largest tap
        # (with |w| itself, a filter with zero taps where the tile's inputs
        # are would allow no error at all).
        compute = np.dtype(np.float32) if result_dtype == np.float16 else result_dtype
        w_max = np.broadcast_to(np.abs(w.astype(np.float64)).max(axis=(1, 2, 3), keepdims=True),
                                w.shape)
        magnitude = tolerance_scale(x, w_max, b, stride, padding, dilation, groups)
        tiles = ([int(call.algorithm[-1])] if call.algorithm[-1].isdigit()
                 else winograd_tiles)
        tile = np.max([_tile_scale(magnitude, m) for m in tiles], axis=0)
        limit = limit + WINOGRAD_RTOL[compute] * tile
    return want, limit


def run_call(call):
    """Run ``call`` and check everything listed in the module docstring."""
    x, w, b = call.arrays()
    x_user = _pass_input(_to_layout(x, call.layout), call.memory)
    x_before = np.array(x_user, copy=True)
    w_before, b_before = w.copy(), None if b is None else b.copy()
    x_dtype = np.asarray(x_user).dtype.newbyteorder("=")
    result_dtype = expected_dtype(x_dtype, w.dtype, None if b is None else b.dtype)

    settings_kw = dict(stride=call.stride, padding=call.padding, dilation=call.dilation,
                       groups=call.groups, algorithm=call.algorithm)
    if HAS_PADDING_MODE:
        settings_kw["padding_mode"] = call.padding_mode
    if HAS_LAYOUT:
        settings_kw["layout"] = call.layout
    if HAS_ACTIVATION:
        settings_kw["activation"] = call.activation

    want, limit = _reference(call, x, w, b, result_dtype)
    shape = _to_layout(np.empty(want.shape, bool), call.layout).shape
    check_guard = None
    out = None
    if call.api.endswith("-out"):
        out, check_guard = _guarded_out(shape, result_dtype)

    if call.api.startswith("function"):
        got = fastconv.conv2d(x_user, w, b, num_threads=call.num_threads, out=out,
                              **settings_kw)
        again = fastconv.conv2d(x_user, w, b, num_threads=1, **settings_kw)
    else:
        layer = fastconv.Conv2d(w, b, num_threads=call.num_threads, **settings_kw)
        got = layer(x_user, out=out)
        again = layer(x_user, num_threads=1)  # cached weights, one thread

    # The call itself.
    assert isinstance(got, np.ndarray)
    if out is not None:
        assert got is out
        check_guard()
    assert got.dtype == result_dtype, (got.dtype, result_dtype)
    assert got.shape == shape, (got.shape, shape)
    assert got.flags.c_contiguous
    # Operands untouched.
    np.testing.assert_array_equal(np.asarray(x_user), x_before)
    np.testing.assert_array_equal(w, w_before)
    if b is not None:
        np.testing.assert_array_equal(b, b_before)
    # Thread-count independence (and the cached path of a layer): bit for bit.
    assert again.dtype == got.dtype and again.shape == got.shape
    np.testing.assert_array_equal(again, got, err_msg="not bit-identical with num_threads=1")

    # Against the reference.
    got_nchw = _from_layout(got, call.layout)
    if limit is None:
        np.testing.assert_array_equal(got_nchw, want)
        return
    err = np.abs(got_nchw.astype(np.float64) - want)
    bad = ~(err <= limit)  # NaN is bad too
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{int(bad.sum())} of {bad.size} outputs off; first at {idx}: got "
            f"{got_nchw[idx]!r}, want {want[idx]!r}, err {err[idx]:.3g} > limit "
            f"{limit[idx]:.3g}; max err/limit {float(np.nanmax(err / limit)):.3g}")


# --- the tests ----------------------------------------------------------------

@pytest.mark.parametrize("isa", LEVELS)
@settings(max_examples=examples(700))
@given(call=conv_calls())
def test_fuzz_against_reference(isa, call):
    """Anywhere in the parameter space, at every SIMD level."""
    with isa_level(isa):
        run_call(call)


@pytest.mark.parametrize("isa", LEVELS)
@settings(max_examples=examples(200))
@given(call=conv_calls(family="winograd"))
def test_fuzz_winograd_shapes(isa, call):
    """3x3, stride 1, dilation 1, float dtypes: every Winograd tile size,
    "auto" and the direct kernel on the shapes Winograd applies to."""
    with isa_level(isa):
        run_call(call)


def test_isa_hook_switches_and_restores():
    """The fixture the fuzz tests use really changes the kernels, and puts
    the import-time level back."""
    original = _isa.active_isa()
    shapes = {}
    for level in LEVELS:
        with isa_level(level) as got:
            assert got == level
            shapes[level] = _direct.tile_shape("float32")
    assert _cpu.select_isa(original) == original
    if len(LEVELS) > 1:
        assert len(set(shapes.values())) > 1, shapes

