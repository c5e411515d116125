"""A prepared ``fastconv.Conv2d`` layer against the functional ``conv2d``
with the same weights each call, as a Markdown table.

For each layer of the asv class ``LayerVsFunctional``
(the asv class in ``benchmarks/bench_layer.py``), interleaved, best of ``--repeats``: the
layer call, the ``conv2d`` call with the algorithm the layer runs (only the
weight handling differs) and the ``conv2d`` call with ``--algorithm`` (with
``"auto"`` it may pick another tile: its rule counts the weight transform it
pays each call).

Usage: ``python tools/tuning/prepared_layer.py [--threads T] [--repeats R]``
"""

import argparse

import numpy as np

import fastconv
from fastconv._benchmarking.layers import RESNET50_3X3, VGG16_3X3
from fastconv._benchmarking.timing import interleaved_best

LAYERS = RESNET50_3X3[1:] + VGG16_3X3[2:]
ALGORITHMS = ["auto", "winograd4"]


def compare(layer, algorithm="auto", num_threads=None, repeats=7):
    """Best seconds of the ``"layer"``, ``"conv2d"`` (the layer's algorithm)
    and ``"own"`` (``algorithm``) calls, interleaved, and the algorithm the
    layer ran."""
    x, w = layer.data(np.float32)
    conv = fastconv.Conv2d(w, padding=1, algorithm=algorithm, num_threads=num_threads)
    plan = conv.plan(x.shape)
    chosen = f"winograd{plan.tile}" if plan.tile else plan.algorithm
    best = interleaved_best({
        "layer": lambda: conv(x),
        "conv2d": lambda: fastconv.conv2d(x, w, padding=1, algorithm=chosen,
                                          num_threads=num_threads),
        "own": lambda: fastconv.conv2d(x, w, padding=1, algorithm=algorithm,
                                       num_threads=num_threads),
    }, repeats)
    return best, chosen


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="num_threads of both (default: fastconv's default)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="auto")
    args = parser.parse_args(argv)
    threads = args.threads or fastconv.get_num_threads()
    print(f"fastconv {fastconv.__version__}, num_threads={threads}, float32, "
          f"best of {args.repeats} interleaved")
    print(f"| layer | algorithm | conv2d, same algorithm (ms) | Conv2d layer (ms) | speedup "
          f"| conv2d, algorithm={args.algorithm!r} (ms) |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for layer in LAYERS:
        best, chosen = compare(layer, args.algorithm, args.threads, args.repeats)
        print(f"| {layer.label} | {chosen} | {best['conv2d'] * 1e3:.2f} | "
              f"{best['layer'] * 1e3:.2f} | {best['conv2d'] / best['layer']:.2f}x | "
              f"{best['own'] * 1e3:.2f} |")


if __name__ == "__main__":
    main()
