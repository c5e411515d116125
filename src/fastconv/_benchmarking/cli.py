"""``python -m fastconv bench``: fastconv against the installed peers.

Each layer is run by every system that is installed (fastconv, NumPy
im2col + matmul, ``torch.nn.functional.conv2d``, ``scipy.signal.correlate``
on small layers; ONNX Runtime and OpenVINO when ``--peers`` names them),
interleaved within each repeat, and the best time of the repeats is kept.
A layer that occurs more than once is timed once; below the table, the total
over all the layers (a whole network: ``--layers resnet50``) per system. The report is a Markdown table with the time, the effective
GFLOP/s and its share of the machine's multiply-add peak (measured at the
start, ``fastconv._cpu.fma_peak``), fastconv's speedup over each peer, the
algorithm and kernel path fastconv ran and the maximum error of each system
against a float64 reference. ``--json`` writes
the raw results, ``--plot`` draws a bar chart (needs matplotlib).
"""

import argparse
import datetime
import json

from .._config import config_info
from .._conv import ALGORITHMS
from . import plot as plotting
from .bench import blas_limits, run_bench
from .layers import DEFAULT_LAYERS, LAYER_SETS, LAYER_SYNTAX, parse_layers
from .ops import SETS, run_set
from .peak import given_peak, peak_report
from .reference import reference_name
from .report import (add_peak_percent, cpu_name, machine_header, network_totals, peak_line,
                     report)
from .systems import (ALL_PEERS, OPT_IN_PEERS, PEERS, SCIPY_MAX_MACS, SCIPY_MAX_PLANES,
                      TorchSystem, make_systems)

__all__ = ["add_arguments", "main"]


def _layers_arg(text):
    try:
        return parse_layers(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _peers_arg(text):
    peers = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = sorted(set(peers) - set(ALL_PEERS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(ALL_PEERS)}")
    return peers


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {value}")
    return value


def add_arguments(parser):
    """Add the ``bench`` options to an :class:`argparse.ArgumentParser`."""
    default_layers = "; ".join(layer.spec for layer in DEFAULT_LAYERS)
    parser.add_argument(
        "--layers", type=_layers_arg, default=DEFAULT_LAYERS, metavar="LAYERS",
        help=f"layers as {LAYER_SYNTAX} (square H x H input, k x k kernel; defaults: "
             "k=3, stride=1, pad=k//2, groups=1), separated by spaces or semicolons, "
             "e.g. \"1,64,64,56; 8,3,64,224,7,2,3\", or a named set: "
             f"{', '.join(LAYER_SETS)} (large-kernel: where the FFT pays; resnet50: the 53 "
             "convolutions of torchvision's ResNet-50, batch 1, 224x224). Default: the "
             f"3x3 layers of ResNet-50 and VGG-16: {default_layers}")
    parser.add_argument("--batch", type=_positive_int, metavar="N",
                        help="batch size N for every layer (default: each layer's own)")
    parser.add_argument("--threads", type=_positive_int, metavar="T",
                        help="threads for fastconv, torch and NumPy's BLAS (default: "
                             f"OpenMP's default, here {config_info()['num_threads']})")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="auto",
                        help="fastconv's algorithm (default: %(default)s)")
    parser.add_argument("--prepared", action="store_true",
                        help="time a prepared fastconv.Conv2d layer (weights packed or "
                             "transformed once) instead of the functional conv2d call")
    parser.add_argument("--also-prepared", action="store_true",
                        help="time a prepared fastconv.Conv2d layer beside the conv2d call "
                             "(a \"fastconv prepared\" row per layer and in the total)")
    parser.add_argument("--repeats", type=_positive_int, default=7,
                        help="timed repeats per system, interleaved; the best is kept "
                             "(default: %(default)s)")
    parser.add_argument("--peers", type=_peers_arg, default=PEERS, metavar="LIST",
                        help="comma-separated peers to run if installed (default: "
                             f"{','.join(PEERS)}; scipy only on layers up to "
                             f"{SCIPY_MAX_MACS:.2g} multiply-adds, or of at most "
                             f"{SCIPY_MAX_PLANES} single-channel planes). Run only when "
                             f"named: {', '.join(OPT_IN_PEERS)} (float32; pip install "
                             "onnxruntime onnx, pip install openvino)")
    parser.add_argument("--json", metavar="PATH", help="write the raw results as JSON")
    parser.add_argument("--plot", metavar="PATH.png",
                        help="bar chart of GFLOP/s per layer and system (needs matplotlib: "
                             f"{plotting.INSTALL_HINT})")
    parser.add_argument("--peak", type=float, metavar="GFLOPS",
                        help="peak GFLOP/s of one core, times --threads, for the %% of peak "
                             "column and the plot. Default: measured at the start of the "
                             "run (python -m fastconv peak)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar on stderr")
    parser.add_argument("--set", choices=SETS, dest="op_set",
                        help="instead of conv2d layers: conv_transpose2d on U-Net decoder "
                             "layers, or the input and weight gradients of ResNet layers, "
                             "against PyTorch (needs torch); --threads and --repeats apply")


def main(args):
    """Run ``python -m fastconv bench`` with parsed ``args``; returns 0."""
    if args.op_set:
        print(run_set(args.op_set, args.threads or config_info()["num_threads"],
                      args.repeats))
        return 0
    if args.plot:
        plotting.require_matplotlib()
    threads = args.threads or config_info()["num_threads"]
    layers = args.layers if args.batch is None else tuple(
        layer.with_batch(args.batch) for layer in args.layers)
    systems, missing = make_systems(threads, args.algorithm, args.prepared, args.peers,
                                    args.also_prepared)
    torch = next((s.torch for s in systems if isinstance(s, TorchSystem)), None)
    settings = {"threads": threads, "dtype": args.dtype, "repeats": args.repeats,
                "algorithm": args.algorithm, "prepared": args.prepared,
                "also_prepared": args.also_prepared}
    peak = (peak_report(threads, args.dtype) if args.peak is None
            else given_peak(args.peak, threads))
    limits, blas_note = blas_limits(threads)
    with limits:
        records = run_bench(layers, systems, args.dtype, args.repeats, args.progress, torch)
    add_peak_percent(records, peak["gflops"])
    summary = {"machine": machine_header(settings, blas_note, systems) + [peak_line(peak)],
               "settings": settings, "reference": reference_name(torch), "peak": peak,
               "layers": records, "totals": network_totals(records)}
    print(report(records, summary["machine"], summary["reference"]))
    for line in missing:
        print(line)
    if args.json:
        _write_json(args.json, summary)
        print(f"raw results written to {args.json}")
    if args.plot:
        plotting.plot(records, args.plot, summary["peak"],
                      f"{cpu_name()}, {threads} threads, {args.dtype}")
        print(f"plot written to {args.plot}")
    return 0


def _write_json(path, data):
    data = dict(data, date=datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"))
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
