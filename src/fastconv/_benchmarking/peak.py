"""The machine's measured multiply-add peak, for the bench report, its plot
and ``python -m fastconv peak``.

:func:`fastconv._cpu.fma_peak` times an inline-assembly loop of independent
multiply-adds (``_kernels/fma_peak.hpp``): the most GFLOP/s the cores can
execute, which a direct kernel approaches and Winograd's *effective* GFLOP/s
(counted as the direct algorithm's multiply-adds) may exceed. An estimate
from a clock and a FLOP-per-cycle table is no substitute: clocks vary, and
some CPUs run a 512-bit FMA as two 256-bit halves.
"""

import numpy as np

from .. import _cpu, _forksafe

__all__ = ["measure", "peak_report", "main"]


def measure(threads, dtype="float32", level=None):
    """Measured peak GFLOP/s of ``threads`` threads for ``dtype`` at ``level``
    (default: the level in use). float64 has half float32's lanes per
    instruction, so half its peak."""
    gflops = _forksafe.call(_cpu.fma_peak, threads, threads, level)
    return gflops / 2 if np.dtype(dtype) == np.float64 else gflops


def peak_report(threads, dtype="float32"):
    """The bench's peak: measured for 1 thread and for ``threads``, at the
    level in use. Returns a dict with ``gflops`` (``threads`` threads),
    ``one_thread``, ``threads``, ``level`` and ``source``."""
    level = _cpu.active_isa()
    one = measure(1, dtype, level)
    if one == 0:
        # fma_peak.hpp's loops are x86-64 assembly (GCC/Clang); elsewhere
        # (aarch64, MSVC) fc_fma_peak_flop is 0: nothing was measured.
        return {"gflops": 0.0, "one_thread": 0.0, "threads": threads, "level": level,
                "source": "not measured: no multiply-add loop for this CPU or "
                          "compiler (give one with --peak)"}
    both = one if threads == 1 else measure(threads, dtype, level)
    return {"gflops": both, "one_thread": one, "threads": threads, "level": level,
            "source": f"measured: {level} multiply-add loop, fastconv._cpu.fma_peak"}


def given_peak(per_core, threads):
    """A peak given on the command line (``--peak``): per core x threads."""
    return {"gflops": per_core * threads, "one_thread": per_core, "threads": threads,
            "level": _cpu.active_isa(),
            "source": f"--peak {per_core:g} per core x {threads} threads, not measured"}


def main(args):
    """``python -m fastconv peak``: the peak of every level the CPU runs, on
    1 thread and on each thread count asked for."""
    levels = _cpu.ISA_LEVELS[:_cpu.ISA_LEVELS.index(_cpu.cpu_isa()) + 1]
    counts = sorted({1, *args.threads})
    print("Measured float32 multiply-add peak, GFLOP/s (inline-assembly loop of 12 "
          "independent multiply-adds per iteration; float64: half)")
    print("| level | " + " | ".join(f"{t} thread{'s' if t > 1 else ''}" for t in counts) + " |")
    print("| --- |" + " ---: |" * len(counts))
    for level in levels:
        values = [measure(t, "float32", level) for t in counts]
        marker = " (in use)" if level == _cpu.active_isa() else ""
        print(f"| {level}{marker} | " + " | ".join(f"{v:.0f}" for v in values) + " |")
    return 0
