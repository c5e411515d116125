"""Thread scaling of the direct kernel: 1 against 2 threads, in one process.

The two thread counts alternate call by call (best of ``--repeats`` each,
each timed call after a settle call that wakes its team of threads), so both
see the same machine; the ratio is what "at least 1.8x with 2 threads on
layers with enough work" (the direct-kernel issue) asks for. The layers are
those of the README's direct-kernel table.

Usage: ``python tools/tuning/thread_scaling.py [--repeats 25] [--threads 2]``
"""

import argparse

import numpy as np

import fastconv
from fastconv._benchmarking.layers import THREAD_SCALING_LAYERS
from fastconv._benchmarking.timing import interleaved_best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2, help="compared with 1 thread")
    args = parser.parse_args()
    print(f"fastconv {fastconv.__version__}, algorithm='direct', float32, "
          f"best of {args.repeats} interleaved")
    for layer in THREAD_SCALING_LAYERS:
        x, w = layer.data(np.float32)
        kwargs = layer.conv_kwargs()
        calls = {threads: lambda threads=threads: fastconv.conv2d(
                     x, w, algorithm="direct", num_threads=threads, **kwargs)
                 for threads in (1, args.threads)}
        best = interleaved_best(calls, args.repeats, settle=True)
        print(f"{layer.spec}: 1 thread {best[1] * 1e3:.3f} ms, {args.threads} threads "
              f"{best[args.threads] * 1e3:.3f} ms: {best[1] / best[args.threads]:.2f}x")


if __name__ == "__main__":
    main()
