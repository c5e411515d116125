"""Measure direct vs Winograd F(2x2)/F(4x4)/F(6x6) over a grid of 3x3 layers.

The table it prints is where the ``algorithm="auto"`` rule in
``fastconv/_conv.py`` comes from (see the README). For each layer it times,
interleaved and best of ``--repeats``:

* ``direct``: ``conv2d(..., algorithm="direct")`` (weights read in place),
* ``dprep``: a prepared ``Conv2d(..., algorithm="direct")`` layer, which on
  images of up to 256 output pixels puts the output channels in the vector
  lanes (AVX-512),
* ``wN``: the Winograd call with transformed weights prepared beforehand,
* ``packN``: the Winograd weight transform alone,

so the functional ``conv2d`` cost of Winograd is ``wN + packN`` and the
``Conv2d`` (prepared) cost is ``wN``, to compare with ``direct`` and
``dprep`` respectively.

Usage: ``python benchmarks/tune_auto.py --threads 2 [--json out.json]``
"""

import argparse
import itertools
import json
import time

import numpy as np

import fastconv
from fastconv import _winograd

TILES = (2, 4, 6)


def best_times(functions, repeats):
    """Best wall time of each callable, calls interleaved round-robin."""
    best = [float("inf")] * len(functions)
    for function in functions:
        function()  # warm-up
    for _ in range(repeats):
        for i, function in enumerate(functions):
            start = time.perf_counter()
            function()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def measure(n, c, k, size, threads, repeats, rng):
    x = rng.standard_normal((n, c, size, size), dtype=np.float32)
    w = rng.standard_normal((k, c, 3, 3), dtype=np.float32)
    bias = np.zeros(k, np.float32)
    out = np.empty((n, k, size, size), np.float32)
    prepared = {m: _winograd.pack_weights(w, 1, m, threads) for m in TILES}
    layer = fastconv.Conv2d(w, padding=1, algorithm="direct", num_threads=threads)
    functions = [lambda: fastconv.conv2d(x, w, padding=1, algorithm="direct",
                                         num_threads=threads, out=out),
                 lambda: layer(x, out=out)]
    for m in TILES:
        functions.append(lambda m=m: _winograd.conv2d_winograd(
            x, prepared[m], bias, out, m, 1, 1, 1, threads))
        functions.append(lambda m=m: _winograd.pack_weights(w, 1, m, threads))
    times = best_times(functions, repeats)
    row = {"n": n, "c": c, "k": k, "size": size, "direct": times[0], "dprep": times[1]}
    for i, m in enumerate(TILES):
        row[f"w{m}"] = times[2 + 2 * i]
        row[f"pack{m}"] = times[3 + 2 * i]
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="write the raw rows here")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    grid = itertools.product((1, 8), (16, 32, 64, 128, 256, 512), (7, 14, 28, 56, 112))
    print(f"{'N':>2} {'C=K':>4} {'H':>4} {'direct':>8} {'dprep':>8} "
          + " ".join(f"{'w' + str(m):>7} {'+pack':>7}" for m in TILES)
          + "  best(functional) best(prepared)")
    for n, c, size in grid:
        if n * c * c * size * size * 9 * 2 > 6e9:  # keep the run short
            continue
        row = measure(n, c, c, size, args.threads, args.repeats, rng)
        functional = {"direct": row["direct"],
                      **{f"winograd{m}": row[f"w{m}"] + row[f"pack{m}"] for m in TILES}}
        prepared = {"direct": row["dprep"],
                    **{f"winograd{m}": row[f"w{m}"] for m in TILES}}
        row["best_functional"] = min(functional, key=functional.get)
        row["best_prepared"] = min(prepared, key=prepared.get)
        rows.append(row)
        print(f"{n:>2} {c:>4} {size:>4} {row['direct'] * 1e3:8.3f} {row['dprep'] * 1e3:8.3f} "
              + " ".join(f"{row[f'w{m}'] * 1e3:7.3f} {row[f'pack{m}'] * 1e3:7.3f}"
                         for m in TILES)
              + f"  {row['best_functional']:>10} {row['best_prepared']:>10}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "config": fastconv._config.config_info(),
                       "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
