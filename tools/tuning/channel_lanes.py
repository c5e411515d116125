"""The prepared direct kernel with and without output channels in the lanes.

A ``Conv2d(..., algorithm="direct")`` layer on a small image runs the
channel-lanes kernel (AVX-512, up to ``_plan.CHANNEL_LANES_PIXELS`` output pixels,
at least one tile of output channels); this times it against the pixel
panels the same layer runs otherwise, the two alternating call by call in
one process (best of ``--repeats`` each, each timed call after a settle
call). The README's "Channel lanes" figures and the pixel limit come from it.

Usage: ``python tools/tuning/channel_lanes.py [--threads 2] [--repeats 15]``
"""

import argparse

import numpy as np

import fastconv
from fastconv import _direct, _plan
from fastconv._benchmarking.layers import CHANNEL_LANES_LAYERS
from fastconv._benchmarking.timing import interleaved_best

#: The pixel limit that makes the layer run either kernel.
LIMITS = {"lanes": 1 << 30, "panels": 0}


def with_limit(call, limit):
    """``call`` run with ``_plan.CHANNEL_LANES_PIXELS = limit`` (plans are
    cached, so the cache is cleared on each change)."""
    def limited():
        if _plan.CHANNEL_LANES_PIXELS != limit:
            _plan.CHANNEL_LANES_PIXELS = limit
            _plan.clear_cache()
        call()
    return limited


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    if _direct.lanes_width(np.float32) == 0:
        raise SystemExit("no channel-lanes tile at this instruction-set level (AVX-512 only)")
    default_limit = _plan.CHANNEL_LANES_PIXELS
    try:
        for layer in CHANNEL_LANES_LAYERS:
            x, w = layer.data(np.float32)
            conv = fastconv.Conv2d(w, stride=layer.stride, padding=layer.padding,
                                   algorithm="direct", num_threads=args.threads)
            calls = {name: with_limit(lambda: conv(x), limit) for name, limit in LIMITS.items()}
            best = interleaved_best(calls, args.repeats, settle=True)
            print(f"{layer.spec}: {layer.output_size ** 2} output pixels, "
                  f"lanes {best['lanes'] * 1e3:.3f} ms, panels {best['panels'] * 1e3:.3f} ms: "
                  f"{best['panels'] / best['lanes']:.2f}x")
    finally:
        _plan.CHANNEL_LANES_PIXELS = default_limit
        _plan.clear_cache()


if __name__ == "__main__":
    main()
