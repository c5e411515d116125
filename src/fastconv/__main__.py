"""``python -m fastconv``: the worked example and one timed ResNet layer;
``python -m fastconv bench``: fastconv against the installed peers."""

import argparse
import sys
import time

import numpy as np

from . import _bench, conv2d, show_config

EXAMPLE_INPUT = [[1, 2, 0, 3, 1],
                 [0, 1, 2, 3, 1],
                 [1, 2, 1, 0, 0],
                 [5, 2, 3, 1, 1],
                 [2, 1, 0, 1, 1]]
EXAMPLE_KERNEL = [[1, 2, 1],
                  [0, 1, 0],
                  [2, 1, 0]]


def demo():
    """The configuration, the worked example and one timed ResNet-50 layer."""
    show_config()
    x = np.reshape(EXAMPLE_INPUT, (1, 1, 5, 5))
    kernel = np.reshape(EXAMPLE_KERNEL, (1, 1, 3, 3))
    print("\nThe worked example (input 5x5, kernel 3x3):")
    for label, kwargs in (("stride=1", {"stride": 1}), ("stride=2", {"stride": 2}),
                          ("padding=1", {"padding": 1})):
        print(f"conv2d(input, kernel, {label}) =")
        print(conv2d(x, kernel, **kwargs))

    n, c, k, size = 1, 128, 128, 28
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, size, size), dtype=np.float32)
    w = rng.standard_normal((k, c, 3, 3), dtype=np.float32)
    conv2d(x, w, padding=1)  # warm-up: page faults, thread start
    best = min(_timed(conv2d, x, w, padding=1) for _ in range(10))
    gflop = 2 * n * k * c * 9 * size * size / 1e9
    print(f"\nResNet-50 layer (N={n}, C={c}, K={k}, {size}x{size}, 3x3, pad 1), "
          f"float32: best of 10 {best * 1e3:.2f} ms, {gflop / best:.0f} GFLOP/s")
    return 0


def _timed(function, *args, **kwargs):
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def build_parser():
    """The ``python -m fastconv`` argument parser (sub-command ``bench``)."""
    parser = argparse.ArgumentParser(
        prog="python -m fastconv",
        description="Without a command: print the configuration, the worked example and "
                    "one timed ResNet-50 layer.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = commands.add_parser(
        "bench", help="time fastconv against NumPy, PyTorch and SciPy (those installed)",
        description="Time fastconv against the installed peers (NumPy im2col + matmul, "
                    "torch.nn.functional.conv2d, scipy.signal.correlate on small layers), "
                    "interleaved, best of repeats, and print a Markdown table with ms, "
                    "GFLOP/s, speedups, fastconv's algorithm and max errors against float64.")
    _bench.add_arguments(bench)
    bench.set_defaults(run=_bench.main)
    return parser


def main(argv=None):
    """Entry point of ``python -m fastconv``; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command is None:
        return demo()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
