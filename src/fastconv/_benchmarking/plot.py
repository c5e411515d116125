"""``python -m fastconv bench --plot``: a bar chart of GFLOP/s per layer and
system, with the measured multiply-add peak drawn as a line (needs
matplotlib)."""

from .systems import optional_import

__all__ = ["INSTALL_HINT", "require_matplotlib", "plot"]

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
        ``gflops`` (for the thread count) and ``source``, from
        :func:`.peak.peak_report` (measured) or ``--peak``.
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
