"""Bad arguments raise ValueError/TypeError naming the offending argument.

Each case is a small valid call with one thing broken, so a failure points
at exactly one check in fastconv.
"""

import re

import numpy as np
import pytest

import fastconv

X = np.zeros((1, 4, 6, 6))
W = np.zeros((6, 4, 3, 3))


def _call(x=X, w=W, *args, **kwargs):
    return fastconv.conv2d(x, w, *args, **kwargs)


# (id, kwargs for _call, exception type(s), regex the message must match)
BAD = [
    # --- input / weight rank -------------------------------------------
    ("input-2d", dict(x=np.zeros((6, 6))), ValueError, "input"),
    ("input-5d", dict(x=np.zeros((1, 1, 4, 6, 6))), ValueError, "input"),
    ("input-scalar", dict(x=np.float64(1.0)), ValueError, "input"),
    ("weight-3d", dict(w=np.zeros((6, 4, 3))), ValueError, "weight"),
    ("weight-5d", dict(w=np.zeros((6, 4, 3, 3, 1))), ValueError, "weight"),
    # --- channels and groups -------------------------------------------
    ("channel-mismatch", dict(w=np.zeros((6, 3, 3, 3))), ValueError,
     "channel|input|weight"),
    ("channel-mismatch-groups", dict(w=np.zeros((6, 4, 3, 3)), groups=2),
     ValueError, "channel|input|weight|groups"),
    ("groups-not-dividing-C", dict(w=np.zeros((6, 1, 3, 3)), groups=3),
     ValueError, "groups"),
    ("groups-not-dividing-K", dict(w=np.zeros((5, 2, 3, 3)), groups=2),
     ValueError, "groups"),
    ("groups-zero", dict(groups=0), ValueError, "groups"),
    ("groups-negative", dict(groups=-2), ValueError, "groups"),
    ("groups-float", dict(groups=1.5), TypeError, "groups"),
    ("groups-string", dict(groups="1"), TypeError, "groups"),
    # --- stride ----------------------------------------------------------
    ("stride-zero", dict(stride=0), ValueError, "stride"),
    ("stride-negative", dict(stride=-1), ValueError, "stride"),
    ("stride-pair-zero", dict(stride=(1, 0)), ValueError, "stride"),
    ("stride-float", dict(stride=1.5), TypeError, "stride"),
    ("stride-pair-float", dict(stride=(1, 1.5)), TypeError, "stride"),
    ("stride-bool", dict(stride=True), (TypeError, ValueError), "stride"),
    ("stride-triple", dict(stride=(1, 1, 1)), ValueError, "stride"),
    ("stride-string", dict(stride="1"), (TypeError, ValueError), "stride"),
    ("stride-none", dict(stride=None), TypeError, "stride"),
    # --- dilation --------------------------------------------------------
    ("dilation-zero", dict(dilation=0), ValueError, "dilation"),
    ("dilation-pair-negative", dict(dilation=(-1, 1)), ValueError, "dilation"),
    ("dilation-float", dict(dilation=1.5), TypeError, "dilation"),
    ("dilation-bool", dict(dilation=True), (TypeError, ValueError),
     "dilation"),
    ("dilation-triple", dict(dilation=(1, 1, 1)), ValueError, "dilation"),
    # --- padding ---------------------------------------------------------
    ("padding-negative", dict(padding=-1), ValueError, "padding"),
    ("padding-pair-negative", dict(padding=(0, -1)), ValueError, "padding"),
    ("padding-float", dict(padding=1.5), TypeError, "padding"),
    ("padding-pair-float", dict(padding=(1.5, 0)), TypeError, "padding"),
    ("padding-bad-string", dict(padding="full"), ValueError, "padding"),
    ("padding-empty-string", dict(padding=""), ValueError, "padding"),
    ("padding-triple", dict(padding=(1, 1, 1)), ValueError, "padding"),
    ("padding-empty-tuple", dict(padding=()), ValueError, "padding"),
    ("padding-bool", dict(padding=True), (TypeError, ValueError), "padding"),
    ("same-with-stride2", dict(padding="same", stride=2), ValueError,
     "same|stride|padding"),
    ("same-with-stride-pair", dict(padding="same", stride=(1, 2)),
     ValueError, "same|stride|padding"),
    # --- kernel vs input size -------------------------------------------
    ("kernel-larger-than-input", dict(w=np.zeros((6, 4, 7, 3))), ValueError,
     "kernel|input"),
    ("kernel-wider-than-input", dict(w=np.zeros((6, 4, 1, 8))), ValueError,
     "kernel|input"),
    ("dilated-kernel-too-large", dict(dilation=3), ValueError,
     "kernel|input"),
    ("kernel-too-large-after-padding", dict(w=np.zeros((6, 4, 9, 9)),
                                             padding=1), ValueError,
     "kernel|input"),
    # --- bias ------------------------------------------------------------
    ("bias-too-long", dict(bias=np.zeros(7)), ValueError, "bias"),
    ("bias-too-short", dict(bias=np.zeros(5)), ValueError, "bias"),
    ("bias-2d", dict(bias=np.zeros((6, 1))), ValueError, "bias"),
    ("bias-scalar", dict(bias=np.float64(0.0)), ValueError, "bias"),
    # --- zero-sized kernel ----------------------------------------------
    ("weight-zero-height", dict(w=np.zeros((6, 4, 0, 3))), ValueError,
     "weight"),
    ("weight-zero-width", dict(w=np.zeros((6, 4, 3, 0))), ValueError,
     "weight"),
    ("weight-zero-in-channels", dict(x=np.zeros((1, 0, 6, 6)),
                                     w=np.zeros((6, 0, 3, 3))), ValueError,
     "weight"),
    # --- num_threads -----------------------------------------------------
    ("num_threads-zero", dict(num_threads=0), ValueError, "num_threads"),
    ("num_threads-negative", dict(num_threads=-1), ValueError, "num_threads"),
    ("num_threads-float", dict(num_threads=2.0), TypeError, "num_threads"),
    ("num_threads-string", dict(num_threads="2"), TypeError, "num_threads"),
    # --- algorithm -------------------------------------------------------
    ("algorithm-unknown", dict(algorithm="no-such-algorithm"), ValueError,
     "algorithm"),
    ("algorithm-empty", dict(algorithm=""), ValueError, "algorithm"),
]


@pytest.mark.parametrize("kwargs,exc,pattern",
                         [case[1:] for case in BAD],
                         ids=[case[0] for case in BAD])
def test_bad_argument_raises_naming_it(kwargs, exc, pattern):
    kwargs = dict(kwargs)
    x, w = kwargs.pop("x", X), kwargs.pop("w", W)
    with pytest.raises(exc, match=re.compile(pattern, re.IGNORECASE)):
        fastconv.conv2d(x, w, **kwargs)


def test_unknown_algorithm_message_lists_valid_names():
    with pytest.raises(ValueError) as info:
        _call(algorithm="no-such-algorithm")
    message = str(info.value)
    assert "auto" in message and "direct" in message


@pytest.mark.parametrize("x,w", [
    (X.astype(np.complex128), W),
    (X, W.astype(np.complex64)),
    (X.astype(object), W),
    (np.full(X.shape, "a"), W),
    (X, np.full(W.shape, "a")),
], ids=["complex-input", "complex-weight", "object-input", "string-input",
        "string-weight"])
def test_unsupported_dtype_is_type_error(x, w):
    with pytest.raises(TypeError):
        fastconv.conv2d(x, w)


def test_complex_bias_is_type_error():
    with pytest.raises(TypeError):
        fastconv.conv2d(X, W, np.zeros(6, dtype=np.complex128))


def test_ragged_list_input_is_rejected():
    """A ragged nested list is not an array: must raise, not crash."""
    with pytest.raises((TypeError, ValueError)):
        fastconv.conv2d([[[[1.0, 2.0], [3.0]]]], [[[[1.0]]]])


# --- out= -----------------------------------------------------------------

def _out_cases():
    """(id, make_out) pairs: make_out(x, w, b) -> a bad ``out`` for _call."""
    shape = (1, 6, 4, 4)

    def non_contiguous(x, w, b):
        return np.zeros((1, 6, 4, 8))[..., ::2]

    def fortran(x, w, b):
        return np.zeros(shape, order="F")

    def read_only(x, w, b):
        out = np.zeros(shape)
        out.setflags(write=False)
        return out

    return [
        ("wrong-shape", lambda x, w, b: np.zeros((1, 6, 4, 5))),
        ("missing-batch-axis", lambda x, w, b: np.zeros((6, 4, 4))),
        ("wrong-dtype", lambda x, w, b: np.zeros(shape, dtype=np.float32)),
        ("non-contiguous", non_contiguous),
        ("fortran-order", fortran),
        ("list", lambda x, w, b: np.zeros(shape).tolist()),
        ("read-only", read_only),
        ("not-an-array", lambda x, w, b: "out"),
    ]


@pytest.mark.parametrize("make_out", [c[1] for c in _out_cases()],
                         ids=[c[0] for c in _out_cases()])
def test_bad_out_raises(make_out):
    x, w, b = np.ones((1, 4, 6, 6)), np.ones((6, 4, 3, 3)), np.ones(6)
    out = make_out(x, w, b)
    with pytest.raises(ValueError, match="out"):
        fastconv.conv2d(x, w, b, out=out)


def test_out_wrong_dtype_for_int_result():
    """Integer operands give int64, so a float64 out is the wrong dtype."""
    x, w = np.ones((1, 1, 3, 3), dtype=np.int64), np.ones((1, 1, 3, 3), np.int64)
    with pytest.raises(ValueError, match="out"):
        fastconv.conv2d(x, w, out=np.zeros((1, 1, 1, 1)))


def test_out_sharing_memory_with_input():
    x = np.ones((1, 2, 5, 5))
    w = np.ones((2, 2, 3, 3))
    with pytest.raises(ValueError, match="out"):
        fastconv.conv2d(x, w, padding="same", out=x)


def test_out_overlapping_input_view():
    """Partial overlap counts too, not only ``out is input``."""
    buf = np.ones(200)
    x = buf[:50].reshape(1, 2, 5, 5)
    out = buf[40:58].reshape(1, 2, 3, 3)
    with pytest.raises(ValueError, match="out"):
        fastconv.conv2d(x, np.ones((2, 2, 3, 3)), out=out)


def test_out_sharing_memory_with_weight():
    buf = np.ones(100)
    w = buf[:36].reshape(2, 2, 3, 3)
    out = buf[18:36].reshape(1, 2, 3, 3)
    with pytest.raises(ValueError, match="out"):
        fastconv.conv2d(np.ones((1, 2, 5, 5)), w, out=out)


def test_out_sharing_memory_with_bias():
    out = np.zeros((1, 2, 3, 3))
    bias = out.reshape(-1)[:2]
    with pytest.raises(ValueError, match="out"):
        fastconv.conv2d(np.ones((1, 2, 5, 5)), np.ones((2, 2, 3, 3)), bias,
                        out=out)


def test_error_leaves_out_untouched():
    """A rejected call must fail before writing anything."""
    out = np.full((1, 6, 4, 4), 7.0)
    with pytest.raises(ValueError):
        fastconv.conv2d(X, W, np.zeros(5), out=out)
    assert (out == 7.0).all()


def test_channel_errors_say_what_to_change():
    """groups that do not divide C say so; channels-last data passed as NCHW
    gets a hint about layout (conv2d, conv1d and a layer alike)."""
    with pytest.raises(ValueError, match=r"groups=2 must divide the input channels"):
        fastconv.conv2d(np.zeros((1, 3, 8, 8)), np.zeros((4, 3, 3, 3)), groups=2)
    with pytest.raises(ValueError, match=r"pass layout='NHWC'"):
        fastconv.conv2d(np.zeros((1, 8, 8, 4)), W)
    with pytest.raises(ValueError, match=r"pass layout='NHWC'"):
        fastconv.Conv2d(W)(np.zeros((8, 8, 4)))
    with pytest.raises(ValueError, match=r"pass layout='NLC'"):
        fastconv.conv1d(np.zeros((1, 9, 4)), np.zeros((6, 4, 3)))
    with pytest.raises(ValueError) as error:  # no hint for data that is not channels-last
        fastconv.conv2d(np.zeros((1, 5, 8, 8)), W)
    assert "layout" not in str(error.value) and "must divide" not in str(error.value)
