"""Running ``python -m fastconv bench``: each layer on every system,
interleaved, with the error of each against the float64 reference."""

import contextlib
import dataclasses
import os
import sys
import time

import numpy as np

from .layers import distinct_layers
from .reference import error_scale, reference_conv2d, relative_error
from .timing import interleaved_times

__all__ = ["Progress", "bench_layer", "run_bench", "blas_limits"]


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
    timed call follows an untimed settle call, see :mod:`.timing`); the best
    of the repeats is kept. The error is that of the warm-up call.

    Returns
    -------
    dict
        ``layer`` (its fields), ``flops`` and ``results``: per system key,
        ``times_s`` (one per repeat), ``best_ms``, ``gflops``, ``max_error``,
        ``label`` and the fields of :meth:`.systems.System.describe`
        (``method``), or ``skipped`` with the reason.
    """
    x, w = layer.data(dtype)
    results, calls = _warm_up(layer, systems, x, w, progress, torch)
    times = interleaved_times({key: call for key, (call, _) in calls.items()}, repeats,
                              settle={key: settle for key, (_, settle) in calls.items()},
                              warm_up=False,
                              step=lambda key: progress.step(f"{layer.label}: {key}"))
    for key, values in times.items():
        best = min(values)
        results[key].update(times_s=values, best_ms=best * 1e3,
                            gflops=layer.flops / best / 1e9)
    progress.note(f"done: {layer.label}")
    return {"layer": dataclasses.asdict(layer), "label": layer.label,
            "flops": layer.flops, "results": results}


def _warm_up(layer, systems, x, w, progress, torch):
    """Prepare and call each system once; its result gives the error.

    Returns
    -------
    results : dict
        Per system key: ``label``, and ``max_error`` and the fields of
        :meth:`.systems.System.describe`, or ``skipped``.
    calls : dict
        Per system key that runs: ``(call, threaded)``.
    """
    reference = reference_conv2d(layer, x, w, torch)
    scale = error_scale(layer, x, w, torch)
    results, calls = {}, {}
    for system in systems:
        reason = system.skip_reason(layer, x.dtype)
        if reason:
            results[system.key] = {"label": system.label, "skipped": reason}
            continue
        call = system.prepare(layer, x, w)
        calls[system.key] = (call, system.threaded)
        results[system.key] = {"label": system.label, **system.describe(layer, x.dtype),
                               "max_error": relative_error(call(), reference, scale)}
        progress.step(f"{layer.label}: {system.key} warm-up")
    return results, calls


def run_bench(layers, systems, dtype="float32", repeats=7, progress=True, torch=None):
    """Benchmark ``layers`` on ``systems``; see :func:`bench_layer`. A layer
    that occurs more than once (the same but for its name) is timed once.

    Returns
    -------
    list of dict
        One :func:`bench_layer` result per distinct layer, with ``count``:
        how often it occurs in ``layers`` (its label then ends in ``x<count>``).
    """
    distinct = distinct_layers(layers)
    steps = sum((repeats + 1) * sum(s.skip_reason(layer, dtype) is None for s in systems)
                for layer, _ in distinct)
    bar = Progress(steps, enabled=progress)
    records = []
    try:
        for layer, count in distinct:
            record = bench_layer(layer, systems, np.dtype(dtype), repeats, bar, torch)
            record["count"] = count
            if count > 1:
                record["label"] += f" x{count}"
            records.append(record)
        return records
    finally:
        bar.clear()


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
