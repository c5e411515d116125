"""The direct kernel's three code paths, each against the float64 reference.

* packed (im2col) panels: 1x1 kernels, and images of at most 4 micro-kernel
  panels where row panels would take more of them (for one small image with
  many output channels the threads pack the columns together),
* row panels read in place: larger kernels on larger images, in whole
  panels or dense (panels crossing row ends), with the stride-1 and the
  strided (one copy per kernel row) scratch layouts; every stride,
  dilation and padding goes through the phase-split row scratch,
* the plane kernel: groups of at most four input channels (depthwise),
* channel lanes: a prepared layer (``Conv2d``) without groups on a small
  image, output channels in the vector lanes and pixels broadcast from a
  zero-padded copy of the input.

Shapes are chosen around the switch-over points (output widths 12-70) so
that every instruction-set level (panel widths 8-32) meets both sides.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import _conv, _direct, _direct_gemm
from reference import assert_conv_close

ROW_PANEL_CASES = [
    # (N, C, K, H, W, kernel, stride, padding, dilation, groups)
    (1, 6, 13, 30, 40, (3, 3), 1, 1, 1, 1),
    (2, 5, 7, 33, 70, (5, 5), 1, 2, 1, 1),
    (1, 8, 16, 61, 64, (3, 3), 2, 1, 1, 1),
    (1, 3, 20, 70, 69, (7, 7), 2, 3, 1, 1),
    (1, 4, 9, 40, 58, (3, 2), (1, 3), (2, 0), (2, 1), 1),
    (2, 12, 12, 29, 45, (3, 3), 1, 2, 2, 2),
    (1, 16, 24, 26, 26, (3, 3), 1, "same", 1, 1),
    (1, 10, 5, 20, 37, (4, 4), 1, "same", 1, 1),
    (1, 300, 30, 8, 30, (3, 3), 1, 1, 1, 1),  # several reduction chunks
    (1, 40, 50, 7, 7, (3, 3), 1, 1, 1, 1),  # small: as many panels as packed
]

PACKED_CASES = [
    # one small image with many output channels: the threads share the packing
    (1, 40, 200, 12, 12, (3, 3), 2, 1, 1, 1),
    (1, 300, 130, 7, 7, (1, 1), 1, 0, 1, 1),
    (1, 64, 70, 9, 9, (1, 1), 1, 0, 1, 1),
    (2, 40, 30, 14, 11, (3, 3), 1, 1, 1, 1),
    (1, 24, 36, 7, 7, (3, 3), 2, 1, 1, 1),
    (1, 20, 24, 5, 5, (3, 3), 1, 1, 1, 1),
    (3, 10, 12, 15, 13, (2, 5), (2, 1), (1, 2), (1, 2), 2),
    # pointwise, stride 1, unpadded: rows copied as contiguous runs; several
    # pixel blocks, reduction chunks, a partial last panel, groups, batches
    (2, 300, 20, 17, 19, (1, 1), 1, 0, 1, 1),
    (1, 30, 18, 23, 31, (1, 1), 1, 0, 2, 3),
    (3, 7, 9, 5, 3, (1, 1), 1, 0, 1, 1),
]

PLANE_CASES = [
    (1, 16, 16, 31, 29, (3, 3), 1, 1, 1, 16),
    (2, 8, 16, 14, 14, (3, 3), 2, 1, 1, 8),
    (1, 6, 6, 40, 45, (5, 5), 1, 2, 1, 6),
    (1, 9, 18, 12, 33, (7, 3), (1, 2), (3, 1), (1, 2), 3),
    (1, 8, 8, 7, 7, (3, 3), 1, 1, 1, 4),
    (1, 4, 4, 5, 50, (1, 1), 1, 0, 1, 4),
]


def _run(case, dtype, relu=False):
    n, c, k, h, w, kernel, stride, padding, dilation, groups = case
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((k, c // groups) + kernel).astype(dtype)
    bias = rng.standard_normal(k).astype(dtype)
    got = fastconv.conv2d(x, weight, bias, stride, padding, dilation, groups,
                          algorithm="direct")
    assert_conv_close(got, x, weight, bias, stride, padding, dilation, groups)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ROW_PANEL_CASES + PACKED_CASES + PLANE_CASES, ids=str)
def test_direct_paths_match_reference(case, dtype):
    _run(case, dtype)


@pytest.mark.parametrize("case", ROW_PANEL_CASES[:3] + PACKED_CASES[-3:] + PLANE_CASES[:2],
                         ids=str)
def test_direct_paths_exact_in_int64(case):
    n, c, k, h, w, kernel, stride, padding, dilation, groups = case
    rng = np.random.default_rng(1)
    x = rng.integers(-50, 50, (n, c, h, w))
    weight = rng.integers(-50, 50, (k, c // groups) + kernel)
    got = fastconv.conv2d(x, weight, None, stride, padding, dilation, groups)
    assert got.dtype == np.int64
    assert_conv_close(got, x, weight, None, stride, padding, dilation, groups)


@pytest.mark.parametrize("case", ROW_PANEL_CASES[:4] + PACKED_CASES[:2] + PLANE_CASES[:3],
                         ids=str)
def test_direct_paths_thread_count_invariant(case):
    n, c, k, h, w, kernel, stride, padding, dilation, groups = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((k, c // groups) + kernel).astype(np.float32)
    one = fastconv.conv2d(x, weight, None, stride, padding, dilation, groups,
                          algorithm="direct", num_threads=1)
    three = fastconv.conv2d(x, weight, None, stride, padding, dilation, groups,
                            algorithm="direct", num_threads=3)
    np.testing.assert_array_equal(one, three)


STRIDED_ROW_CASES = [
    # (N, C, K, H, W, kernel, stride, padding, dilation, groups)
    # reduction chunks (more than 288 taps): an uneven last chunk, K not a
    # multiple of any tile height
    (1, 40, 13, 37, 45, (3, 3), 2, 1, 1, 1),
    # chunks of whole-panel rows (31 wide), groups, a batch
    (2, 96, 20, 9, 62, (3, 3), 2, 1, 1, 2),
    # chunks with a dilation that skips the odd rows: one copy per kernel row
    (1, 36, 10, 30, 33, (3, 3), 2, 2, 2, 1),
    # kernel rows that skip a row phase (kernel height < stride)
    (1, 8, 12, 31, 40, (2, 3), (3, 2), 1, 1, 1),
    # three row phases, 5x5
    (1, 6, 10, 40, 41, (5, 5), 3, 2, 1, 1),
    # a small strided image: rows fill no more panels than packing would
    (1, 64, 40, 14, 14, (3, 3), 2, 1, 1, 1),
]


def _strided_case(case, dtype, seed):
    n, c, k, h, w, kernel, stride, padding, dilation, groups = case
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "i":
        x = rng.integers(-50, 50, (n, c, h, w))
        weight = rng.integers(-50, 50, (k, c // groups) + kernel)
        bias = rng.integers(-50, 50, k)
    else:
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
        weight = rng.standard_normal((k, c // groups) + kernel).astype(dtype)
        bias = rng.standard_normal(k).astype(dtype)
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x, weight, bias, options


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("case", STRIDED_ROW_CASES, ids=str)
def test_strided_rows_match_reference(case, dtype):
    """Strided row panels (polyphase or per-kernel-row copies, in reduction
    chunks or whole) against the float64 reference, exact in int64, with
    the fused ReLU, and bit-identical for any thread count."""
    x, weight, bias, options = _strided_case(case, dtype, 7)
    plan = fastconv.plan(x.shape, weight.shape, dtype=x.dtype, algorithm="direct",
                         **options)
    assert plan.path == "rows"
    got = fastconv.conv2d(x, weight, bias, algorithm="direct", **options)
    assert_conv_close(got, x, weight, bias, options["stride"], options["padding"],
                      options["dilation"], options["groups"])
    relu = fastconv.conv2d(x, weight, bias, algorithm="direct", activation="relu", **options)
    np.testing.assert_array_equal(relu, np.maximum(got, 0))
    for threads in (2, 3):
        np.testing.assert_array_equal(
            fastconv.conv2d(x, weight, bias, algorithm="direct", num_threads=threads,
                            **options), got)


def test_strided_rows_chunk_the_reduction_of_large_layers():
    """Reduction chunks where a panel's B rows would outgrow L1 and many B
    panels meet each chunk of weights; not for the stem's 147 taps nor for a
    small image of two panels."""
    def chunked(input_shape, weight_shape, **options):
        plan = fastconv.plan(input_shape, weight_shape, algorithm="direct", num_threads=1,
                             **options)
        assert plan.path == "rows"
        return plan.blocking["chunk_channels"] < weight_shape[1]

    assert chunked((1, 128, 56, 56), (128, 128, 3, 3), stride=2, padding=1)
    # The chunks take the wide tile where the level has one.
    plan = fastconv.plan((1, 128, 56, 56), (128, 128, 3, 3), stride=2, padding=1,
                         num_threads=1)
    assert plan.blocking["wide"] == int(_direct.wide_tile_width("float32") > 0)
    assert not fastconv.plan((1, 128, 56, 56), (128, 128, 3, 3), stride=2, padding=1,
                             dtype=np.float64).blocking["wide"]
    assert chunked((1, 40, 37, 45), (13, 40, 3, 3), stride=2, padding=1)
    assert not chunked((1, 3, 224, 224), (64, 3, 7, 7), stride=2, padding=3)
    assert not chunked((1, 512, 14, 14), (512, 512, 3, 3), stride=2, padding=1)
    assert not chunked((1, 128, 56, 56), (128, 128, 3, 3), padding=1)


def test_wide_tile_only_in_chunks():
    """The rows driver refuses the wide tile without reduction chunks (the
    rest of the rows code runs the MR x NR tile) or where there is none."""
    x = np.ones((1, 8, 10, 10), np.float32)
    out = np.empty((1, 4, 4, 4), np.float32)
    weight, tails, bias = _direct.pack_weights(np.ones((4, 8, 3, 3), np.float32),
                                               np.zeros(4, np.float32), 1)
    for chunk in (8, 4) if _direct.wide_tile_width("float32") == 0 else (8,):
        with pytest.raises(ValueError, match="wide"):
            _direct_gemm.conv2d_rows(x, weight, tails, bias, out, 3, 3, 2, 2, 0, 0, 1, 1, 1, 1,
                                     {"row_blocks": 1, "channel_blocks": 1, "dense": 1,
                                      "chunk_channels": chunk, "wide": 1})


@pytest.mark.parametrize("case", STRIDED_ROW_CASES[:4], ids=str)
def test_strided_rows_do_not_depend_on_the_blocking(case):
    """Any row blocks (one-row blocks take the per-kernel-row copy), channel
    blocks and reduction chunks give the same bits: every output element
    sums its taps in one order."""
    x, weight, bias, options = _strided_case(case, np.float32, 8)
    n, c, k, h, w, kernel, stride, padding, dilation, groups = case
    want = fastconv.conv2d(x, weight, bias, algorithm="direct", **options)
    (sh, sw), (dh, dw) = np.broadcast_to(stride, 2), np.broadcast_to(dilation, 2)
    (ph, pw) = np.broadcast_to(padding, 2)
    packed, tails, padded_bias = _direct.pack_weights(weight, bias, groups)
    mr, nr = _direct.tile_shape("float32")
    out = np.empty_like(want)
    out_h, out_w = want.shape[2:]
    group_in = c // groups
    wide_nr = _direct.wide_tile_width("float32")
    for row_blocks in (1, 3, out_h):
        for channel_blocks in (1, 2):
            for chunk, wide in ((1, 0), (5, 0), (group_in, 0), (1, 1), (5, 1)):
                if wide and (not wide_nr or chunk >= group_in):
                    continue
                width = wide_nr if wide else nr
                out[...] = np.nan
                _direct_gemm.conv2d_rows(
                    x, packed, tails, padded_bias, out, kernel[0], kernel[1], sh, sw, ph,
                    pw, dh, dw, groups, 2,
                    {"row_blocks": row_blocks, "wide": wide,
                     "dense": int(out_w + (kernel[1] - 1) * dw // sw < -(-out_w // width) * width),
                     "channel_blocks": min(channel_blocks, -(-(k // groups) // mr)),
                     "chunk_channels": min(chunk, group_in)})
                np.testing.assert_array_equal(out, want)


@settings(max_examples=60, deadline=None)
@given(c=st.integers(1, 5), k=st.integers(1, 10), h=st.integers(1, 12), w=st.integers(1, 12),
       kh=st.integers(1, 5), kw=st.integers(1, 5), sh=st.integers(1, 3), sw=st.integers(2, 3),
       ph=st.integers(0, 3), pw=st.integers(0, 3), dh=st.integers(1, 2), dw=st.integers(1, 2),
       row_blocks=st.integers(1, 4), chunk=st.integers(1, 5), wide=st.booleans())
def test_strided_rows_property(c, k, h, w, kh, kw, sh, sw, ph, pw, dh, dw, row_blocks, chunk,
                               wide):
    """Narrow and padded rows through the strided copies (the stride-2 copy
    splits both column phases in one pass, with edges of either phase)."""
    if h + 2 * ph < dh * (kh - 1) + 1 or w + 2 * pw < dw * (kw - 1) + 1:
        return
    rng = np.random.default_rng(c * 1000003 + k * 10007 + h * 101 + w)
    # The wide tile (float32, in chunks) where the level has it.
    wide = int(wide and chunk < c and _direct.wide_tile_width("float32") > 0)
    dtype = np.float32 if wide else np.float64
    x = rng.standard_normal((1, c, h, w)).astype(dtype)
    weight = rng.standard_normal((k, c, kh, kw)).astype(dtype)
    packed, tails, bias = _direct.pack_weights(weight, np.zeros(k, dtype), 1)
    out_h = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    out_w = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.full((1, k, out_h, out_w), np.nan, dtype)
    _direct_gemm.conv2d_rows(x, packed, tails, bias, out, kh, kw, sh, sw, ph, pw, dh, dw, 1, 1,
                             {"row_blocks": min(row_blocks, out_h), "channel_blocks": 1,
                              "dense": 1, "chunk_channels": min(chunk, c), "wide": wide})
    assert_conv_close(out, x, weight, None, (sh, sw), (ph, pw), (dh, dw))


LANES_CASES = [
    # (N, C, K, H, W, kernel, stride, padding, dilation): pixel counts that
    # are and are not multiples of the 7-pixel tile, K past a lane block,
    # reduction chunks, strides, dilation, asymmetric and "same" padding.
    (1, 512, 70, 7, 7, (3, 3), 1, 1, 1),
    (2, 20, 129, 9, 11, (3, 3), 2, 1, 1),
    (1, 300, 64, 14, 14, (1, 1), 1, 0, 1),
    (1, 12, 96, 13, 10, (5, 3), (1, 2), (2, 0), (2, 1)),
    (3, 9, 65, 6, 6, (3, 3), 1, "same", 1),
    (1, 5, 64, 16, 16, (2, 2), 2, 0, 1),
]


needs_lanes = pytest.mark.skipif(
    _direct.lanes_width(np.float32) == 0,
    reason="no channel-lanes tile below AVX-512 (or at FASTCONV_ISA's level)")


@pytest.fixture
def lanes_calls(monkeypatch):
    """Calls of the channel-lanes kernel."""
    calls = []
    kernel = _direct.conv2d_channel_lanes

    def spy(*args):
        calls.append(args)
        return kernel(*args)

    monkeypatch.setattr(_direct, "conv2d_channel_lanes", spy)
    return calls


def _layer_case(case, dtype, rng, relu=False, threads=None):
    n, c, k, h, w, kernel, stride, padding, dilation = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((k, c) + kernel).astype(dtype)
    bias = rng.standard_normal(k).astype(dtype)
    layer = fastconv.Conv2d(weight, bias, stride, padding, dilation, algorithm="direct",
                            activation="relu" if relu else None, num_threads=threads)
    return layer, x, weight, bias


@needs_lanes
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", LANES_CASES, ids=str)
def test_channel_lanes_match_reference(case, dtype, lanes_calls):
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    layer, x, weight, bias = _layer_case(case, dtype, rng)
    got = layer(x)
    assert lanes_calls, "the channel-lanes kernel did not run"
    n, c, k, h, w, kernel, stride, padding, dilation = case
    assert_conv_close(got, x, weight, bias, stride, padding, dilation)


@needs_lanes
def test_channel_lanes_relu_nan_and_threads(lanes_calls):
    """ReLU keeps NaN (as torch.relu does), and the result does not depend on
    the thread count (pixel groups split the work when blocks are few)."""
    rng = np.random.default_rng(5)
    case = (1, 16, 64, 7, 7, (3, 3), 1, 1, 1)
    layer, x, weight, bias = _layer_case(case, np.float32, rng, relu=True, threads=1)
    x[0, 3, 2, 2] = np.nan
    one = layer(x)
    want = np.maximum(fastconv.conv2d(x, weight, bias, padding=1, algorithm="direct"), 0)
    np.testing.assert_allclose(one, want, rtol=1e-5, atol=1e-4)
    assert np.isnan(one[:, :, 1:4, 1:4]).all() and not np.isnan(one).all()
    for threads in (2, 3, 5):
        np.testing.assert_array_equal(layer(x, num_threads=threads), one)
    assert len(lanes_calls) == 4


@needs_lanes
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_channel_lanes_padding_modes(mode, lanes_calls):
    """The kernel reads the padded copy pad_nchw makes, in every mode."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 5, 7, 8)).astype(np.float32)
    weight = rng.standard_normal((64, 5, 3, 3)).astype(np.float32)
    layer = fastconv.Conv2d(weight, padding=(2, 1), padding_mode=mode, algorithm="direct")
    got = layer(x)
    assert lanes_calls
    np_mode = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
               "circular": "wrap"}[mode]
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (1, 1)), mode=np_mode)
    assert_conv_close(got, padded, weight)


@needs_lanes
def test_channel_lanes_only_where_they_fill_the_lanes():
    """Not for one-off calls, groups, larger images or too few output
    channels to fill a tile (16 of 64 lanes ran 3x slower)."""
    def lanes(input_shape, weight_shape, dtype=np.float32, **options):
        plan = fastconv.plan(input_shape, weight_shape, padding=1, dtype=dtype,
                             algorithm="direct", **{"prepared": True, **options})
        return plan.path == "channel_lanes"

    assert lanes((1, 64, 14, 14), (128, 64, 3, 3))
    assert not lanes((1, 64, 28, 28), (128, 64, 3, 3))
    assert not lanes((1, 64, 7, 7), (128, 64, 3, 3), np.int64)
    assert not lanes((1, 64, 7, 7), (16, 64, 3, 3))
    assert not lanes((1, 64, 7, 7), (128, 32, 3, 3), groups=2)
    assert not lanes((1, 64, 7, 7), (128, 64, 3, 3), prepared=False)


@needs_lanes
def test_channel_lanes_reject_mismatched_weights():
    BLOCKING = {"pixel_groups": 1, "channel_chunk": 1}
    x = np.zeros((1, 4, 9, 9), np.float32)
    packed = _direct.pack_channel_lanes(np.zeros((8, 4, 3, 3), np.float32))
    out = np.empty((1, 8, 7, 7), np.float32)
    bias = np.zeros(8, np.float32)
    with pytest.raises(ValueError, match="packed weights"):
        _direct.conv2d_channel_lanes(x, packed[:, :-1].copy(), bias, out, 3, 3, 1, 1, 1, 1, 1,
                                     BLOCKING)
    with pytest.raises(ValueError, match="bias or out"):
        _direct.conv2d_channel_lanes(x, packed, bias[:-1].copy(), out, 3, 3, 1, 1, 1, 1, 1,
                                     BLOCKING)
    with pytest.raises(ValueError, match="padded input"):
        _direct.conv2d_channel_lanes(x[:, :, :8].copy(), packed, bias, out, 3, 3, 1, 1, 1, 1,
                                     1, BLOCKING)


@needs_lanes
@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 20), extra_k=st.integers(0, 70),
       h=st.integers(1, 12), w=st.integers(1, 12), kh=st.integers(1, 4), kw=st.integers(1, 4),
       stride=st.integers(1, 3), pad=st.integers(0, 2), dil=st.integers(1, 2),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_channel_lanes_property(n, c, extra_k, h, w, kh, kw, stride, pad, dil, dtype):
    k = _direct.lanes_width(dtype) + extra_k
    if h + 2 * pad < dil * (kh - 1) + 1 or w + 2 * pad < dil * (kw - 1) + 1:
        return
    rng = np.random.default_rng(n * 7919 + c * 104729 + k + h * 31 + w)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((k, c, kh, kw)).astype(dtype)
    layer = fastconv.Conv2d(weight, None, stride, pad, dil, algorithm="direct")
    assert layer.plan(x.shape, dtype).path == "channel_lanes"
    assert_conv_close(layer(x), x, weight, None, stride, pad, dil)


@pytest.mark.skipif(_direct.lanes_width(np.float32) != 0, reason="the level has the tile")
def test_no_channel_lanes_below_avx512():
    """Below AVX-512 the layer keeps the pixel panels, and the private entry
    points refuse rather than run a missing tile."""
    layer = fastconv.Conv2d(np.zeros((128, 64, 3, 3), np.float32), padding=1,
                            algorithm="direct")
    assert layer.plan((1, 64, 7, 7)).path != "channel_lanes"
    with pytest.raises(ValueError, match="instruction-set level"):
        _direct.pack_channel_lanes(np.zeros((8, 4, 3, 3), np.float32))
