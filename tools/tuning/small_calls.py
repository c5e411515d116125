"""Small calls at 1 and 2 threads, on an idle machine and with busy cores.

The measurement behind fastconv's minimum of work per thread
(``_plan.MIN_WORK_PER_THREAD``, lifted here so that every call may
use 2 threads): 3x3 direct layers from 0.1 to 140 million multiply-adds, the
two thread counts alternating in one process. The median says what a second
thread gains on an idle machine; the mean, with ``--busy N`` processes
spinning beside it, what libgomp's hand-off to a descheduled thread costs.
Unlike the other scripts this keeps every call's time, not the best: it is
the spread that matters here.

Usage: ``python tools/tuning/small_calls.py [--busy 2] [--calls 300]``
"""

import argparse
import multiprocessing
import time

import numpy as np

import fastconv
from fastconv import _plan
from fastconv._benchmarking.layers import SMALL_CALL_LAYERS
from fastconv._benchmarking.timing import call_times


def spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def best_stats(x, w, calls, rounds):
    """Per thread count (1, 2): the best over ``rounds`` of the (median,
    mean) time of ``calls`` back-to-back calls."""
    best = {}
    for _ in range(rounds):
        for threads in (1, 2):
            samples = call_times(lambda: fastconv.conv2d(x, w, algorithm="direct",
                                                         num_threads=threads), calls)
            stats = (float(np.median(samples)), float(np.mean(samples)))
            old = best.get(threads, (np.inf, np.inf))
            best[threads] = (min(old[0], stats[0]), min(old[1], stats[1]))
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=0, help="spinning processes beside")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="best of, per statistic")
    args = parser.parse_args()
    _plan.MIN_WORK_PER_THREAD = 1
    spinners = [multiprocessing.Process(target=spin, args=(3600,), daemon=True)
                for _ in range(args.busy)]
    for process in spinners:
        process.start()
    time.sleep(0.5 if spinners else 0)
    print(f"fastconv {fastconv.__version__}, 3x3 direct, float32, {args.busy} busy "
          f"processes, {args.calls} calls, best of {args.rounds} rounds (ms)")
    try:
        for layer in SMALL_CALL_LAYERS:
            x, w = layer.data(np.float32)
            (median1, mean1), (median2, mean2) = best_stats(
                x, w, args.calls, args.rounds).values()
            print(f"{layer.macs / 1e6:8.2f} M multiply-adds: median 1 thread "
                  f"{median1 * 1e3:.4f}, 2 threads {median2 * 1e3:.4f}; mean "
                  f"{mean1 * 1e3:.4f}, {mean2 * 1e3:.4f}")
    finally:
        for process in spinners:
            process.terminate()


if __name__ == "__main__":
    main()
