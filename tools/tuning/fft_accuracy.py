"""The FFT path's error against the float64 reference, relative to its
documented bound (docs/algorithms.md): for random layers (1 to 256 input
channels, 3x3 to 15x15 kernels, 1e-3 to 1e3 data), the largest
``max|y - y_exact| / (eps * log2(fft_h * fft_w) * max(conv(|x|, |w|)))``
per dtype. The bound allows 2.

    python tools/tuning/fft_accuracy.py [--cases 150] [--seed 1]
"""

import argparse
import math
import sys

import numpy as np

import fastconv
from fastconv._benchmarking.reference import conv2d_float64


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    worst = {"float32": 0.0, "float64": 0.0}
    for i in range(args.cases):
        dtype = ("float32", "float64")[i % 2]
        channels, out = int(rng.choice([1, 3, 16, 64, 256])), int(rng.choice([1, 4, 16]))
        k = int(rng.choice(np.arange(3, 16, 2)))
        h, w = int(rng.integers(k, 90)), int(rng.integers(k, 90))
        x = (rng.standard_normal((1, channels, h, w)) * 10.0 ** rng.integers(-3, 4)).astype(dtype)
        weight = rng.standard_normal((out, channels, k, k)).astype(dtype)
        got = fastconv.conv2d(x, weight, padding=k // 2, algorithm="fft")
        exact = conv2d_float64(x, weight, padding=k // 2)
        scale = conv2d_float64(np.abs(x), np.abs(weight), padding=k // 2).max()
        plan = fastconv.plan(x.shape, weight.shape, padding=k // 2, algorithm="fft",
                             dtype=dtype)
        points = plan.blocking["fft_h"] * plan.blocking["fft_w"]
        ratio = (np.abs(got - exact).max()
                 / (np.finfo(dtype).eps * math.log2(points) * scale))
        worst[dtype] = max(worst[dtype], float(ratio))
    print(f"{args.cases} random layers; worst error / (eps * log2(window points) * "
          f"max conv(|x|,|w|)): " + ", ".join(f"{k} {v:.2f}" for k, v in worst.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
