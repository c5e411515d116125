"""Speed of two builds of fastconv (two checkouts), in alternating processes.

Two versions of one package cannot share a process, so each round runs one
process per build, alternately, and each process times every case
(interleaved, best of ``--repeats`` after a warm-up call). The report is the
best time of each build over the rounds and their ratio: on a shared,
noisy machine alternation (each build first in every other round) spreads
the noise over both builds alike.

The cases cover every kernel path of the planner (rows, packed, shared
columns, planes, channel lanes, Winograd tiles and cooperative), at 1 and 2
threads. The child program uses only ``fastconv.conv2d`` and
``fastconv.Conv2d``, so any commit can be measured.

    python tools/tuning/ab_compare.py OLD_CHECKOUT NEW_CHECKOUT [--rounds 3]
    python tools/tuning/ab_compare.py OLD NEW --set resnet50 [--prepared]

``--set resnet50`` times the 23 distinct convolutions of ResNet-50 (the
bench command's ``--layers resnet50``) as one-off ``conv2d`` calls, or as
``Conv2d`` layers with ``--prepared``, and adds the network's total (each
layer counted as often as it occurs).

Each checkout must hold a built extension (``python setup.py build_ext
--inplace``); its ``src/`` goes first on ``PYTHONPATH``.
"""

import argparse
import json
import os
import subprocess
import sys

#: (label, input shape, weight shape, conv2d options, prepared layer?)
CASES = [
    ("rows 3x3 (1,64,64,56)", (1, 64, 56, 56), (64, 64, 3, 3),
     dict(padding=1, algorithm="direct"), False),
    ("rows 3x3 s2 (1,128,128,56)", (1, 128, 56, 56), (128, 128, 3, 3),
     dict(padding=1, stride=2, algorithm="direct"), False),
    ("rows 5x5 (1,64,64,28)", (1, 64, 28, 28), (64, 64, 5, 5), dict(padding=2), False),
    ("packed 1x1 (1,64,256,56)", (1, 64, 56, 56), (256, 64, 1, 1), {}, False),
    ("shared columns 1x1 (1,512,2048,7)", (1, 512, 7, 7), (2048, 512, 1, 1), {}, False),
    ("planes depthwise (1,128,128,56)", (1, 128, 56, 56), (128, 1, 3, 3),
     dict(padding=1, groups=128), False),
    ("channel lanes (1,512,512,7) Conv2d", (1, 512, 7, 7), (512, 512, 3, 3),
     dict(padding=1, algorithm="direct"), True),
    ("winograd (1,64,64,56)", (1, 64, 56, 56), (64, 64, 3, 3), dict(padding=1), False),
    ("winograd (1,256,256,14) Conv2d", (1, 256, 14, 14), (256, 256, 3, 3),
     dict(padding=1), True),
    ("winograd (8,128,128,28)", (8, 128, 28, 28), (128, 128, 3, 3), dict(padding=1), False),
    ("winograd 5x5 (1,64,64,56) Conv2d", (1, 64, 56, 56), (64, 64, 5, 5),
     dict(padding=2, algorithm="winograd4"), True),
    ("winograd 5x5 (8,64,64,28)", (8, 64, 28, 28), (64, 64, 5, 5),
     dict(padding=2, algorithm="winograd4"), False),
    ("winograd 7x7 (1,128,128,28) Conv2d", (1, 128, 28, 28), (128, 128, 7, 7),
     dict(padding=3, algorithm="winograd2"), True),
]

CHILD = r"""
import json, sys, time
import numpy as np
import fastconv

cases, threads, repeats = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
calls = {}
for label, x_shape, w_shape, options, prepared in cases:
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    if prepared:
        layer = fastconv.Conv2d(w, num_threads=threads, **options)
        calls[label] = lambda layer=layer, x=x: layer(x)
    else:
        calls[label] = (lambda x=x, w=w, options=options:
                        fastconv.conv2d(x, w, num_threads=threads, **options))
best = {label: float("inf") for label in calls}
for call in calls.values():
    call()
for _ in range(repeats):
    for label, call in calls.items():
        call()  # settle: the timed call follows one untimed call of itself
        start = time.perf_counter()
        call()
        best[label] = min(best[label], time.perf_counter() - start)
print(json.dumps(best))
"""


def run(checkout, cases, threads, repeats):
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.abspath(checkout), "src"))
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps([cases, threads, repeats])],
                         env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def resnet50_cases(prepared):
    """The distinct ResNet-50 layers as cases, and how often each occurs."""
    from fastconv._benchmarking.layers import RESNET50_LAYERS, distinct_layers

    cases, counts = [], []
    for layer, count in distinct_layers(RESNET50_LAYERS):
        n, c, k, h = layer.batch, layer.in_channels, layer.out_channels, layer.size
        options = dict(stride=layer.stride, padding=layer.padding)
        cases.append((f"{layer.name} ({n},{c},{k},{h},{layer.kernel},{layer.stride})",
                      (n, c, h, h), (k, c, layer.kernel, layer.kernel), options, prepared))
        counts.append(count)
    return cases, counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--only", default="", help="cases whose label contains this")
    parser.add_argument("--set", choices=["paths", "resnet50"], default="paths",
                        help="the cases: one per kernel path (default), or ResNet-50's layers")
    parser.add_argument("--prepared", action="store_true",
                        help="with --set resnet50: Conv2d layers instead of conv2d calls")
    args = parser.parse_args(argv)
    if args.set == "resnet50":
        cases, counts = resnet50_cases(args.prepared)
    else:
        cases, counts = list(CASES), [1] * len(CASES)
    keep = [i for i, case in enumerate(cases) if args.only in case[0]]
    cases, counts = [cases[i] for i in keep], [counts[i] for i in keep]
    print("| case | threads | old ms | new ms | old / new |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for threads in args.threads:
        best = {"old": {}, "new": {}}
        for round_index in range(args.rounds):
            # Each build goes first in every other round: the order a pair of
            # processes runs in must not favour one build.
            for which in ("old", "new") if round_index % 2 == 0 else ("new", "old"):
                times = run(getattr(args, which), cases, threads, args.repeats)
                for label, seconds in times.items():
                    best[which][label] = min(seconds, best[which].get(label, seconds))
        total_old = total_new = 0.0
        for (label, *_), count in zip(cases, counts):
            old, new = best["old"][label] * 1e3, best["new"][label] * 1e3
            total_old, total_new = total_old + count * old, total_new + count * new
            times = f" x{count}" if count > 1 else ""
            print(f"| {label}{times} | {threads} | {old:.3f} | {new:.3f} | {old / new:.2f} |")
        if args.set == "resnet50":
            print(f"| total ({sum(counts)} layers) | {threads} | {total_old:.1f} | {total_new:.1f} | "
                  f"{total_old / total_new:.2f} |")


if __name__ == "__main__":
    main()
