"""Cross-check against ``torch.nn.functional.conv2d`` itself.

Skipped when torch is not installed.  Torch is the semantic authority the
library imitates, so these tests also validate the NumPy reference used by
the rest of the suite.
"""

import numpy as np
import pytest
from hypothesis import given, settings

from cases import big_cases, conv_cases, random_case
from reference import conv2d_ref, rtol_for, tolerance_scale

torch = pytest.importorskip("torch")
F = torch.nn.functional

import fastconv  # noqa: E402  (after the skip, so a missing torch skips)

# torch warns that it copies the input for asymmetric 'same' padding.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")

TORCH_CASES = ([random_case(seed) for seed in range(1000, 1040)]
               + big_cases()[:3])


def torch_conv(x, w, b, stride, padding, dilation, groups):
    """Run torch on NumPy arrays and give a NumPy result."""
    t = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a))
    with torch.no_grad():
        out = F.conv2d(t(x), t(w), t(b), stride=stride, padding=padding,
                       dilation=dilation, groups=groups)
    return out.numpy()


def _assert_near_torch(got, want_torch, x, w, b, kw):
    """Both sides carry rounding error of the result dtype: allow twice."""
    assert got.dtype == want_torch.dtype
    assert got.shape == want_torch.shape
    n_terms = w.shape[1] * w.shape[2] * w.shape[3] + (b is not None)
    limit = 2 * rtol_for(got.dtype, n_terms) * tolerance_scale(x, w, b, **kw)
    err = np.abs(got.astype(np.float64) - want_torch)
    assert (err <= limit + 1e-30).all(), float(np.max(err / (limit + 1e-30)))


@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: f"seed{c.seed}-{c.id}")
def test_matches_torch(case):
    x, w, b = case.arrays()
    kw = case.kwargs()
    want = torch_conv(x, w, b, **kw)
    got = fastconv.conv2d(x, w, b, **kw)
    _assert_near_torch(got, want, x, w, b, kw)


@pytest.mark.parametrize("case", TORCH_CASES[:20], ids=lambda c: f"seed{c.seed}-{c.id}")
def test_reference_matches_torch(case):
    """The NumPy oracle itself follows torch (float64, tight)."""
    x, w, b = case.arrays()
    x, w = x.astype(np.float64), w.astype(np.float64)
    b = None if b is None else b.astype(np.float64)
    kw = case.kwargs()
    np.testing.assert_allclose(conv2d_ref(x, w, b, **kw),
                               torch_conv(x, w, b, **kw), rtol=1e-10, atol=1e-10)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(conv_cases())
def test_property_matches_torch(args):
    x, w, b, stride, padding, dilation, groups = args
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    if x.ndim == 4 and x.shape[0] == 0:
        got = fastconv.conv2d(x, w, b, **kw)
        assert got.shape == torch_conv(x, w, b, **kw).shape
        return
    _assert_near_torch(fastconv.conv2d(x, w, b, **kw),
                       torch_conv(x, w, b, **kw), x, w, b, kw)


@pytest.mark.parametrize("padding,kernel,dilation", [
    ("same", (2, 2), 1),
    ("same", (4, 3), 1),
    ("same", (2, 4), (3, 2)),
    ("same", (1, 6), 1),
    ("valid", (4, 2), 2),
], ids=["same-2x2", "same-4x3", "same-2x4-dilated", "same-1x6", "valid-dilated"])
def test_padding_strings_match_torch(padding, kernel, dilation):
    """Even kernels under 'same' pad asymmetrically exactly like torch."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 9, 10))
    w = rng.standard_normal((4, 3, *kernel))
    kw = dict(stride=1, padding=padding, dilation=dilation, groups=1)
    _assert_near_torch(fastconv.conv2d(x, w, **kw), torch_conv(x, w, None, **kw),
                       x, w, None, kw)


def test_worked_example_int64_matches_torch():
    x = np.array([[1, 2, 0, 3, 1], [0, 1, 2, 3, 1], [1, 2, 1, 0, 0],
                  [5, 2, 3, 1, 1], [2, 1, 0, 1, 1]]).reshape(1, 1, 5, 5)
    w = np.array([[1, 2, 1], [0, 1, 0], [2, 1, 0]]).reshape(1, 1, 3, 3)
    for kw in (dict(), dict(stride=2), dict(padding=1)):
        want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), **kw).numpy()
        got = fastconv.conv2d(x, w, **kw)
        assert got.dtype == np.int64 and want.dtype == np.int64
        np.testing.assert_array_equal(got, want)


def test_random_int64_matches_torch():
    """Integer convolution is exact on both sides."""
    rng = np.random.default_rng(3)
    x = rng.integers(-50, 50, (2, 6, 11, 9))
    w = rng.integers(-50, 50, (4, 3, 3, 2))
    b = rng.integers(-50, 50, 4)
    kw = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    got = fastconv.conv2d(x, w, b, **kw)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, torch_conv(x, w, b, **kw))


def test_unbatched_matches_torch():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 8, 7)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    kw = dict(stride=1, padding="same", dilation=1, groups=2)
    want = torch_conv(x, w, None, **kw)
    assert want.shape == (6, 8, 7)
    _assert_near_torch(fastconv.conv2d(x, w, **kw), want, x, w, None, kw)
