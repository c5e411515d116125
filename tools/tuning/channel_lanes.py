"""The prepared direct kernel with and without output channels in the lanes.

A ``Conv2d(..., algorithm="direct")`` layer on a small image runs the
channel-lanes kernel (AVX-512, up to ``_CHANNEL_LANES_PIXELS`` output pixels,
at least one tile of output channels); this times it against the pixel
panels the same layer runs otherwise, the two alternating call by call in
one process (best of ``--repeats`` each). The README's "Channel lanes"
figures and the pixel limit come from it.

Usage: ``python benchmarks/channel_lanes.py [--threads 2] [--repeats 15]``
"""

import argparse
import time

import numpy as np

import fastconv
from fastconv import _conv, _direct

# (N, C, K, H=W, kernel, stride, padding)
LAYERS = [
    (1, 1024, 256, 14, 1, 1, 0),
    (1, 128, 128, 56, 3, 2, 1),
    (1, 256, 256, 28, 3, 2, 1),
    (1, 32, 64, 28, 5, 1, 2),
    (1, 512, 512, 7, 3, 1, 1),
    (1, 256, 256, 14, 3, 1, 1),
    (1, 64, 64, 28, 3, 1, 1),
    (1, 2048, 512, 7, 1, 1, 0),
    (1, 512, 2048, 7, 1, 1, 0),
    (1, 64, 128, 28, 3, 1, 1),
    (1, 16, 16, 28, 3, 1, 1),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    if _direct.lanes_width(np.float32) == 0:
        raise SystemExit("no channel-lanes tile at this instruction-set level (AVX-512 only)")
    rng = np.random.default_rng(0)
    default_limit = _conv._CHANNEL_LANES_PIXELS
    settings = {"lanes": 1 << 30, "panels": 0}  # pixel limit for either kernel
    try:
        for n, c, k, size, kernel, stride, padding in LAYERS:
            x = rng.random((n, c, size, size), dtype=np.float32)
            w = rng.standard_normal((k, c, kernel, kernel)).astype(np.float32)
            layer = fastconv.Conv2d(w, stride=stride, padding=padding, algorithm="direct",
                                    num_threads=args.threads)
            best = dict.fromkeys(settings, float("inf"))
            for _ in range(args.repeats):
                for name, limit in settings.items():
                    _conv._CHANNEL_LANES_PIXELS = limit
                    layer(x)  # settle: the other kernel's scratch and caches
                    start = time.perf_counter()
                    layer(x)
                    best[name] = min(best[name], time.perf_counter() - start)
            pixels = ((size + 2 * padding - kernel) // stride + 1) ** 2
            print(f"{(n, c, k, size, kernel, stride, padding)}: {pixels} output pixels, "
                  f"lanes {best['lanes'] * 1e3:.3f} ms, panels {best['panels'] * 1e3:.3f} ms: "
                  f"{best['panels'] / best['lanes']:.2f}x")
    finally:
        _conv._CHANNEL_LANES_PIXELS = default_limit


if __name__ == "__main__":
    main()
