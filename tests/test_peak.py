"""The measured multiply-add peak (fastconv._cpu.fma_peak): a loop the
compiler cannot fold, at every SIMD level the CPU runs, and the commands
that report it. Its speed is not asserted (speed belongs in benchmarks):
only that it measures something, refuses nonsense, and is the loop it says."""

import math
import platform
import re
import shutil
import subprocess
import sys

import pytest

from fastconv import _cpu

X86 = platform.machine().lower() in ("x86_64", "amd64")
# The loops are x86-64 inline assembly, built by GCC/Clang only; a build
# without them (MSVC, FASTCONV_NO_VECTOR_EXTENSIONS) measures 0.
HAS_LOOPS = X86 and _cpu.fma_peak(1, seconds=0.001, repeats=1) > 0
LEVELS = _cpu.ISA_LEVELS[:_cpu.ISA_LEVELS.index(_cpu.cpu_isa()) + 1]


@pytest.mark.skipif(not HAS_LOOPS, reason="the loops are x86-64 assembly (GCC/Clang)")
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("threads", [1, 2])
def test_every_level_measures_a_peak(level, threads):
    gflops = _cpu.fma_peak(threads, level, seconds=0.002, repeats=1)
    assert math.isfinite(gflops) and gflops > 0


def test_nonsense_is_refused():
    for kwargs in (dict(threads=0), dict(repeats=0), dict(seconds=0.0), dict(seconds=-1.0)):
        with pytest.raises(ValueError):
            _cpu.fma_peak(**kwargs)
    with pytest.raises(ValueError):
        _cpu.fma_peak(1, "avx1024")
    if _cpu.cpu_isa() != "avx512":
        with pytest.raises(ValueError, match="cannot run"):
            _cpu.fma_peak(1, "avx512")


# The instructions each level's loop body must hold, 12 independent ones.
LOOP_BODIES = {
    "avx512": {r"vfmadd231ps\s+%zmm14,%zmm15,%zmm\d+": 12},
    "avx2": {r"vfmadd231ps\s+%ymm14,%ymm15,%ymm\d+": 12},
    "baseline": {r"mulps\s+%xmm14,%xmm\d+": 6, r"addps\s+%xmm14,%xmm\d+": 6},
}


@pytest.mark.skipif(not HAS_LOOPS or shutil.which("objdump") is None,
                    reason="needs the x86-64 loops and objdump")
@pytest.mark.parametrize("level", list(LOOP_BODIES))
def test_the_loop_is_not_folded(level):
    """The built module's loop holds 12 multiply-adds on 12 different
    accumulators per iteration (a folded loop would hold one)."""
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", _cpu.__file__],
                             capture_output=True, text=True, check=True).stdout
    match = re.search(rf"<_ZL\d+fc_fma_loop_{level}l>:\n(.*?)\n\n", listing, re.S)
    assert match, f"fc_fma_loop_{level} not found in {_cpu.__file__}"
    body = match.group(1)
    for pattern, count in LOOP_BODIES[level].items():
        found = re.findall(pattern, body)
        assert len(found) == count, (pattern, found)
        accumulators = {line.rsplit(",", 1)[1] for line in found}
        assert len(accumulators) == count, accumulators


@pytest.mark.skipif(not HAS_LOOPS, reason="the loops are x86-64 assembly (GCC/Clang)")
def test_peak_command_prints_every_level():
    out = subprocess.run([sys.executable, "-m", "fastconv", "peak", "--threads", "2"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    assert "| 1 thread | 2 threads |" in out
    for level in LEVELS:
        assert re.search(rf"\| {level}( \(in use\))? \| \d+ \| \d+ \|", out), out
