"""Winograd F(2x2), F(4x4), F(6x6) for 3x3 kernels, F(2x2), F(4x4) for 5x5
and F(2x2) for 7x7: transforms, accuracy, NaN behaviour, algorithm selection
and the reusable layer.

The transform matrices are re-derived here with exact fractions (Toom-Cook
over the documented points, as products of linear factors) and compared with
the ones compiled into the library, then checked to compute correlation
exactly.
"""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import _cpu, _plan, _winograd
from reference import conv2d_ref, tolerance_scale

# The finite interpolation points per alpha = m + r - 1 (infinity is the last).
POINTS = {
    4: [0, 1, -1],
    6: [0, 1, -1, 2, -2],
    8: [0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2)],
}
TILES = [2, 4, 6]
#: Every (m, r) of F(m x m, r x r) the library has.
SIZES = [(2, 3), (4, 3), (6, 3), (2, 5), (4, 5), (2, 7)]
LARGE = [(m, r) for m, r in SIZES if r > 3]


def _poly_times_linear(poly, root):
    """Coefficients (lowest degree first) of poly(x) * (x - root)."""
    out = [Fraction(0)] * (len(poly) + 1)
    for i, c in enumerate(poly):
        out[i] -= c * root
        out[i + 1] += c
    return out


def toom_cook(m, r):
    """Exact (B^T, G, A^T) of F(m, r) over POINTS[m + r - 1] and infinity."""
    alpha = m + r - 1
    points = [Fraction(p) for p in POINTS[alpha]]
    at = [[p ** i for p in points] + [Fraction(int(i == m - 1))] for i in range(m)]
    g = []
    for j, p in enumerate(points):
        denominator = Fraction(1)
        for l, q in enumerate(points):
            if l != j:
                denominator *= p - q
        g.append([p ** k / denominator for k in range(r)])
    g.append([Fraction(0)] * (r - 1) + [Fraction(1)])
    bt = []
    for j in range(alpha - 1):
        poly = [Fraction(1)]
        for l, q in enumerate(points):
            if l != j:
                poly = _poly_times_linear(poly, q)
        bt.append(poly + [Fraction(0)] * (alpha - len(poly)))
    poly = [Fraction(1)]
    for q in points:
        poly = _poly_times_linear(poly, q)
    bt.append(poly)
    return bt, g, at


def _matmul(a, b):
    return [[sum(a[i][k] * b[k][j] for k in range(len(b))) for j in range(len(b[0]))]
            for i in range(len(a))]


def _transpose(a):
    return [list(row) for row in zip(*a)]


@pytest.mark.parametrize("m, r", SIZES)
def test_compiled_matrices_match_exact_derivation(m, r):
    bt, g, at = toom_cook(m, r)
    got_bt, got_g, got_at = _winograd.transform_matrices(m, r)
    np.testing.assert_array_equal(got_bt, np.array(bt, dtype=float))
    np.testing.assert_array_equal(got_at, np.array(at, dtype=float))
    # G has entries like 1/6: compiled as the nearest double.
    np.testing.assert_allclose(got_g, np.array(g, dtype=float), rtol=1e-15, atol=0)


@pytest.mark.parametrize("m, r", SIZES)
def test_transforms_compute_correlation_exactly(m, r):
    """Y = A^T [(G g G^T) * (B^T d B)] A is the valid 2-D correlation, in
    exact rational arithmetic, for random integer tiles and filters."""
    bt, g, at = toom_cook(m, r)
    rng = np.random.default_rng(m * 10 + r)
    alpha = m + r - 1
    d = [[Fraction(int(v)) for v in row] for row in rng.integers(-9, 10, (alpha, alpha))]
    f = [[Fraction(int(v)) for v in row] for row in rng.integers(-9, 10, (r, r))]
    u = _matmul(_matmul(g, f), _transpose(g))
    v = _matmul(_matmul(bt, d), _transpose(bt))
    product = [[u[i][j] * v[i][j] for j in range(alpha)] for i in range(alpha)]
    y = _matmul(_matmul(at, product), _transpose(at))
    for i in range(m):
        for j in range(m):
            expected = sum(d[i + a][j + b] * f[a][b] for a in range(r) for b in range(r))
            assert y[i][j] == expected


def tile_scale(scale, m):
    """The largest ``conv(|x|, |w|)`` of each output's m x m Winograd tile.

    Winograd computes a tile's m*m outputs together, so its rounding errors
    are relative to the tile's magnitude: an output that is exactly zero
    (say, a window of padding only) next to large ones is off by about
    eps * (its neighbours' magnitude), not by zero.
    """
    *lead, h, w = scale.shape
    th, tw = -(-h // m), -(-w // m)
    padded = np.zeros((*lead, th * m, tw * m))
    padded[..., :h, :w] = scale
    tiles = padded.reshape(*lead, th, m, tw, m).max(axis=(-3, -1))
    return np.repeat(np.repeat(tiles, m, axis=-2), m, axis=-1)[..., :h, :w]


def _relative_error(got, x, w, b=None, padding=1, groups=1, m=1):
    want = conv2d_ref(x, w, b, 1, padding, 1, groups)
    scale = tile_scale(tolerance_scale(x, w, b, 1, padding, 1, groups), m)
    return np.abs(got.astype(np.float64) - want) / np.maximum(scale, 1e-300)


SHAPES = [
    # (N, C, K, H, W, padding, groups): partial edge tiles, tiny images,
    # several channel chunks and output-channel blocks, groups.
    (1, 1, 1, 3, 3, 0, 1),
    (2, 3, 5, 7, 9, 1, 1),
    (1, 16, 24, 13, 11, 1, 1),
    (3, 8, 12, 10, 10, 2, 4),
    (1, 200, 40, 9, 7, 1, 1),
    (1, 32, 150, 15, 15, 0, 1),
    (2, 24, 24, 37, 5, (0, 2), 2),
    (1, 4, 4, 70, 66, 1, 1),
]


def _grown(padding, r):
    """A 3x3 shape's padding grown by (r - 3) / 2: the same output size with
    an r x r kernel."""
    if isinstance(padding, tuple):
        return tuple(p + (r - 3) // 2 for p in padding)
    return padding + (r - 3) // 2


@pytest.mark.parametrize("m, r", SIZES)
@pytest.mark.parametrize("dtype, limit", [(np.float32, 1e-4), (np.float64, 1e-11)])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_accuracy_against_float64(m, r, dtype, limit, shape):
    n, c, k, h, w, padding, groups = shape
    padding = _grown(padding, r)
    rng = np.random.default_rng([abs(hash(shape)) % 2**32, r])
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((k, c // groups, r, r)).astype(dtype)
    bias = rng.standard_normal(k).astype(dtype)
    got = fastconv.conv2d(x, weight, bias, padding=padding, groups=groups,
                          algorithm=f"winograd{m}")
    assert got.dtype == dtype
    assert _relative_error(got, x, weight, bias, padding, groups, m).max() <= limit


@pytest.mark.parametrize("m, r", SIZES)
def test_error_bound_on_relu_like_data(m, r):
    """The error measured as in tools/tuning/winograd_accuracy.py and quoted
    in docs/performance.md: |N(0, 1)| inputs, He-normal weights, over
    conv(|x|, |w|) element-wise (not per tile), float32 within 1e-4 on a
    layer of 64 channels."""
    rng = np.random.default_rng(m * 10 + r)
    x = np.abs(rng.standard_normal((1, 64, 30, 30)))
    w = rng.standard_normal((32, 64, r, r)) * np.sqrt(2.0 / (r * r * 64))
    got = fastconv.conv2d(x.astype(np.float32), w.astype(np.float32), padding=r // 2,
                          algorithm=f"winograd{m}")
    exact = conv2d_ref(x, w, None, 1, r // 2)
    scale = conv2d_ref(x, np.abs(w), None, 1, r // 2)
    assert (np.abs(got - exact) / scale).max() <= 1e-4


@pytest.mark.parametrize("m, r", LARGE)
@pytest.mark.parametrize("options", [
    dict(layout="NHWC"), dict(activation="relu"), dict(padding="same", groups=2),
    dict(padding=1, padding_mode="reflect"), dict(out=True), dict(batch=3, padding="valid"),
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_large_kernel_options(m, r, options, rng):
    """5x5 and 7x7 Winograd with the options the 3x3 tiles take: channels
    last, fused ReLU, groups, padding modes, out=, batches."""
    options = dict(options)
    n = options.pop("batch", 2)
    groups = options.get("groups", 1)
    x = rng.standard_normal((n, 6, 17, 20)).astype(np.float32)
    w = rng.standard_normal((8, 6 // groups, r, r)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    options.setdefault("padding", r // 2)
    if options.pop("out", False):
        out = np.full(conv2d_ref(x, w, b, 1, options["padding"], 1, groups).shape, np.nan,
                      np.float32)
        options["out"] = out
    given_x = x.transpose(0, 2, 3, 1) if options.get("layout") == "NHWC" else x
    got = fastconv.conv2d(given_x, w, b, algorithm=f"winograd{m}", **options)
    if "out" in options:
        assert got is options["out"]
    if options.get("layout") == "NHWC":
        got = got.transpose(0, 3, 1, 2)
    padding = options["padding"]
    if options.get("padding_mode") == "reflect":
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)),
                   mode="reflect")
        padding = 0
    want = conv2d_ref(x, w, b, 1, padding, 1, groups)
    if options.get("activation") == "relu":
        assert (got >= 0).all()
        got = np.where(want > 0, got, want)  # clipping only moves towards the reference
    assert got.shape == want.shape
    scale = tile_scale(tolerance_scale(x, w, b, 1, padding, 1, groups), m)
    assert (np.abs(got - want) / scale).max() <= 1e-4


@pytest.mark.parametrize("m, r", LARGE)
def test_large_kernels_match_torch(m, r):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(r)
    x = rng.standard_normal((2, 16, 23, 29)).astype(np.float32)
    w = rng.standard_normal((12, 8, r, r)).astype(np.float32)
    b = rng.standard_normal(12).astype(np.float32)
    got = fastconv.conv2d(x, w, b, padding=(r // 2, r // 2 + 1), groups=2,
                          algorithm=f"winograd{m}")
    with torch.no_grad():
        want = torch.nn.functional.conv2d(torch.from_numpy(x).double(),
                                          torch.from_numpy(w).double(),
                                          torch.from_numpy(b).double(),
                                          padding=(r // 2, r // 2 + 1), groups=2).numpy()
    scale = tile_scale(tolerance_scale(x, w, b, 1, (r // 2, r // 2 + 1), 1, 2), m)
    assert got.shape == want.shape
    assert (np.abs(got - want) / scale).max() <= 1e-4


@pytest.mark.parametrize("m, r", [(2, 3), (4, 3), (2, 5), (4, 5), (2, 7)])
@pytest.mark.parametrize("pad", [0, 1, 3, (2, 0), (0, 2)], ids=str)
def test_rows_of_tiles_around_vector_widths(m, r, pad):
    """Runs of tiles in a row are copied 16 tiles (16 * m input columns) at a
    time with masks at the image border and at the end of the run: widths
    just below, at and above one and two such chunks, with padding on either
    side, several images per tile panel and a clipped last tile column."""
    rng = np.random.default_rng(m * 10 + r + (pad if isinstance(pad, int) else 5 + pad[1]))
    for w in (16 * m - 3, 16 * m + r - 1 - 2 * (pad if isinstance(pad, int) else pad[1]),
              16 * m + 1, 32 * m + 5):
        x = rng.standard_normal((2, 3, r + 3, w)).astype(np.float32)
        weight = rng.standard_normal((5, 3, r, r)).astype(np.float32)
        got = fastconv.conv2d(x, weight, padding=pad, algorithm=f"winograd{m}")
        assert got.shape == conv2d_ref(x, weight, None, 1, pad).shape
        assert _relative_error(got, x, weight, None, pad, 1, m).max() <= 1e-4, w


@pytest.fixture
def panel_width(monkeypatch):
    """Set which tile panels Winograd uses: ``panel_width(1.0)`` takes the
    narrow (NR / 2) panels whenever they need fewer lanes, ``0.0`` never."""
    def set_narrow(narrow):
        monkeypatch.setattr(_plan.winograd, "NARROW_LANES", narrow)
        _plan.clear_cache()

    yield set_narrow
    monkeypatch.undo()
    _plan.clear_cache()


@pytest.mark.parametrize("narrow", [0.0, 1.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_narrow_and_full_tile_panels(panel_width, narrow, dtype):
    """Both GEMM panel widths give the same, correct result: batches of few
    tiles (where narrow panels save lanes), of several panels, with groups."""
    panel_width(narrow)
    rng = np.random.default_rng(11)
    for m, r in SIZES:
        for n, c, k, h, groups in [(1, 24, 30, 7, 1), (1, 16, 16, 14, 2), (3, 12, 40, 9, 1),
                                   (2, 8, 8, 29, 1)]:
            x = rng.standard_normal((n, c, h, h)).astype(dtype)
            w = rng.standard_normal((k, c // groups, r, r)).astype(dtype)
            b = rng.standard_normal(k).astype(dtype)
            got = fastconv.conv2d(x, w, b, padding=r // 2, groups=groups,
                                  algorithm=f"winograd{m}", num_threads=2)
            limit = 1e-4 if dtype == np.float32 else 1e-11
            assert _relative_error(got, x, w, b, r // 2, groups, m).max() <= limit, (m, n, h)


def test_narrow_panels_are_chosen_for_few_tiles(panel_width):
    """A 7x7 image has 16 F(2x2) tiles: narrow panels halve the per-thread
    scratch (proportional to the panel width) when allowed."""
    def scratch():
        return fastconv.plan((1, 64, 7, 7), (64, 64, 3, 3), padding=1, num_threads=1,
                             algorithm="winograd2", prepared=True).workspace_bytes
    panel_width(0.0)
    full = scratch()
    panel_width(1.0)
    assert scratch() < full


@settings(max_examples=60)
@given(
    size=st.sampled_from(SIZES),
    n=st.integers(0, 2), c=st.integers(1, 9), k=st.integers(1, 9),
    h=st.integers(1, 19), w=st.integers(1, 19),
    pad=st.one_of(st.integers(0, 3), st.tuples(st.integers(0, 3), st.integers(0, 3)),
                  st.just("same"), st.just("valid")),
    unbatched=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
)
def test_winograd_property(size, n, c, k, h, w, pad, unbatched, dtype):
    m, r = size
    same = r // 2 if pad == "same" else 0
    padded = (h + 2 * (pad if isinstance(pad, int) else same)
              if not isinstance(pad, tuple) else h + 2 * pad[0])
    padded_w = (w + 2 * (pad if isinstance(pad, int) else same)
                if not isinstance(pad, tuple) else w + 2 * pad[1])
    if padded < r or padded_w < r:
        return
    rng = np.random.default_rng(n * 1000 + c * 100 + k * 10 + h + w)
    x = rng.standard_normal((c, h, w) if unbatched else (n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((k, c, r, r)).astype(dtype)
    got = fastconv.conv2d(x, weight, padding=pad, algorithm=f"winograd{m}")
    want = conv2d_ref(x, weight, None, 1, pad)
    assert got.shape == want.shape
    if got.size:
        limit = 1e-4 if dtype == np.float32 else 1e-11
        assert _relative_error(got, x, weight, None, pad, 1, m).max() <= limit


@pytest.mark.parametrize("m, r", SIZES)
def test_nan_and_inf_are_never_dropped(m, r):
    """A NaN/Inf input spreads to the outputs of its Winograd tile(s): the
    result is never all-finite, and the outputs that read it are NaN/Inf,
    wherever it lies in the tile and the filter window."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 4, 17, 17)).astype(np.float32)
    w = rng.standard_normal((3, 4, r, r)).astype(np.float32)
    half = r // 2
    for bad in (np.nan, np.inf, -np.inf):
        for row, col in [(8, 9), (0, 0), (16, 5), (7, 16)]:
            xb = x.copy()
            xb[0, 2, row, col] = bad
            got = fastconv.conv2d(xb, w, padding=half, algorithm=f"winograd{m}")
            assert not np.isfinite(got).all()
            # Every output whose r x r window contains the bad pixel is non-finite.
            window = got[:, :, max(row - half, 0):row + half + 1,
                         max(col - half, 0):col + half + 1]
            assert not np.isfinite(window).any(), (bad, row, col)


def test_auto_and_winograd_reject_what_they_cannot_do():
    x = np.ones((1, 2, 8, 8), np.float32)
    for kwargs, weight_shape, algorithm in [
            ({"stride": 2}, (2, 2, 3, 3), "winograd4"),
            ({"dilation": 2}, (2, 2, 3, 3), "winograd4"),
            ({"stride": 2}, (2, 2, 5, 5), "winograd"),
            ({}, (2, 2, 4, 4), "winograd"),
            ({}, (2, 2, 3, 5), "winograd2"),
            ({}, (2, 2, 1, 7), "winograd2"),
            ({}, (2, 2, 5, 5), "winograd6"),
            ({}, (2, 2, 7, 7), "winograd4")]:
        with pytest.raises(ValueError, match="algorithm"):
            fastconv.conv2d(x, np.ones(weight_shape, np.float32), algorithm=algorithm,
                            **kwargs)
        with pytest.raises(ValueError, match="algorithm"):
            fastconv.Conv2d(np.ones(weight_shape, np.float32), algorithm=algorithm, **kwargs)
        # "auto" quietly uses another algorithm for them.
        fastconv.conv2d(x, np.ones(weight_shape, np.float32), algorithm="auto", **kwargs)
    with pytest.raises(ValueError, match="algorithm"):
        fastconv.conv2d(np.ones((1, 2, 8, 8), int), np.ones((2, 2, 3, 3), int),
                        algorithm="winograd")
    with pytest.raises(ValueError, match="algorithm"):
        fastconv.conv2d(x, np.ones((2, 2, 3, 3)), algorithm="winograd5")


def test_private_entry_points_check_the_sizes():
    """The compiled module takes only the (m, r) it has kernels for."""
    for m, r in [(6, 5), (4, 7), (2, 9), (3, 3)]:
        with pytest.raises(ValueError, match="tile size and filter size"):
            _winograd.transform_matrices(m, r)
        with pytest.raises(ValueError, match="tile size and filter size"):
            _winograd.pack_weights(np.zeros((2, 2, r, r), np.float32), 1, m, 1)
    with pytest.raises(ValueError, match="square"):
        _winograd.pack_weights(np.zeros((2, 2, 5, 3), np.float32), 1, 2, 1)


@pytest.mark.parametrize("r", [3, 5, 7])
def test_winograd_picks_a_tile_the_kernel_has(r):
    """``algorithm="winograd"`` takes "auto"'s tile where "auto" runs
    Winograd, else F(4x4) for 3x3 and 5x5 kernels and F(2x2) for 7x7."""
    for n, c, k, h in [(1, 4, 4, 40), (1, 64, 64, 56), (1, 256, 256, 7), (8, 32, 32, 28)]:
        shapes = ((n, c, h, h), (k, c, r, r))
        forced = fastconv.plan(*shapes, padding=r // 2, algorithm="winograd")
        auto = fastconv.plan(*shapes, padding=r // 2)
        want = auto.tile if auto.algorithm == "winograd" else {3: 4, 5: 4, 7: 2}[r]
        assert (forced.algorithm, forced.tile) == ("winograd", want)


def test_integer_auto_stays_exact():
    x = np.arange(2 * 3 * 20 * 20).reshape(2, 3, 20, 20) % 7
    w = np.arange(4 * 3 * 9).reshape(4, 3, 3, 3) % 5 - 2
    got = fastconv.conv2d(x, w, padding=1)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, conv2d_ref(x, w, None, 1, 1, dtype=np.int64))


@pytest.mark.parametrize("algorithm, r", [("auto", 3), ("direct", 3), ("winograd2", 3),
                                          ("winograd4", 3), ("winograd6", 3),
                                          ("winograd2", 5), ("winograd4", 5),
                                          ("winograd2", 7)])
def test_thread_count_does_not_change_results(algorithm, r):
    """Also where the work items split unevenly between the threads (196
    F(4x4) tiles in 7 panels), which Winograd shares out cooperatively."""
    rng = np.random.default_rng(3)
    for n, c, k, h in [(2, 48, 40, 30), (1, 24, 40, 56)]:
        x = rng.standard_normal((n, c, h, h)).astype(np.float32)
        w = rng.standard_normal((k, c, r, r)).astype(np.float32)
        one = fastconv.conv2d(x, w, padding=r // 2, algorithm=algorithm, num_threads=1)
        for threads in (2, 3):
            many = fastconv.conv2d(x, w, padding=r // 2, algorithm=algorithm,
                                   num_threads=threads)
            np.testing.assert_array_equal(one, many)


@pytest.mark.parametrize("shape, want", [
    ((1, 256, 256, 7), "winograd2"),   # 16 F(2x2) tiles fill one narrow panel
    ((1, 512, 512, 7), "direct"),      # pixels * 2048 < pairs
    ((1, 256, 256, 14), "winograd4"),  # 16 F(4x4) tiles against 49 F(2x2)
    ((8, 256, 256, 7), "winograd4"),   # 32 F(4x4) tiles against 128 F(2x2)
    ((1, 64, 64, 56), "winograd4"),
    ((1, 3, 64, 224), "direct"),       # C/groups < 8
    ((8, 16, 16, 56), "direct"),       # C/groups <= 16 on a large image
])
def test_auto_rule_of_a_prepared_layer(shape, want):
    """The documented choices of algorithm="auto" for a Conv2d layer."""
    n, c, k, h = shape
    layer = fastconv.Conv2d(np.zeros((k, c, 3, 3), np.float32), padding=1)
    plan = layer.plan((n, c, h, h))
    assert (f"winograd{plan.tile}" if plan.tile else plan.algorithm) == want


@pytest.mark.parametrize("shape, r, prepared, want, below", [
    # (want with AVX-512, want below it)
    ((1, 64, 64, 56), 5, False, "winograd4", "winograd4"),  # pays the weight transform
    ((1, 128, 128, 28), 5, False, "winograd4", "winograd4"),
    ((1, 256, 256, 14), 5, False, "not winograd", "not winograd"),  # 196 pixels: it does not
    ((8, 64, 64, 28), 5, False, "winograd4", "winograd4"),
    ((1, 128, 128, 28), 5, True, "winograd4", "winograd4"),
    ((1, 512, 512, 7), 5, True, "winograd2", "winograd2"),  # 16 F(2x2) tiles against 4 F(4x4)
    ((1, 4, 4, 56), 5, True, "not winograd", "not winograd"),  # C/groups < 8
    ((1, 128, 128, 28), 7, True, "winograd2", "winograd2"),
    ((1, 64, 64, 56), 7, True, "winograd2", "winograd2"),
    ((1, 32, 32, 112), 7, True, "winograd2", "not winograd"),
    ((1, 64, 64, 56), 7, False, "winograd2", "not winograd"),
    ((1, 128, 128, 28), 7, False, "not winograd", "not winograd"),  # 784 pixels
    ((1, 256, 256, 14), 7, False, "not winograd", "not winograd"),
])
def test_auto_rule_of_large_kernels(shape, r, prepared, want, below):
    """The documented choices of algorithm="auto" for 5x5 and 7x7 layers at
    the ISA level in use, the same at 1 and 2 threads."""
    if _cpu.active_isa() != "avx512":
        want = below
    n, c, k, h = shape
    for threads in (1, 2):
        plan = fastconv.plan((n, c, h, h), (k, c, r, r), padding=r // 2, prepared=prepared,
                             num_threads=threads)
        chosen = f"winograd{plan.tile}" if plan.tile else plan.algorithm
        if want == "not winograd":
            assert plan.algorithm != "winograd"
        else:
            assert chosen == want


def test_workspace_of_empty_and_invalid_shapes():
    """Nothing to compute needs no scratch (these used to divide by zero in
    the planner and kill the process); nonsense sizes are a ValueError."""
    for prepared in (False, True):
        plan = fastconv.plan((0, 64, 56, 56), (64, 64, 3, 3), padding=1,
                             algorithm="winograd4", num_threads=2, prepared=prepared)
        assert plan.workspace_bytes == 0 and plan.threads == 0
    with pytest.raises(ValueError, match="algorithm"):
        fastconv.plan((1, 64, 56, 56), (64, 64, 3, 3), algorithm="winograd3")
    with pytest.raises(ValueError, match="weight_shape"):
        fastconv.plan((1, 64, 56, 56), (64, 64, 3))
    x = np.zeros((1, 4, 5, 5), np.float32)
    packed = _winograd.pack_weights(np.zeros((3, 4, 3, 3), np.float32), 1, 4, 1)
    # Nothing to compute: an empty plan's threads (0) and blocking ({}) do.
    _winograd.conv2d_winograd(x, packed, np.zeros(3, np.float32),
                              np.empty((1, 3, 0, 3), np.float32), 4, 3, 1, 1, 1, 0, {})


@pytest.mark.parametrize("path_threads", [1, 2], ids=["tiles", "cooperative"])
def test_driver_executes_the_plan_and_rejects_a_blocking_that_does_not_fit(path_threads):
    """The driver runs the plan's blocking as given; a blocking that does not
    fit the geometry (it sizes the buffers) is a ValueError, not a write out
    of bounds."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 64, 12, 12)).astype(np.float32)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    bias = np.zeros(64, np.float32)
    plan = fastconv.plan(x.shape, w.shape, padding=1, algorithm="winograd4",
                         num_threads=path_threads, prepared=True)
    assert plan.path == ("winograd_tiles" if path_threads == 1 else "winograd_cooperative")
    packed = _winograd.pack_weights(w, 1, 4, 1)
    want = fastconv.conv2d(x, w, padding=1, algorithm="winograd4", num_threads=path_threads)

    def run(threads=plan.threads, **changes):
        out = np.full((1, 64, 12, 12), np.nan, np.float32)
        _winograd.conv2d_winograd(x, packed, bias, out, 4, 3, 1, 1, 1, threads,
                                  {**plan.blocking, **changes})
        return out

    np.testing.assert_array_equal(run(), want)
    blocking = plan.blocking
    for changes in [{"nr": blocking["nr"] + 1}, {"nr": 0}, {"n_tile_blocks": 0},
                    {"panels": blocking["panels"] - 1}, {"panels": 0},
                    {"n_tile_blocks": blocking["n_tile_blocks"] + 100},
                    {"cb": 0}, {"cb": 65}, {"kpanels_per_block": 0},
                    {"n_channel_blocks": blocking["n_channel_blocks"] + 1},
                    {"kpanels_per_block": 10**6}]:
        with pytest.raises(ValueError, match="blocking"):
            run(**changes)
    if plan.blocking["cooperative"]:
        with pytest.raises(ValueError, match="input channels"):
            run(cb=32)
    with pytest.raises(ValueError, match="num_threads"):
        run(threads=0)
    # Missing or mistyped entries are not guessed.
    with pytest.raises((TypeError, ValueError)):
        run(nr=None)
    with pytest.raises((TypeError, ValueError)):
        _winograd.conv2d_winograd(x, packed, bias, np.empty_like(want), 4, 3, 1, 1, 1, 1,
                                  {"nr": blocking["nr"]})


@pytest.mark.parametrize("shape, threads", [((1, 64, 56, 56), 1), ((1, 64, 56, 56), 2),
                                            ((1, 256, 14, 14), 2), ((8, 32, 28, 28), 2),
                                            ((2, 24, 9, 9), 2)], ids=str)
@pytest.mark.parametrize("m, r", SIZES)
def test_driver_scratch_is_exactly_the_plans(shape, threads, m, r):
    """The scratch the driver asks for is the plan's workspace to the byte:
    per thread 64 bytes of thread state and the 64-byte aligned parts; in
    the cooperative mode the calling thread also holds the shared V."""
    n, c, h, w = shape
    x = np.ones(shape, np.float32)
    weight = np.ones((c, c, r, r), np.float32)
    plan = fastconv.plan(shape, weight.shape, padding=r // 2, algorithm=f"winograd{m}",
                         num_threads=threads, prepared=True)
    packed = _winograd.pack_weights(weight, 1, m, 1)
    _winograd.scratch_peak_bytes(True)
    _winograd.conv2d_winograd(x, packed, np.zeros(c, np.float32), np.empty_like(x), m, r,
                              r // 2, r // 2, 1, plan.threads, plan.blocking)
    busiest = _winograd.scratch_peak_bytes(True)
    blocking = plan.blocking
    shared = 0
    if blocking["cooperative"]:
        shared = (m + r - 1) ** 2 * blocking["cb"] * blocking["panels"] * blocking["nr"] * 4
    assert plan.workspace_bytes == shared + plan.threads * (busiest - shared)


@pytest.mark.parametrize("m", TILES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, c, groups", [(5, 7, 1), (30, 17, 1), (26, 33, 2), (12, 16, 3),
                                          (1, 1, 1)])
def test_packed_weights_are_the_exact_transform_rounded_once(m, dtype, k, c, groups):
    """U = G g G^T from the exact matrices, in float64, rounded once to the
    dtype, laid out [group][xi][K_pad / MR][C/groups][MR] with zero rows
    past K/groups: partial panels, channel blocks that do not fill a
    vector, and groups."""
    bt, g, at = toom_cook(m, 3)
    g64 = np.array([[float(v) for v in row] for row in g])
    alpha = m + 2
    rng = np.random.default_rng(k * 100 + c)
    weight = rng.standard_normal((k * groups, c, 3, 3)).astype(dtype)
    packed = _winograd.pack_weights(weight, groups, m, 1)
    mr = _winograd.gemm_tile_shape(np.dtype(dtype).name)[0]
    k_pad = -(-k // mr) * mr
    w64 = weight.astype(np.float64)
    u = np.einsum("ia,kcab,jb->kcij", g64, w64, g64)
    # What float64 sums of these terms may round off, as in the kernel.
    slack = 8 * np.finfo(np.float64).eps * np.einsum("ia,kcab,jb->kcij", abs(g64), abs(w64),
                                                     abs(g64))

    def layout(per_filter):
        out = np.zeros((groups, alpha * alpha, k_pad // mr, c, mr))
        for group in range(groups):
            for row in range(k):
                out[group, :, row // mr, :, row % mr] = (
                    per_filter[group * k + row].reshape(c, alpha * alpha).T)
        return out.reshape(groups, alpha * alpha, k_pad * c)

    expected, slack = layout(u), layout(slack)
    # float32: the float64 result rounded once (half an ulp, and the slack).
    tolerance = slack + (np.finfo(dtype).eps / 2 * abs(expected) if dtype == np.float32 else 0)
    assert np.all(abs(packed - expected) <= tolerance)
