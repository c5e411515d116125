"""Per-thread scratch stays within each path's budget on wide and tall images.

Every kernel path copies a block of the input into a per-thread scratch whose
size is planned from a budget (README, "Threads and memory"): about 512 KiB
for the row panels and the depthwise planes (768 KiB for strided rows in
reduction chunks), or one output row's worth when a single row is larger;
Winograd's V and M blocks. A planning error there (an
unsigned wrap made the row path copy every row of a wide image: 50 MiB for
(1, 256, 224, 224)) still gives the right result, so it is checked here
through the kernels' own account of the scratch they asked for.
"""

import numpy as np
import pytest

import fastconv
from fastconv import _direct, _winograd

from reference import conv2d_ref

BUDGET = 512 * 1024
# Strided rows in reduction chunks (docs/algorithms.md).
CHUNKED_BYTES = 768 * 1024

# (path, input shape with its tallest height, weight shape, keywords); each
# shape has rows wide enough or tall enough to exceed the budget as a whole.
CASES = [
    ("rows, one row over budget", (1, 256, 64, 224), (8, 256, 3, 3), {}),
    ("rows, 1024 wide", (1, 64, 16, 1024), (8, 64, 3, 3), {}),
    ("rows, tall", (1, 64, 2048, 32), (8, 64, 3, 3), {}),
    ("rows, stride 2", (1, 64, 32, 2048), (8, 64, 3, 3), {"stride": 2}),
    # reduction chunks: a chunk's rows and the block's sums, CHUNKED_BYTES
    ("rows, stride 2, chunks", (1, 128, 512, 56), (128, 128, 3, 3), {"stride": 2}),
    ("rows, dilation 2", (1, 64, 32, 1024), (8, 64, 3, 3), {"dilation": 2}),
    ("packed 1x1", (1, 256, 16, 1024), (8, 256, 1, 1), {}),
    ("planes, depthwise wide", (1, 4, 256, 2048), (4, 1, 3, 3), {"groups": 4}),
    ("planes, depthwise tall", (1, 4, 4096, 64), (4, 1, 3, 3), {"groups": 4}),
]


def _peak(module, x, w, **kwargs):
    module.scratch_peak_bytes(True)
    y = fastconv.conv2d(x, w, padding=1, num_threads=2, **kwargs)
    return module.scratch_peak_bytes(), y


@pytest.mark.parametrize("name, x_shape, w_shape, kwargs", CASES,
                         ids=[case[0] for case in CASES])
def test_direct_scratch_does_not_grow_with_the_image(name, x_shape, w_shape, kwargs):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32)
    # The smallest block a path can take: a single output row.
    one_row, _ = _peak(_direct, x[:, :, :1 + 2 * (w_shape[2] // 2) * kwargs.get("dilation", 1)],
                       w, algorithm="direct", **kwargs)
    peak, y = _peak(_direct, x, w, algorithm="direct", **kwargs)
    assert 0 < one_row
    budget = CHUNKED_BYTES if "chunks" in name else BUDGET
    assert peak <= max(budget, one_row) * 1.05 + 16 * 1024, (
        f"{name}: {peak / 2**10:.0f} KiB of scratch per thread; budget "
        f"{budget / 2**10:.0f} KiB, one output row {one_row / 2**10:.0f} KiB")
    # The result does not depend on the blocking: compare a corner.
    corner = np.ascontiguousarray(x[:, :, :8, :8], dtype=np.float64)
    expected = conv2d_ref(corner, w.astype(np.float64), padding=1, **kwargs)
    rows, cols = expected.shape[2] - 1, expected.shape[3] - 1
    np.testing.assert_allclose(y[:, :, :rows, :cols], expected[:, :, :rows, :cols],
                               rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("x_shape", [(1, 64, 8, 1024), (1, 64, 1024, 8)],
                         ids=["wide", "tall"])
def test_winograd_scratch_does_not_grow_with_the_image(x_shape):
    rng = np.random.default_rng(8)
    w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
    small = rng.standard_normal((1, 64, 16, 16), dtype=np.float32)
    large = rng.standard_normal(x_shape, dtype=np.float32)
    for tile in ("winograd2", "winograd4"):
        small_peak, _ = _peak(_winograd, small, w, algorithm=tile)
        large_peak, _ = _peak(_winograd, large, w, algorithm=tile)
        # V and M are blocked by their byte budgets, whatever the image.
        assert large_peak <= 8 * 2**20, (tile, large_peak)
        assert small_peak <= large_peak
