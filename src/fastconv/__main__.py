"""``python -m fastconv``: the worked example and one timed ResNet layer;
``python -m fastconv bench``: fastconv against the installed peers;
``python -m fastconv peak``: the CPU's measured multiply-add peak."""

import argparse
import sys

import numpy as np

from . import conv2d, show_config
from ._benchmarking import cli as bench_cli
from ._benchmarking import peak as peak_cli
from ._benchmarking.layers import RESNET50_3X3
from ._benchmarking.timing import best_of

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

    layer = RESNET50_3X3[1]  # conv3_x: (1, 128, 128, 28), 3x3, padding 1
    x, w = layer.data(np.float32)
    best = best_of(lambda: conv2d(x, w, padding=1), 10)  # after a warm-up call
    print(f"\nResNet-50 layer (N={layer.batch}, C={layer.in_channels}, K={layer.out_channels}, "
          f"{layer.size}x{layer.size}, 3x3, pad 1), float32: best of 10 {best * 1e3:.2f} ms, "
          f"{layer.flops / 1e9 / best:.0f} GFLOP/s")
    return 0


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
    bench_cli.add_arguments(bench)
    bench.set_defaults(run=bench_cli.main)
    peak = commands.add_parser(
        "peak", help="measure the CPU's multiply-add peak (GFLOP/s) per SIMD level",
        description="Time an inline-assembly loop of independent multiply-adds (one the "
                    "compiler cannot fold) at every SIMD level the CPU runs: the limit a "
                    "kernel's GFLOP/s are measured against.")
    peak.add_argument("--threads", type=int, nargs="+", default=[_default_threads()],
                      metavar="N", help="thread counts besides 1 (default: %(default)s)")
    peak.set_defaults(run=peak_cli.main)
    return parser


def _default_threads():
    from ._openmp_helpers import default_num_threads
    return default_num_threads()


def main(argv=None):
    """Entry point of ``python -m fastconv``; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command is None:
        return demo()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
