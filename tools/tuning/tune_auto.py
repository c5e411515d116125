"""Measure direct vs Winograd F(2x2)/F(4x4)/F(6x6) over a grid of 3x3 layers.

The table it prints is where the ``algorithm="auto"`` rule
(``winograd_tile_rule`` in ``fastconv/_plan/__init__.py``) comes from
(the runs are in auto_rule.md). For each layer it times,
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

Usage: ``python tools/tuning/tune_auto.py --threads 2 [--json out.json]``
"""

import argparse
import json

import numpy as np

import fastconv
from fastconv import _winograd
from fastconv._benchmarking.layers import auto_rule_grid
from fastconv._benchmarking.timing import interleaved_best

TILES = (2, 4, 6)


def measure(layer, threads, repeats):
    """One row of the table: the best seconds of each call (see the module
    docstring), interleaved, after a warm-up call of each."""
    x, w = layer.data(np.float32)
    bias = np.zeros(layer.out_channels, np.float32)
    out = np.empty(layer.output_shape, np.float32)
    prepared = {m: _winograd.pack_weights(w, 1, m, threads) for m in TILES}
    conv = fastconv.Conv2d(w, padding=1, algorithm="direct", num_threads=threads)
    calls = {"direct": lambda: fastconv.conv2d(x, w, padding=1, algorithm="direct",
                                               num_threads=threads, out=out),
             "dprep": lambda: conv(x, out=out)}
    for m in TILES:
        # The driver executes a plan: the planner's blocking and threads.
        plan = fastconv.plan(x.shape, w.shape, padding=1, algorithm=f"winograd{m}",
                             num_threads=threads, prepared=True)
        calls[f"w{m}"] = lambda m=m, plan=plan: _winograd.conv2d_winograd(
            x, prepared[m], bias, out, m, 3, 1, 1, 1, plan.threads, plan.blocking)
        calls[f"pack{m}"] = lambda m=m: _winograd.pack_weights(w, 1, m, threads)
    return {"n": layer.batch, "c": layer.in_channels, "k": layer.out_channels,
            "size": layer.size, **interleaved_best(calls, repeats)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="write the raw rows here")
    args = parser.parse_args()
    rows = []
    print(f"{'N':>2} {'C=K':>4} {'H':>4} {'direct':>8} {'dprep':>8} "
          + " ".join(f"{'w' + str(m):>7} {'+pack':>7}" for m in TILES)
          + "  best(functional) best(prepared)")
    for layer in auto_rule_grid():  # up to 6 GFLOP a call: keeps the run short
        row = measure(layer, args.threads, args.repeats)
        functional = {"direct": row["direct"],
                      **{f"winograd{m}": row[f"w{m}"] + row[f"pack{m}"] for m in TILES}}
        prepared = {"direct": row["dprep"],
                    **{f"winograd{m}": row[f"w{m}"] for m in TILES}}
        row["best_functional"] = min(functional, key=functional.get)
        row["best_prepared"] = min(prepared, key=prepared.get)
        rows.append(row)
        print(f"{row['n']:>2} {row['c']:>4} {row['size']:>4} {row['direct'] * 1e3:8.3f} "
              f"{row['dprep'] * 1e3:8.3f} "
              + " ".join(f"{row[f'w{m}'] * 1e3:7.3f} {row[f'pack{m}'] * 1e3:7.3f}"
                         for m in TILES)
              + f"  {row['best_functional']:>10} {row['best_prepared']:>10}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "config": fastconv._config.config_info(),
                       "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
