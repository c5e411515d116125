"""The text report of ``python -m fastconv bench``: the machine header and
the Markdown table of results."""

import os
import platform
from typing import Callable, NamedTuple

import numpy as np

from .._config import config_info

__all__ = ["Column", "COLUMNS", "TABLE_HEADERS", "table_rows", "markdown_table", "report",
           "machine_header", "cpu_name", "peak_line", "add_peak_percent", "network_totals",
           "total_lines"]


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


def machine_header(settings, blas_note, systems):
    """The lines printed above the table: CPU, threads, versions, settings."""
    info = config_info()
    openmp = "OpenMP" if info["openmp"] else "serial build"
    versions = ", ".join([f"Python {platform.python_version()}"]
                         + [s.label for s in systems])
    timed = ("a prepared Conv2d layer (weights transformed once)" if settings["prepared"]
             else "the conv2d call (Winograd weights transformed in each call)")
    if settings.get("also_prepared") and not settings["prepared"]:
        timed += " and, as \"fastconv prepared\", a prepared Conv2d layer"
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


def peak_line(peak):
    """The header line that says what "% of peak" is measured against."""
    line = (f"Peak: {peak['gflops']:.0f} GFLOP/s on {peak['threads']} thread"
            f"{'s' if peak['threads'] > 1 else ''}")
    if peak["threads"] > 1:
        line += f" ({peak['one_thread']:.0f} on 1)"
    return line + f", {peak['source']}"


def add_peak_percent(records, peak_gflops):
    """Each result's GFLOP/s as a percentage of ``peak_gflops`` (Winograd,
    which multiplies less, can pass 100%)."""
    for record in records:
        for result in record["results"].values():
            if "gflops" in result and peak_gflops > 0:
                result["peak_percent"] = 100.0 * result["gflops"] / peak_gflops


def _fmt(value):
    """Three significant digits without an exponent (1234, 123, 12.3, 1.23, 0.123)."""
    rounded = float(f"{value:.3g}")
    if rounded >= 100 or rounded == 0:
        return f"{value:.0f}"
    return f"{rounded:.{2 - int(np.floor(np.log10(rounded)))}f}"


def _speedup(key, result, base_ms):
    if key == "fastconv" or base_ms is None:
        return ""
    return _fmt(result["best_ms"] / base_ms) + "x"


class Column(NamedTuple):
    """A column of the table after "layer" and "system": its header, its
    cell ``cell(system_key, result, fastconv_best_ms)`` for a system that
    ran (a result of :func:`.bench.bench_layer`), and its alignment."""

    header: str
    cell: Callable
    right: bool = False


#: The columns after "layer" and "system", in order. A result field that
#: :meth:`.systems.System.describe` adds is shown by adding a column here.
COLUMNS = (
    Column("method", lambda key, result, base: result["method"]),
    Column("path", lambda key, result, base: result.get("path", "")),
    Column("ms", lambda key, result, base: _fmt(result["best_ms"]), right=True),
    Column("GFLOP/s", lambda key, result, base: _fmt(result["gflops"]), right=True),
    Column("% of peak", lambda key, result, base: (
        f"{result['peak_percent']:.0f}%" if "peak_percent" in result else ""), right=True),
    Column("fastconv speedup", _speedup, right=True),
    Column("max error", lambda key, result, base: f"{result['max_error']:.1e}", right=True),
)
#: The column where a skipped system's row says "skipped" (with a footnote mark).
SKIPPED_COLUMN = "ms"
TABLE_HEADERS = ["layer", "system"] + [column.header for column in COLUMNS]


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
                cells = [f"skipped{mark}" if column.header == SKIPPED_COLUMN else ""
                         for column in COLUMNS]
            else:
                cells = [column.cell(key, result, base) for column in COLUMNS]
            rows.append([label, result["label"]] + cells)
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


def network_totals(records):
    """Per system, the sum over the layers of each layer's best time times
    its ``count`` (a layer timed once for all its occurrences).

    Returns
    -------
    dict
        Per system key: ``label``, and ``total_ms`` (None when the system
        skipped a layer) and ``skipped`` (how many distinct layers it skipped).
    """
    totals = {}
    for record in records:
        for key, result in record["results"].items():
            total = totals.setdefault(key, {"label": result["label"], "total_ms": 0.0,
                                            "skipped": 0})
            if "skipped" in result:
                total["skipped"] += 1
            else:
                total["total_ms"] += record.get("count", 1) * result["best_ms"]
    for total in totals.values():
        if total["skipped"]:
            total["total_ms"] = None
    return totals


def total_lines(records):
    """The network total below the table: each system's summed time and
    fastconv's speedup on the sum; nothing for a single layer."""
    occurrences = sum(record.get("count", 1) for record in records)
    if occurrences < 2:
        return []
    totals = network_totals(records)
    base = totals["fastconv"]["total_ms"]
    rows, notes = [], []
    for key, total in totals.items():
        if total["total_ms"] is None:
            notes.append(f"{total['label']}: skipped {total['skipped']} of the {len(records)} "
                         "distinct layers, no total")
            continue
        speedup = ("" if key == "fastconv" or base is None
                   else _fmt(total["total_ms"] / base) + "x")
        rows.append([total["label"], _fmt(total["total_ms"]), speedup])
    repeats = ("" if occurrences == len(records) else
               f", {len(records)} distinct: each distinct layer timed once and its best "
               "time counted as often as the layer occurs")
    return (["", f"Total over the {occurrences} layers{repeats}:", ""]
            + [markdown_table(["system", "total ms", "fastconv speedup"], rows, right=(1, 2))]
            + notes)


def report(records, header, reference_name):
    """The full text report: header lines, table, footnotes."""
    rows, notes = table_rows(records)
    right = [2 + i for i, column in enumerate(COLUMNS) if column.right]
    legend = [
        "GFLOP/s = 2*N*K*(C/groups)*kH*kW*Ho*Wo / best time (Winograd multiplies less, so "
        "its % of peak can pass 100%); fastconv speedup = peer ms / fastconv ms;",
        f"max error = max|y - y64| / max(conv(|x|, |w|)), y64 from {reference_name} "
        "(computed once per layer, not timed).",
    ]
    return "\n".join(header + ["", markdown_table(TABLE_HEADERS, rows, right=right), ""]
                     + legend + notes + total_lines(records))
