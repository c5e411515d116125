"""The FFT path's cost model against measurements: where ``algorithm="auto"``
picks the FFT (``fastconv._plan.fft``).

For each layer: the direct kernel and the FFT path timed (one process,
interleaved, best of the repeats), the model's estimates of both, which one
auto picks, and how far auto is from the faster of the two. With ``--windows``
each layer's FFT is also timed with every candidate window size, against the
one the model chooses.

    python tools/tuning/fft_costs.py [--threads 1] [--repeats 5] [--windows]
"""

import argparse
import sys

import numpy as np

import fastconv
from fastconv import _conv, _cpu, _direct, _fft, _winograd
from fastconv._benchmarking.layers import LARGE_KERNEL_LAYERS, Layer
from fastconv._benchmarking.timing import interleaved_best
from fastconv._plan import fft as fft_plan

#: The large-kernel set and a grid of kernels, channels and image sizes
#: around where the FFT starts to pay.
LAYERS = LARGE_KERNEL_LAYERS + tuple(
    Layer(1, c, c, size, kernel=k)
    for k, c, size in ((5, 16, 128), (5, 64, 64), (7, 16, 128), (7, 32, 64), (9, 16, 128),
                       (9, 64, 64), (11, 32, 64), (11, 64, 56), (13, 16, 128), (15, 8, 256),
                       (15, 64, 64), (21, 16, 128), (31, 4, 256)))


def estimates(layer, threads):
    """(FFT estimate, direct estimate) in ms on ``threads`` threads, and
    auto's pick."""
    spec = _conv.ConvSpec(np.zeros(layer.weight_shape, np.float32), None, 1, layer.padding,
                          cache=False)
    geo = spec.geometry(layer.input_shape)
    dtype = np.dtype(np.float32)
    mr, nr = _winograd.gemm_tile_shape("float32")
    windows = fft_plan.choose_windows(geo, _fft.backend(), False, mr, nr)
    fft_ns = fft_plan.cost_ns(geo, windows, _fft.backend(), False, mr, nr, threads)
    direct_mr = _direct.tile_shape("float32")[0]
    direct_ns = (fft_plan.DIRECT_NS[_cpu.active_isa()] * geo.multiply_adds
                 * -(-geo.group_out // direct_mr) * direct_mr / geo.group_out / threads)
    pick = fastconv.plan(layer.input_shape, layer.weight_shape, padding=layer.padding,
                         num_threads=threads).algorithm
    return fft_ns / 1e6, direct_ns / 1e6, pick, windows, geo


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--windows", action="store_true",
                        help="also time every candidate window size")
    args = parser.parse_args()
    print(f"FFT library: {_fft.backend()}, ISA level: {_cpu.active_isa()}, "
          f"threads: {args.threads}, float32, one-off conv2d calls")
    print("| layer | direct ms | fft ms | model direct | model fft | windows | auto | "
          "auto / best |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    worst = 1.0
    for layer in LAYERS:
        x, w = layer.data(np.float32)
        fft_est, direct_est, pick, windows, geo = estimates(layer, args.threads)
        calls = {algorithm: (lambda a=algorithm: fastconv.conv2d(
            x, w, padding=layer.padding, algorithm=a, num_threads=args.threads))
            for algorithm in ("direct", "fft")}
        best = interleaved_best(calls, args.repeats, settle=True)
        ratio = best[pick] / min(best.values())
        worst = max(worst, ratio)
        print(f"| {layer.spec} | {best['direct'] * 1e3:.2f} | {best['fft'] * 1e3:.2f} | "
              f"{direct_est:.2f} | {fft_est:.2f} | {windows[0]}x{windows[1]} | {pick} | "
              f"{ratio:.2f} |", flush=True)
        if args.windows:
            _time_windows(layer, geo, x, w, windows, args)
    print(f"\nauto's time / the faster algorithm's, worst layer: {worst:.2f}")
    return 0


def _time_windows(layer, geo, x, w, chosen, args):
    """Every square candidate window and the chosen one, timed."""
    span_h, span_w = fft_plan.spans(geo)
    sizes = fft_plan._axis_sizes(span_h, geo.out_h)
    timings = {}
    for size in sorted(set(sizes[::2] + [chosen[0]])):
        windows = (size, min(fft_plan._axis_sizes(span_w, geo.out_w), key=lambda s: abs(s - size)))
        if size == chosen[0]:
            windows = chosen
        plan = fft_plan.plan_windows(geo, np.dtype(np.float32), args.threads, False, windows)
        spec = _conv.ConvSpec(w, None, 1, layer.padding, algorithm="fft", cache=False)
        spec.plan = lambda *_, plan=plan: plan
        timings[windows] = interleaved_best({"fft": lambda: spec.apply(
            x, num_threads=args.threads)}, args.repeats, settle=True)["fft"]
    best = min(timings, key=timings.get)
    print("|   windows | " + ", ".join(f"{h}x{w}: {t * 1e3:.1f}" for (h, w), t in timings.items())
          + f" | best {best[0]}x{best[1]}, chosen / best "
          f"{timings[chosen] / timings[best]:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
