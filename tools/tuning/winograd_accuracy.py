"""Accuracy of each algorithm on ResNet-like 3x3 layers, float32 and float64.

Inputs are ReLU-like (|N(0, 1)|), weights He-normal (std sqrt(2 / (9 C))).
Errors are measured against the float64 reference of the benchmarks
(``fastconv._benchmarking.reference``, a sum over the kernel taps) and
reported relative to ``conv(|x|, |w|)`` element-wise (the magnitude of the
summed terms), as max and root-mean-square over all outputs.

Usage: ``python tools/tuning/winograd_accuracy.py``
"""

import numpy as np

import fastconv
from fastconv._benchmarking.layers import RESNET50_3X3
from fastconv._benchmarking.reference import conv2d_float64

ALGORITHMS = ("direct", "winograd2", "winograd4", "winograd6")


def relative_errors(layer, dtype, rng):
    """Per algorithm, the element-wise relative errors on one layer."""
    x = np.abs(rng.standard_normal(layer.input_shape))
    w = rng.standard_normal(layer.weight_shape) * np.sqrt(2.0 / (9 * layer.in_channels))
    exact = conv2d_float64(x, w, padding=1)
    scale = conv2d_float64(x, np.abs(w), padding=1)  # x >= 0: conv(|x|, |w|)
    errors = {}
    for algorithm in ALGORITHMS:
        got = fastconv.conv2d(x.astype(dtype), w.astype(dtype), padding=1,
                              algorithm=algorithm)
        errors[algorithm] = np.abs(got.astype(np.float64) - exact) / scale
    return errors


def main():
    rng = np.random.default_rng(0)
    print(f"{'dtype':8} {'algorithm':10} {'max rel err':>12} {'rms rel err':>12}")
    for dtype in (np.float32, np.float64):
        worst = {a: [] for a in ALGORITHMS}
        squares = {a: [] for a in ALGORITHMS}
        for layer in RESNET50_3X3:
            for algorithm, rel in relative_errors(layer, dtype, rng).items():
                worst[algorithm].append(rel.max())
                squares[algorithm].append(np.mean(rel ** 2))
        for algorithm in ALGORITHMS:
            print(f"{np.dtype(dtype).name:8} {algorithm:10} {max(worst[algorithm]):12.2e} "
                  f"{np.sqrt(np.mean(squares[algorithm])):12.2e}")


if __name__ == "__main__":
    main()
