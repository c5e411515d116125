"""Accuracy of each algorithm on ResNet-like 3x3 layers, float32 and float64.

Inputs are ReLU-like (|N(0, 1)|), weights He-normal (std sqrt(2 / (9 C))).
Errors are measured against an independent float64 reference (einsum) and reported
relative to ``conv(|x|, |w|)`` element-wise (the magnitude of the summed
terms), as max and root-mean-square over all outputs.

Usage: ``python benchmarks/winograd_accuracy.py``
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import fastconv

LAYERS = [(1, 64, 64, 56), (1, 128, 128, 28), (1, 256, 256, 14), (1, 512, 512, 7)]
ALGORITHMS = ("direct", "winograd2", "winograd4", "winograd6")


def reference(x, w):
    """float64 3x3 correlation with padding 1, independent of fastconv."""
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = sliding_window_view(padded, (3, 3), axis=(2, 3))
    return np.einsum("nchwij,kcij->nkhw", windows, w, optimize=True)


def main():
    rng = np.random.default_rng(0)
    print(f"{'dtype':8} {'algorithm':10} {'max rel err':>12} {'rms rel err':>12}")
    for dtype in (np.float32, np.float64):
        worst = {a: [] for a in ALGORITHMS}
        squares = {a: [] for a in ALGORITHMS}
        for n, c, k, size in LAYERS:
            x = np.abs(rng.standard_normal((n, c, size, size)))
            w = rng.standard_normal((k, c, 3, 3)) * np.sqrt(2.0 / (9 * c))
            exact = reference(x, w)
            scale = reference(x, np.abs(w))
            for algorithm in ALGORITHMS:
                got = fastconv.conv2d(x.astype(dtype), w.astype(dtype), padding=1,
                                      algorithm=algorithm)
                rel = np.abs(got.astype(np.float64) - exact) / scale
                worst[algorithm].append(rel.max())
                squares[algorithm].append(np.mean(rel ** 2))
        for algorithm in ALGORITHMS:
            print(f"{np.dtype(dtype).name:8} {algorithm:10} {max(worst[algorithm]):12.2e} "
                  f"{np.sqrt(np.mean(squares[algorithm])):12.2e}")


if __name__ == "__main__":
    main()
