"""``python -m fastconv bench --plot``: a bar chart of GFLOP/s per layer and
system, with an estimated peak drawn as a line (needs matplotlib)."""

import numpy as np

from .._config import config_info
from .systems import optional_import

__all__ = ["INSTALL_HINT", "require_matplotlib", "plot", "peak_line", "estimated_peak",
           "PEAK_FLOP_PER_CYCLE", "ASSUMED_GHZ"]

#: Estimated float32 FLOP per cycle per core for each SIMD level (two FMA
#: pipes, as on AMD Zen 5), times an assumed 4.4 GHz: an estimate, not a
#: measurement. float64 is half.
PEAK_FLOP_PER_CYCLE = {"avx512": 64, "avx2": 32, "baseline": 16}
ASSUMED_GHZ = 4.4
#: How to install matplotlib for ``--plot`` (its help and the error without it).
INSTALL_HINT = "pip install matplotlib (or pip install \".[bench]\" from a checkout)"


def require_matplotlib():
    """Exit with the one message saying ``--plot`` needs matplotlib, when it
    is not installed."""
    if optional_import("matplotlib") is None:
        raise SystemExit(f"error: --plot needs matplotlib: {INSTALL_HINT}")


def plot(records, path, peak, title):
    """Bar chart of GFLOP/s per layer and system, with the peak as a line.

    Parameters
    ----------
    records : list of dict
        :func:`.bench.run_bench` results.
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


def estimated_peak(dtype, isa):
    """Estimated peak GFLOP/s of one core (see PEAK_FLOP_PER_CYCLE)."""
    per_cycle = PEAK_FLOP_PER_CYCLE.get(isa, PEAK_FLOP_PER_CYCLE["baseline"])
    if np.dtype(dtype) == np.float64:
        per_cycle //= 2
    return per_cycle * ASSUMED_GHZ


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
