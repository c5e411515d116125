"""Accuracy of each algorithm on ResNet-like 3x3 layers and on 5x5 and 7x7
layers, float32 and float64.

Inputs are ReLU-like (|N(0, 1)|), weights He-normal (std sqrt(2 / (k^2 C))).
Errors are measured against the float64 reference of the benchmarks
(``fastconv._benchmarking.reference``, a sum over the kernel taps) and
reported relative to ``conv(|x|, |w|)`` element-wise (the magnitude of the
summed terms), as max and root-mean-square over all outputs.

Usage: ``python tools/tuning/winograd_accuracy.py``
"""

import numpy as np

import fastconv
from fastconv._benchmarking.layers import RESNET50_3X3, parse_layers
from fastconv._benchmarking.reference import conv2d_float64

#: The algorithms per kernel size, and the larger kernels' layers.
ALGORITHMS = {3: ("direct", "winograd2", "winograd4", "winograd6"),
              5: ("direct", "winograd2", "winograd4"),
              7: ("direct", "winograd2")}
LARGE_KERNEL_LAYERS = parse_layers("1,64,64,56,5; 1,128,128,28,5; 1,256,256,14,5; "
                                   "1,512,512,7,5; 1,64,64,56,7; 1,128,128,28,7; "
                                   "1,256,256,14,7; 1,512,512,7,7")


def relative_errors(layer, dtype, rng):
    """Per algorithm, the element-wise relative errors on one layer."""
    r = layer.weight_shape[2]
    x = np.abs(rng.standard_normal(layer.input_shape))
    w = rng.standard_normal(layer.weight_shape) * np.sqrt(2.0 / (r * r * layer.in_channels))
    exact = conv2d_float64(x, w, padding=r // 2)
    scale = conv2d_float64(x, np.abs(w), padding=r // 2)  # x >= 0: conv(|x|, |w|)
    errors = {}
    for algorithm in ALGORITHMS[r]:
        got = fastconv.conv2d(x.astype(dtype), w.astype(dtype), padding=r // 2,
                              algorithm=algorithm)
        errors[algorithm] = np.abs(got.astype(np.float64) - exact) / scale
    return errors


def main():
    rng = np.random.default_rng(0)
    print(f"{'kernel':6} {'dtype':8} {'algorithm':10} {'max rel err':>12} {'rms rel err':>12}")
    for r, layers in ((3, RESNET50_3X3), (5, LARGE_KERNEL_LAYERS[:4]),
                      (7, LARGE_KERNEL_LAYERS[4:])):
        for dtype in (np.float32, np.float64):
            worst = {a: [] for a in ALGORITHMS[r]}
            squares = {a: [] for a in ALGORITHMS[r]}
            for layer in layers:
                for algorithm, rel in relative_errors(layer, dtype, rng).items():
                    worst[algorithm].append(rel.max())
                    squares[algorithm].append(np.mean(rel ** 2))
            for algorithm in ALGORITHMS[r]:
                print(f"{r}x{r:<4} {np.dtype(dtype).name:8} {algorithm:10} "
                      f"{max(worst[algorithm]):12.2e} "
                      f"{np.sqrt(np.mean(squares[algorithm])):12.2e}")


if __name__ == "__main__":
    main()
