"""Winograd for 5x5 and 7x7 kernels against the direct kernel, the FFT and
PyTorch: where ``algorithm="auto"`` should take F(2x2, 5x5), F(4x4, 5x5) or
F(2x2, 7x7).

For each layer it times, interleaved in one process and best of
``--repeats``, one-off ``conv2d`` calls with ``algorithm`` direct, fft, each
Winograd tile the kernel has and auto, the same as prepared ``Conv2d`` layers
(weights packed or transformed once), and ``torch.nn.functional.conv2d`` when
installed, then prints each time over the direct call's (functional rows) or
the prepared direct layer's (prepared rows), and torch's time over fastconv
auto's (above 1: fastconv is faster).

Usage: ``python tools/tuning/winograd_large.py --threads 1 [--repeats 15]
[--layers "1,64,64,56,5; 1,64,64,28,7"]``
"""

import argparse

import numpy as np

import fastconv
from fastconv._benchmarking.layers import parse_layers
from fastconv._benchmarking.timing import interleaved_best

LAYERS = ("1,64,64,56,5; 1,32,32,112,5; 1,128,128,28,5; 1,256,256,14,5; 1,96,96,28,5; "
          "1,16,32,112,5; 8,64,64,28,5; 1,192,192,14,5; 1,512,512,7,5; "
          "1,64,64,56,7; 1,64,64,28,7; 1,128,128,28,7; 1,256,256,14,7; 1,32,32,112,7; "
          "8,64,64,28,7; 1,512,512,7,7")

ALGORITHMS = {5: ("direct", "fft", "winograd2", "winograd4", "auto"),
              7: ("direct", "fft", "winograd2", "auto")}


def measure(layer, threads, repeats):
    """Best seconds per call name (functional, ``prep-`` prepared, torch)."""
    x, w = layer.data(np.float32)
    r = w.shape[2]
    pad = r // 2
    out = np.empty(layer.output_shape, np.float32)
    calls = {}
    for algorithm in ALGORITHMS[r]:
        conv = fastconv.Conv2d(w, padding=pad, algorithm=algorithm, num_threads=threads)
        calls[algorithm] = lambda a=algorithm: fastconv.conv2d(
            x, w, padding=pad, algorithm=a, num_threads=threads, out=out)
        calls[f"prep-{algorithm}"] = lambda conv=conv: conv(x, out=out)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(threads)
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)

        def torch_call():
            with torch.no_grad():
                torch.nn.functional.conv2d(tx, tw, padding=pad)

        calls["torch"] = torch_call
    return interleaved_best(calls, repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--layers", default=LAYERS)
    args = parser.parse_args()
    print(f"threads {args.threads}, best of {args.repeats}; each time / direct's "
          "(prepared: / the prepared direct layer's); torch / auto")
    for layer in parse_layers(args.layers):
        best = measure(layer, args.threads, args.repeats)
        r = layer.weight_shape[2]
        plan = fastconv.plan(layer.input_shape, layer.weight_shape, padding=r // 2,
                             num_threads=args.threads)
        prep = fastconv.plan(layer.input_shape, layer.weight_shape, padding=r // 2,
                             num_threads=args.threads, prepared=True)
        cells = [f"{a} {best[a] / best['direct']:.2f}" for a in ALGORITHMS[r][1:]]
        cells += [f"prep-{a} {best['prep-' + a] / best['prep-direct']:.2f}"
                  for a in ALGORITHMS[r][1:]]
        if "torch" in best:
            cells += [f"torch/auto {best['torch'] / best['auto']:.2f}",
                      f"torch/prep-auto {best['torch'] / best['prep-auto']:.2f}"]
        print(f"{layer.spec:16} direct {best['direct'] * 1e3:7.2f} ms | " + " ".join(cells)
              + f" | auto {plan.algorithm}{plan.tile or ''}"
              f" prep {prep.algorithm}{prep.tile or ''}", flush=True)


if __name__ == "__main__":
    main()
