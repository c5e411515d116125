"""Layer shapes, test data and the float64 reference shared by the asv suite.

Nothing here may depend on the fastconv version beyond ``fastconv.conv2d``:
asv runs this (current) suite against older commits too.
"""

import functools
import time
from collections import namedtuple

import numpy as np

import fastconv

Shape = namedtuple("Shape", "batch in_channels out_channels size kernel stride padding")
Shape.__doc__ = """A square layer: (N, C, H, H) input, K filters of kernel x kernel."""

#: Layers of a few milliseconds each: ResNet-50's 3x3 layers, its strided
#: 3x3 (the first of conv3_x) and a 1x1 bottleneck.
LAYERS = {
    "resnet50 conv2_x 3x3 (1,64,64,56)": Shape(1, 64, 64, 56, 3, 1, 1),
    "resnet50 conv3_x 3x3 (1,128,128,28)": Shape(1, 128, 128, 28, 3, 1, 1),
    "resnet50 conv4_x 3x3 (1,256,256,14)": Shape(1, 256, 256, 14, 3, 1, 1),
    "resnet50 conv5_x 3x3 (1,512,512,7)": Shape(1, 512, 512, 7, 3, 1, 1),
    "resnet50 3x3 stride 2 (1,128,128,56)": Shape(1, 128, 128, 56, 3, 2, 1),
    "resnet50 1x1 (1,256,64,56)": Shape(1, 256, 64, 56, 1, 1, 0),
}
#: The long cases: VGG-16's 3x3 layers, 3.7 GFLOP each (8x a ResNet layer).
LONG_LAYERS = {
    "vgg16 conv2 3x3 (1,128,128,112)": Shape(1, 128, 128, 112, 3, 1, 1),
    "vgg16 conv3 3x3 (1,256,256,56)": Shape(1, 256, 256, 56, 3, 1, 1),
    "vgg16 conv4 3x3 (1,512,512,28)": Shape(1, 512, 512, 28, 3, 1, 1),
}
ALL_LAYERS = {**LAYERS, **LONG_LAYERS}

#: The algorithms tracked: the direct kernel, each Winograd tile, and "auto".
ALGORITHMS = ["direct", "winograd2", "winograd4", "winograd6", "auto"]
DTYPES = ["float32", "float64"]
THREADS = [1, 2]


def output_size(shape):
    """Output height = width of ``shape``."""
    return (shape.size + 2 * shape.padding - shape.kernel) // shape.stride + 1


def flops(shape):
    """Effective FLOP: 2 * N * K * C * kH * kW * Ho * Wo."""
    return (2 * shape.batch * shape.out_channels * shape.in_channels * shape.kernel ** 2
            * output_size(shape) ** 2)


@functools.lru_cache(maxsize=4)
def data(shape, dtype):
    """Standard-normal (input, weight) for ``shape`` in ``dtype``, fixed seed.

    Drawn in ``dtype`` (no float64 temporary to inflate the peak memory) and
    cached: asv re-runs ``setup`` before every timing sample.
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((shape.batch, shape.in_channels, shape.size, shape.size),
                            dtype=dtype)
    w = rng.standard_normal((shape.out_channels, shape.in_channels, shape.kernel,
                             shape.kernel), dtype=dtype)
    return x, w


def convolve(shape, x, w, algorithm="auto", num_threads=None):
    """``fastconv.conv2d`` of ``x`` and ``w`` with the geometry of ``shape``."""
    return fastconv.conv2d(x, w, stride=shape.stride, padding=shape.padding,
                           algorithm=algorithm, num_threads=num_threads)


@functools.lru_cache(maxsize=None)
def _unsupported(kernel, stride, padding, algorithm):
    tiny = np.zeros((1, 1, kernel + 2, kernel + 2))
    try:
        fastconv.conv2d(tiny, np.zeros((1, 1, kernel, kernel)), stride=stride,
                        padding=padding, algorithm=algorithm)
    except (ValueError, TypeError) as exc:
        return f"{algorithm!r} cannot run this layer with this fastconv: {exc}"
    return None


def require(shape, algorithm):
    """Raise NotImplementedError (asv: skip) when the installed fastconv
    cannot run ``algorithm`` on ``shape`` (Winograd on a 1x1 or strided
    layer, or an algorithm an older commit lacks)."""
    reason = _unsupported(shape.kernel, shape.stride, shape.padding, algorithm)
    if reason:
        raise NotImplementedError(reason)


def reference(shape, x, w):
    """conv2d in float64 as a sum over the kernel taps of channel matrix
    products: independent of fastconv's kernels."""
    k, s, p = shape.kernel, shape.stride, shape.padding
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p, p), (p, p)))
    w = w.astype(np.float64)
    span = s * (output_size(shape) - 1) + 1
    out = 0.0
    for i in range(k):
        for j in range(k):
            patch = x[:, :, i:i + span:s, j:j + span:s]
            out = out + np.tensordot(w[:, :, i, j], patch, axes=([1], [1]))
    return np.ascontiguousarray(np.moveaxis(out, 0, 1))


def best_time(call, min_calls=3, min_seconds=0.2):
    """Best wall time of ``call()`` after one warm-up call: at least
    ``min_calls`` calls and ``min_seconds`` in all."""
    call()
    times, start = [], time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < min_seconds:
        begin = time.perf_counter()
        call()
        times.append(time.perf_counter() - begin)
    return min(times)
