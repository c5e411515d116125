"""``python -m fastconv bench``: fastconv against the installed peers (private).

Each layer is run by every system that is installed (fastconv, NumPy
im2col + matmul, ``torch.nn.functional.conv2d``, ``scipy.signal.correlate``
on small layers), interleaved within each repeat, and the best time of the
repeats is kept. The report is a Markdown table with the time, the effective
GFLOP/s, fastconv's speedup over each peer, the algorithm fastconv ran and the
maximum error of each system against a float64 reference. ``--json`` writes
the raw results, ``--plot`` draws a bar chart (needs matplotlib).
"""

import argparse
import contextlib
import dataclasses
import datetime
import importlib
import json
import os
import platform
import sys
import time
from typing import Optional

import numpy as np

from ._config import config_info
from ._conv import ALGORITHMS, conv2d, plan
from ._layer import Conv2d

__all__ = ["Layer", "DEFAULT_LAYERS", "parse_layers", "add_arguments", "run_bench"]

LAYER_SYNTAX = "N,C,K,H[,k[,stride[,pad[,groups[,dilation]]]]]"
PEERS = ("numpy", "torch", "scipy")
#: scipy.signal.correlate is run only on layers with at most this many
#: multiply-adds (it correlates one output channel per call).
SCIPY_MAX_MACS = 1.2e8
#: Estimated float32 FLOP per cycle per core for each SIMD level (two FMA
#: pipes, as on AMD Zen 5), times an assumed 4.4 GHz: an estimate, not a
#: measurement. float64 is half.
PEAK_FLOP_PER_CYCLE = {"avx512": 64, "avx2": 32, "baseline": 16}
ASSUMED_GHZ = 4.4


@dataclasses.dataclass(frozen=True)
class Layer:
    """A square convolution layer: ``N x C x H x H`` input, ``K`` filters of
    ``kernel x kernel``.

    Parameters
    ----------
    batch, in_channels, out_channels, size : int
        ``N``, ``C``, ``K`` and the input height = width ``H``.
    kernel, stride : int, default=3, 1
    padding : int, optional
        Zero padding on each side; default ``kernel // 2``.
    groups : int, default=1
        Must divide ``C`` and ``K``.
    dilation : int, default=1
    name : str, optional
        A human-readable name (e.g. ``"ResNet-50 conv3_x"``).
    """

    batch: int
    in_channels: int
    out_channels: int
    size: int
    kernel: int = 3
    stride: int = 1
    padding: Optional[int] = None
    groups: int = 1
    dilation: int = 1
    name: str = ""

    def __post_init__(self):
        if self.padding is None:
            object.__setattr__(self, "padding", self.kernel // 2)
        self._validate()

    def _validate(self):
        fields = dataclasses.asdict(self)
        low = {name: value for name, value in fields.items()
               if name != "name" and value < (0 if name == "padding" else 1)}
        if low:
            raise ValueError(f"layer {self.spec}: {', '.join(low)} must be >= 1 "
                             "(padding >= 0)")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"layer {self.spec}: groups={self.groups} must divide C and K")
        if self.output_size < 1:
            raise ValueError(f"layer {self.spec}: the kernel is larger than the padded input")

    @property
    def output_size(self):
        """Output height = width."""
        span = self.dilation * (self.kernel - 1) + 1
        return (self.size + 2 * self.padding - span) // self.stride + 1

    @property
    def macs(self):
        """Multiply-adds of one forward pass."""
        return (self.batch * self.out_channels * (self.in_channels // self.groups)
                * self.kernel ** 2 * self.output_size ** 2)

    @property
    def flops(self):
        """Effective FLOP: ``2 * N * K * (C/groups) * kH * kW * Ho * Wo``."""
        return 2 * self.macs

    @property
    def input_shape(self):
        """(N, C, H, H)."""
        return (self.batch, self.in_channels, self.size, self.size)

    @property
    def weight_shape(self):
        """(K, C // groups, k, k)."""
        return (self.out_channels, self.in_channels // self.groups, self.kernel, self.kernel)

    @property
    def spec(self):
        """The layer in ``--layers`` syntax, trailing defaults left out."""
        values = [self.batch, self.in_channels, self.out_channels, self.size,
                  self.kernel, self.stride, self.padding, self.groups, self.dilation]
        defaults = [None] * 4 + [3, 1, self.kernel // 2, 1, 1]
        while len(values) > 4 and values[-1] == defaults[len(values) - 1]:
            values.pop()
        return ",".join(map(str, values))

    @property
    def label(self):
        """``name (spec)``, or the spec alone."""
        return f"{self.name} ({self.spec})" if self.name else self.spec

    def conv_kwargs(self):
        """stride, padding, groups and dilation as keyword arguments of a conv2d."""
        return {"stride": self.stride, "padding": self.padding, "groups": self.groups,
                "dilation": self.dilation}

    def with_batch(self, batch):
        """This layer with ``N = batch``."""
        return dataclasses.replace(self, batch=batch)

    def data(self, dtype, seed=0):
        """Standard-normal ``(input, weight)`` of ``dtype`` (fixed seed)."""
        rng = np.random.default_rng(seed)
        return (rng.standard_normal(self.input_shape, dtype=dtype),
                rng.standard_normal(self.weight_shape, dtype=dtype))


DEFAULT_LAYERS = (
    Layer(1, 64, 64, 56, name="ResNet-50 conv2_x"),
    Layer(1, 128, 128, 28, name="ResNet-50 conv3_x"),
    Layer(1, 256, 256, 14, name="ResNet-50 conv4_x"),
    Layer(1, 512, 512, 7, name="ResNet-50 conv5_x"),
    Layer(1, 128, 128, 112, name="VGG-16 conv2"),
    Layer(1, 256, 256, 56, name="VGG-16 conv3"),
    Layer(1, 512, 512, 28, name="VGG-16 conv4"),
)


def parse_layers(text):
    """Layers from ``--layers`` text.

    Parameters
    ----------
    text : str
        Layers as ``N,C,K,H[,k[,stride[,pad[,groups[,dilation]]]]]`` separated by spaces
        or semicolons, e.g. ``"1,64,64,56; 8,3,64,224,7,2,3"``.

    Returns
    -------
    tuple of Layer

    Raises
    ------
    ValueError
        For a malformed or inconsistent layer; the message names it.
    """
    layers = []
    for item in text.replace(";", " ").split():
        fields = item.split(",")
        if not 4 <= len(fields) <= 9:
            raise ValueError(f"layer {item!r}: expected {LAYER_SYNTAX}")
        try:
            values = [int(v) for v in fields]
        except ValueError:
            raise ValueError(f"layer {item!r}: values must be integers ({LAYER_SYNTAX})") from None
        layers.append(Layer(*values))
    if not layers:
        raise ValueError(f"no layer given; expected {LAYER_SYNTAX}")
    return tuple(layers)


# -- the systems ---------------------------------------------------------------

class System:
    """One implementation of conv2d being timed.

    Subclasses set ``key`` (``"fastconv"``, ``"numpy"``...) and ``label`` (with
    the version) and implement :meth:`prepare`; :meth:`skip_reason` and
    :meth:`method` have defaults.
    """

    key = ""
    label = ""
    #: Whether the system runs a thread pool: each of its timed calls then
    #: follows an untimed one (see :func:`_timed_call`).
    threaded = True

    def skip_reason(self, layer):
        """Why this system does not run ``layer``, or None."""
        return None

    def method(self, layer, dtype):
        """How the system computes ``layer`` (shown in the table)."""
        return ""

    def prepare(self, layer, x, w):
        """A no-argument callable computing the layer on ``x``, ``w``."""
        raise NotImplementedError


class FastconvSystem(System):
    """fastconv: the functional ``conv2d`` call, or a prepared ``Conv2d``."""

    key = "fastconv"

    def __init__(self, threads, algorithm="auto", prepared=False):
        info = config_info()
        self.label = f"fastconv {info['version']}"
        self.threads, self.algorithm, self.prepared = threads, algorithm, prepared

    def _layer(self, layer, w):
        return Conv2d(w, algorithm=self.algorithm, num_threads=self.threads,
                      **layer.conv_kwargs())

    def skip_reason(self, layer):
        try:
            self._layer(layer, np.zeros(layer.weight_shape, np.float32))
        except ValueError as exc:
            return str(exc)
        return None

    def method(self, layer, dtype):
        """The algorithm the timed call runs: a one-off ``conv2d`` call may
        choose differently from a ``Conv2d`` layer, which keeps its
        transformed weights."""
        chosen = plan(layer.input_shape, layer.weight_shape, dtype=dtype,
                      algorithm=self.algorithm, num_threads=self.threads,
                      prepared=self.prepared, **layer.conv_kwargs())
        name = f"winograd{chosen.tile}" if chosen.tile else chosen.algorithm
        suffix = " (auto)" if self.algorithm == "auto" else ""
        return f"{chosen.path}: {name}{suffix}{', prepared' if self.prepared else ''}"

    def prepare(self, layer, x, w):
        if self.prepared:
            conv = self._layer(layer, w)
            return lambda: conv(x)
        kwargs = layer.conv_kwargs()
        return lambda: conv2d(x, w, algorithm=self.algorithm, num_threads=self.threads,
                              **kwargs)


def im2col_conv2d(x, w, stride, padding, groups, dilation=1):
    """conv2d as im2col + matmul in NumPy, in the dtype of ``x`` and ``w``.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    w : ndarray of shape (K, C // groups, kH, kW)
    stride, padding, groups, dilation : int

    Returns
    -------
    ndarray of shape (N, K, Ho, Wo), C-contiguous
    """
    n, channels = x.shape[:2]
    out_channels, group_in, kernel_h, kernel_w = w.shape
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    span_h, span_w = dilation * (kernel_h - 1) + 1, dilation * (kernel_w - 1) + 1
    windows = np.lib.stride_tricks.sliding_window_view(x, (span_h, span_w), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride, ::dilation, ::dilation]
    out_h, out_w = windows.shape[2:4]
    # (N, G, C/G, Ho, Wo, kH, kW) -> columns (N, G, C/G*kH*kW, Ho*Wo): the copy is im2col.
    windows = windows.reshape(n, groups, group_in, out_h, out_w, kernel_h, kernel_w)
    cols = windows.transpose(0, 1, 2, 5, 6, 3, 4).reshape(
        n, groups, group_in * kernel_h * kernel_w, out_h * out_w)
    filters = w.reshape(groups, out_channels // groups, -1)
    return np.matmul(filters, cols).reshape(n, out_channels, out_h, out_w)


class NumpySystem(System):
    """NumPy: im2col (``sliding_window_view``) + ``matmul`` in the same dtype."""

    key = "numpy"

    def __init__(self):
        self.label = f"numpy {np.__version__}"

    def method(self, layer, dtype):
        return "im2col + matmul"

    def prepare(self, layer, x, w):
        return lambda: im2col_conv2d(x, w, layer.stride, layer.padding, layer.groups,
                                     layer.dilation)


class TorchSystem(System):
    """``torch.nn.functional.conv2d`` on tensors sharing the NumPy arrays."""

    key = "torch"

    def __init__(self, torch, threads):
        self.torch = torch
        torch.set_num_threads(threads)
        self.label = f"torch {torch.__version__}"

    def method(self, layer, dtype):
        return "F.conv2d"

    def prepare(self, layer, x, w):
        torch = self.torch
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        kwargs = layer.conv_kwargs()

        def call():
            with torch.no_grad():
                return torch.nn.functional.conv2d(xt, wt, **kwargs).numpy()
        return call


class ScipySystem(System):
    """``scipy.signal.correlate`` of each output channel over its input
    channels (small layers only)."""

    key = "scipy"
    threaded = False

    def __init__(self, signal):
        self.signal = signal
        self.label = f"scipy {importlib.import_module('scipy').__version__}"

    def skip_reason(self, layer):
        if layer.dilation != 1:
            return "dilated kernels are not run (correlate has no dilation)"
        if layer.macs > SCIPY_MAX_MACS:
            return (f"run only on layers of up to {SCIPY_MAX_MACS:.2g} multiply-adds "
                    "(one correlate call per image and output channel)")
        return None

    def method(self, layer, dtype):
        return "signal.correlate"

    def prepare(self, layer, x, w):
        correlate, s, p = self.signal.correlate, layer.stride, layer.padding
        group_in = layer.in_channels // layer.groups
        group_out = layer.out_channels // layer.groups
        shape = (layer.batch, layer.out_channels, layer.output_size, layer.output_size)

        def call():
            padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
            out = np.empty(shape, x.dtype)
            for n in range(shape[0]):
                for k in range(shape[1]):
                    c = (k // group_out) * group_in
                    plane = correlate(padded[n, c:c + group_in], w[k], mode="valid")
                    out[n, k] = plane[0, ::s, ::s]
            return out
        return call


def make_systems(threads, algorithm="auto", prepared=False, peers=PEERS):
    """fastconv and the ``peers`` that are installed.

    Returns
    -------
    systems : list of System
        fastconv first.
    notes : list of str
        One line per requested peer that is not installed.
    """
    systems, notes = [FastconvSystem(threads, algorithm, prepared)], []
    for peer in peers:
        if peer == "numpy":
            systems.append(NumpySystem())
            continue
        module = _optional_import({"torch": "torch", "scipy": "scipy.signal"}[peer])
        if module is None:
            notes.append(f"{peer}: not installed, not run")
        elif peer == "torch":
            systems.append(TorchSystem(module, threads))
        else:
            systems.append(ScipySystem(module))
    return systems, notes


def _optional_import(name):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# -- reference and error ---------------------------------------------------------

def reference_conv2d(layer, x, w, torch=None):
    """The layer in float64 by torch (when given) or NumPy im2col."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    if torch is None:
        return im2col_conv2d(x, w, layer.stride, layer.padding, layer.groups,
                             layer.dilation)
    with torch.no_grad():
        result = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                                            **layer.conv_kwargs())
    return result.numpy()


def relative_error(result, reference, scale):
    """``max |result - reference| / scale``."""
    diff = np.abs(np.asarray(result, np.float64) - reference)
    return float(diff.max() / scale) if scale else float(diff.max())


# -- running ---------------------------------------------------------------------

class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, one line per
    layer otherwise (logs), nothing when ``enabled`` is false."""

    def __init__(self, total, enabled=True, stream=None, width=24):
        self.total, self.done, self.width = max(total, 1), 0, width
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.start = time.perf_counter()
        self._shown = 0  # length of the bar on screen

    def step(self, what):
        """Count one unit of work, described by ``what``."""
        self.done += 1
        if self.tty:
            filled = self.width * self.done // self.total
            bar = (f"[{'#' * filled}{'-' * (self.width - filled)}] {self.done}/{self.total} "
                   f"{self.elapsed():4.0f} s  {what}")
            self._write("\r" + bar.ljust(self._shown))
            self._shown = len(bar)

    def note(self, line):
        """Print ``line`` with the elapsed time on its own line (on a
        terminal, over the bar)."""
        if self.enabled:
            self.clear()
            self._write(f"[{self.elapsed():4.0f} s] {line}\n")

    def elapsed(self):
        """Seconds since the bar was made."""
        return time.perf_counter() - self.start

    def clear(self):
        """Erase the bar."""
        if self.tty and self._shown:
            self._write("\r" + " " * self._shown + "\r")
            self._shown = 0

    def _write(self, text):
        self.stream.write(text)
        self.stream.flush()


def bench_layer(layer, systems, dtype, repeats, progress, torch=None):
    """Time ``layer`` on every system, interleaved, and measure the errors.

    Each repeat times one call of every system in turn (a threaded system's
    timed call follows an untimed one, see :func:`_timed_call`); the best of
    the repeats is kept. The error is that of the warm-up call.

    Returns
    -------
    dict
        ``layer`` (its fields), ``flops`` and ``results``: per system key,
        ``times_s`` (one per repeat), ``best_ms``, ``gflops``, ``max_error``,
        ``method`` and ``label``, or ``skipped`` with the reason.
    """
    x, w = layer.data(dtype)
    results, calls = _warm_up(layer, systems, x, w, progress, torch)
    for _ in range(repeats):
        for key, (call, settle) in calls.items():
            results[key]["times_s"].append(_timed_call(call, settle))
            progress.step(f"{layer.label}: {key}")
    for result in results.values():
        if "times_s" in result:
            best = min(result["times_s"])
            result["best_ms"] = best * 1e3
            result["gflops"] = layer.flops / best / 1e9
    progress.note(f"done: {layer.label}")
    return {"layer": dataclasses.asdict(layer), "label": layer.label,
            "flops": layer.flops, "results": results}


def _warm_up(layer, systems, x, w, progress, torch):
    """Prepare and call each system once; its result gives the error.

    Returns
    -------
    results : dict
        Per system key: ``label``, and ``method``, ``max_error``, ``times_s``
        (empty) or ``skipped``.
    calls : dict
        Per system key that runs: ``(call, threaded)``.
    """
    reference = reference_conv2d(layer, x, w, torch)
    scale = float(np.max(reference_conv2d(layer, np.abs(x), np.abs(w), torch)))
    results, calls = {}, {}
    for system in systems:
        reason = system.skip_reason(layer)
        if reason:
            results[system.key] = {"label": system.label, "skipped": reason}
            continue
        call = system.prepare(layer, x, w)
        calls[system.key] = (call, system.threaded)
        results[system.key] = {"label": system.label,
                               "method": system.method(layer, x.dtype),
                               "max_error": relative_error(call(), reference, scale),
                               "times_s": []}
        progress.step(f"{layer.label}: {system.key} warm-up")
    return results, calls


def _timed_call(call, settle):
    """Seconds of one ``call()``; with ``settle``, after an untimed call.

    The untimed call lets the thread pool of the system timed before (OpenMP
    or OpenBLAS workers still spinning after their last task) go idle, and
    wakes this system's own pool: measured here, a fastconv or torch call
    right after a NumPy matmul took 2-4x longer than in a loop of its own.
    """
    if settle:
        call()
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def run_bench(layers, systems, dtype="float32", repeats=7, progress=True, torch=None):
    """Benchmark ``layers`` on ``systems``; see :func:`bench_layer`.

    Returns
    -------
    list of dict
        One :func:`bench_layer` result per layer.
    """
    steps = sum((repeats + 1) * sum(s.skip_reason(layer) is None for s in systems)
                for layer in layers)
    bar = Progress(steps, enabled=progress)
    try:
        return [bench_layer(layer, systems, np.dtype(dtype), repeats, bar, torch)
                for layer in layers]
    finally:
        bar.clear()


# -- machine facts ---------------------------------------------------------------

def cpu_name():
    """The CPU's model name (``/proc/cpuinfo`` on Linux), or the platform's."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def estimated_peak(dtype, isa):
    """Estimated peak GFLOP/s of one core (see PEAK_FLOP_PER_CYCLE)."""
    per_cycle = PEAK_FLOP_PER_CYCLE.get(isa, PEAK_FLOP_PER_CYCLE["baseline"])
    if np.dtype(dtype) == np.float64:
        per_cycle //= 2
    return per_cycle * ASSUMED_GHZ


def blas_limits(threads):
    """A context limiting NumPy's BLAS to ``threads`` (threadpoolctl), and a note.

    Returns
    -------
    context : context manager
        ``threadpoolctl.threadpool_limits`` or a no-op.
    note : str
        The BLAS library and its thread count, or why it is not limited.
    """
    try:
        import threadpoolctl
    except ImportError:
        return (contextlib.nullcontext(),
                f"BLAS of NumPy/SciPy not limited to {threads} (threadpoolctl not installed; "
                f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')})")
    libs = [f"{i['internal_api']} {i['version']}" for i in threadpoolctl.threadpool_info()
            if i["user_api"] == "blas"]
    note = (f"BLAS of NumPy/SciPy ({', '.join(libs) or 'none found'}) limited to {threads} "
            "by threadpoolctl")
    return threadpoolctl.threadpool_limits(limits=threads, user_api="blas"), note


def machine_header(settings, blas_note, systems):
    """The lines printed above the table: CPU, threads, versions, settings."""
    info = config_info()
    openmp = "OpenMP" if info["openmp"] else "serial build"
    versions = ", ".join([f"Python {platform.python_version()}"]
                         + [s.label for s in systems])
    timed = ("a prepared Conv2d layer (weights transformed once)" if settings["prepared"]
             else "the conv2d call (Winograd weights transformed in each call)")
    return [
        f"CPU: {cpu_name()} ({os.cpu_count()} logical CPUs), {platform.system()} "
        f"{platform.machine()}; fastconv SIMD {info['isa']}, {openmp}",
        f"Threads: {settings['threads']} (fastconv num_threads"
        f"{', torch.set_num_threads' if any(s.key == 'torch' for s in systems) else ''}); "
        f"{blas_note}",
        f"Versions: {versions}",
        f"dtype {settings['dtype']}, best of {settings['repeats']} interleaved repeats after "
        "a warm-up (each threaded system's timed call right after an untimed one); "
        f"fastconv algorithm={settings['algorithm']!r}, timed as {timed}",
    ]


# -- report ----------------------------------------------------------------------

def _fmt(value):
    """Three significant digits without an exponent (1234, 123, 12.3, 1.23, 0.123)."""
    rounded = float(f"{value:.3g}")
    if rounded >= 100 or rounded == 0:
        return f"{value:.0f}"
    return f"{rounded:.{2 - int(np.floor(np.log10(rounded)))}f}"


def table_rows(records):
    """Rows of the report table and the footnotes of skipped runs."""
    rows, notes = [], {}
    for record in records:
        results = record["results"]
        base = results["fastconv"].get("best_ms")
        for index, (key, result) in enumerate(results.items()):
            label = record["label"] if index == 0 else ""
            if "skipped" in result:
                mark = notes.setdefault((key, result["skipped"]), "*" * (len(notes) + 1))
                rows.append([label, result["label"], "", f"skipped{mark}", "", "", ""])
                continue
            speedup = ("" if key == "fastconv" or base is None
                       else _fmt(result["best_ms"] / base) + "x")
            rows.append([label, result["label"], result["method"], _fmt(result["best_ms"]),
                         _fmt(result["gflops"]), speedup, f"{result['max_error']:.1e}"])
    return rows, [f"{mark} {key}: {reason}" for (key, reason), mark in notes.items()]


def markdown_table(headers, rows, right=()):
    """A Markdown table with padded columns; ``right`` are right-aligned columns."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]

    def line(cells):
        padded = [str(c).rjust(w) if i in right else str(c).ljust(w)
                  for i, (c, w) in enumerate(zip(cells, widths))]
        return "| " + " | ".join(padded) + " |"
    rule = ["-" * (w - 1) + ":" if i in right else "-" * w for i, w in enumerate(widths)]
    return "\n".join([line(headers), line(rule)] + [line(r) for r in rows])


TABLE_HEADERS = ["layer", "system", "method", "ms", "GFLOP/s", "fastconv speedup",
                 "max error"]


def report(records, header, reference_name):
    """The full text report: header lines, table, footnotes."""
    rows, notes = table_rows(records)
    legend = [
        "GFLOP/s = 2*N*K*(C/groups)*kH*kW*Ho*Wo / best time; fastconv speedup = peer ms / "
        "fastconv ms;",
        f"max error = max|y - y64| / max(conv(|x|, |w|)), y64 from {reference_name} "
        "(computed once per layer, not timed).",
    ]
    return "\n".join(header + ["", markdown_table(TABLE_HEADERS, rows, right=(3, 4, 5, 6)),
                               ""] + legend + notes)


def plot(records, path, peak, title):
    """Bar chart of GFLOP/s per layer and system, with the peak as a line.

    Parameters
    ----------
    records : list of dict
        :func:`run_bench` results.
    path : str
        Output image (PNG).
    peak : dict
        ``gflops`` (for the thread count) and ``source``, from :func:`peak_line`.
    title : str
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(records[0]["results"])
    width = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(records) + 2), 4.5))
    for i, key in enumerate(keys):
        values = [r["results"][key].get("gflops", np.nan) for r in records]  # nan: skipped
        positions = [j + (i - (len(keys) - 1) / 2) * width for j in range(len(records))]
        ax.bar(positions, values, width, label=records[0]["results"][key]["label"])
    ax.axhline(peak["gflops"], color="black", linestyle="--", linewidth=1,
               label=f"peak {peak['gflops']:.0f} GFLOP/s ({peak['source']})")
    ax.set_xticks(range(len(records)))
    ax.set_xticklabels([r["label"].replace(" (", "\n(") for r in records], fontsize=7)
    ax.set_ylabel("effective GFLOP/s")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def peak_line(per_core, dtype, threads):
    """The peak drawn on the plot: ``per_core`` GFLOP/s (None: the estimate
    of :func:`estimated_peak`) times ``threads``.

    Returns
    -------
    dict
        ``gflops`` and ``source``, which says it is not a measurement.
    """
    if per_core is None:
        per_core = estimated_peak(dtype, config_info()["isa"])
        source = f"estimate: {per_core:.0f} per core x {threads} threads, not measured"
    else:
        source = f"--peak {per_core:g} per core x {threads} threads, not measured"
    return {"gflops": per_core * threads, "source": source}


# -- command line ----------------------------------------------------------------

def _layers_arg(text):
    try:
        return parse_layers(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _peers_arg(text):
    peers = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}")
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
             "e.g. \"1,64,64,56; 8,3,64,224,7,2,3\". Default: the 3x3 layers of ResNet-50 "
             f"and VGG-16: {default_layers}")
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
    parser.add_argument("--repeats", type=_positive_int, default=7,
                        help="timed repeats per system, interleaved; the best is kept "
                             "(default: %(default)s)")
    parser.add_argument("--peers", type=_peers_arg, default=PEERS, metavar="LIST",
                        help="comma-separated peers to run if installed (default: "
                             f"{','.join(PEERS)}; scipy only on layers up to "
                             f"{SCIPY_MAX_MACS:.2g} multiply-adds)")
    parser.add_argument("--json", metavar="PATH", help="write the raw results as JSON")
    parser.add_argument("--plot", metavar="PATH.png",
                        help="bar chart of GFLOP/s per layer and system (needs matplotlib: "
                             "pip install matplotlib)")
    parser.add_argument("--peak", type=float, metavar="GFLOPS",
                        help="peak GFLOP/s of one core drawn (times --threads) on the plot. "
                             "Default: an estimate, not a measurement: "
                             f"{ASSUMED_GHZ} GHz x FLOP/cycle of the SIMD level "
                             "(AVX-512: 64 float32, i.e. ~280 GFLOP/s; AVX2: 32; halved "
                             "for float64)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar on stderr")


def main(args):
    """Run ``python -m fastconv bench`` with parsed ``args``; returns 0."""
    if args.plot:
        _require_matplotlib()
    threads = args.threads or config_info()["num_threads"]
    layers = args.layers if args.batch is None else tuple(
        layer.with_batch(args.batch) for layer in args.layers)
    systems, missing = make_systems(threads, args.algorithm, args.prepared, args.peers)
    torch = next((s.torch for s in systems if isinstance(s, TorchSystem)), None)
    settings = {"threads": threads, "dtype": args.dtype, "repeats": args.repeats,
                "algorithm": args.algorithm, "prepared": args.prepared}
    limits, blas_note = blas_limits(threads)
    with limits:
        records = run_bench(layers, systems, args.dtype, args.repeats, args.progress, torch)
    summary = {"machine": machine_header(settings, blas_note, systems), "settings": settings,
               "reference": "torch float64" if torch is not None else "NumPy im2col in float64",
               "peak": peak_line(args.peak, args.dtype, threads), "layers": records}
    print(report(records, summary["machine"], summary["reference"]))
    for line in missing:
        print(line)
    if args.json:
        _write_json(args.json, summary)
        print(f"raw results written to {args.json}")
    if args.plot:
        plot(records, args.plot, summary["peak"],
             f"{cpu_name()}, {threads} threads, {args.dtype}")
        print(f"plot written to {args.plot}")
    return 0


def _require_matplotlib():
    if _optional_import("matplotlib") is None:
        raise SystemExit("error: --plot needs matplotlib: pip install matplotlib "
                         "(or pip install \".[bench]\" from a checkout)")


def _write_json(path, data):
    data = dict(data, date=datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"))
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
