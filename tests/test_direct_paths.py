"""The direct kernel's three code paths, each against the float64 reference.

* packed (im2col) panels: 1x1 kernels, and images of at most 4 micro-kernel
  panels (for one small image with many output channels the threads pack
  the columns together),
* row panels read in place: larger kernels on larger images, in whole
  panels or dense (panels crossing row ends), with the stride-1 and the
  strided (one copy per kernel row) scratch layouts; every stride,
  dilation and padding goes through the phase-split row scratch,
* the plane kernel: groups of at most four input channels (depthwise).

Shapes are chosen around the switch-over points (output widths 12-70) so
that every instruction-set level (panel widths 8-32) meets both sides.
"""

import numpy as np
import pytest

import fastconv
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
]

PACKED_CASES = [
    # one small image with many output channels: the threads share the packing
    (1, 40, 200, 12, 12, (3, 3), 2, 1, 1, 1),
    (1, 300, 130, 7, 7, (1, 1), 1, 0, 1, 1),
    (1, 64, 70, 9, 9, (1, 1), 1, 0, 1, 1),
    (2, 40, 30, 14, 11, (3, 3), 1, 1, 1, 1),
    (1, 24, 36, 7, 7, (3, 3), 2, 1, 1, 1),
    (3, 10, 12, 15, 13, (2, 5), (2, 1), (1, 2), (1, 2), 2),
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


@pytest.mark.parametrize("case", ROW_PANEL_CASES[:3] + PLANE_CASES[:2], ids=str)
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
