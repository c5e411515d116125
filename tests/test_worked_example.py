"""The hand-computed 5x5 * 3x3 example: exact int64 results.

Python int lists become int64 arrays, and integer convolution is exact, so
these results must match bit for bit, with dtype int64.
"""

import numpy as np
import pytest

import fastconv

IMAGE = [[1, 2, 0, 3, 1],
         [0, 1, 2, 3, 1],
         [1, 2, 1, 0, 0],
         [5, 2, 3, 1, 1],
         [2, 1, 0, 1, 1]]
KERNEL = [[1, 2, 1],
          [0, 1, 0],
          [2, 1, 0]]

EXPECTED = {
    "stride1": (dict(), [[10, 12, 12],
                         [18, 16, 16],
                         [13, 9, 3]]),
    "stride2": (dict(stride=2), [[10, 12],
                                 [13, 3]]),
    "padding1": (dict(padding=1), [[1, 3, 4, 10, 8],
                                   [5, 10, 12, 12, 6],
                                   [7, 18, 16, 16, 8],
                                   [11, 13, 9, 3, 4],
                                   [14, 13, 9, 7, 4]]),
    "same": (dict(padding="same"), [[1, 3, 4, 10, 8],
                                    [5, 10, 12, 12, 6],
                                    [7, 18, 16, 16, 8],
                                    [11, 13, 9, 3, 4],
                                    [14, 13, 9, 7, 4]]),
}


def _inputs():
    x = np.array(IMAGE).reshape(1, 1, 5, 5)
    w = np.array(KERNEL).reshape(1, 1, 3, 3)
    assert x.dtype == np.int64 and w.dtype == np.int64
    return x, w


@pytest.mark.parametrize("name", list(EXPECTED))
def test_worked_example_int64(name):
    kwargs, expected = EXPECTED[name]
    x, w = _inputs()
    got = fastconv.conv2d(x, w, **kwargs)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, np.array(expected).reshape(1, 1, *np.shape(expected)))


@pytest.mark.parametrize("name", list(EXPECTED))
def test_worked_example_nested_lists(name):
    """Plain nested Python lists are accepted and give int64."""
    kwargs, expected = EXPECTED[name]
    got = fastconv.conv2d([[IMAGE]], [[KERNEL]], **kwargs)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [[expected]])


@pytest.mark.parametrize("name", list(EXPECTED))
def test_worked_example_unbatched(name):
    """A (C, H, W) input gives a (K, Ho, Wo) output with no batch axis."""
    kwargs, expected = EXPECTED[name]
    got = fastconv.conv2d([IMAGE], [[KERNEL]], **kwargs)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [expected])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(EXPECTED))
def test_worked_example_float(name, dtype):
    """The same numbers in floating point (direct sums of small integers
    are exact; other algorithms may round slightly)."""
    kwargs, expected = EXPECTED[name]
    x, w = _inputs()
    got = fastconv.conv2d(x.astype(dtype), w.astype(dtype), **kwargs)
    assert got.dtype == dtype
    np.testing.assert_allclose(got[0, 0], expected, rtol=1e-6, atol=1e-5)
    direct = fastconv.conv2d(x.astype(dtype), w.astype(dtype), **kwargs,
                             algorithm="direct")
    np.testing.assert_array_equal(direct[0, 0], np.array(expected, dtype=dtype))


def test_worked_example_bias_int():
    """An int bias keeps the result int64 and is added to every pixel."""
    x, w = _inputs()
    got = fastconv.conv2d(x, w, bias=[-10])
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got[0, 0], np.array(EXPECTED["stride1"][1]) - 10)
