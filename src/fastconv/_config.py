"""Build and runtime configuration report (private)."""

import platform
import sys

import numpy as np

from . import _cpu, _fft, _openmp_helpers
from ._isa import active_isa
from ._version import __version__


def config_info():
    """The facts :func:`show_config` prints, as a dict."""
    build = _openmp_helpers.build_info()
    return {
        "version": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": platform.platform(),
        "openmp": _openmp_helpers.openmp_enabled(),
        "openmp_version": _openmp_helpers.openmp_version(),
        "num_threads": _openmp_helpers.default_num_threads(),
        "compiler": build["compiler"],
        "compiler_version": build["compiler_version"],
        "flags": build["flags"],
        "cpu_isa": _cpu.cpu_isa(),
        "isa": active_isa(),
        "fft": _fft.backend(),
    }


def show_config():
    """Print fastconv's version, OpenMP status and threads, compiler, flags
    and SIMD level, e.g. for bug reports."""
    info = config_info()
    openmp = (f"on (OpenMP {info['openmp_version']}), {info['num_threads']} threads by default"
              if info["openmp"] else "off (serial build)")
    lines = [
        f"fastconv {info['version']}",
        f"  Python        {info['python']}, NumPy {info['numpy']}",
        f"  platform      {info['platform']}",
        f"  OpenMP        {openmp}",
        f"  compiler      {info['compiler']} ({info['compiler_version']})",
        f"  flags         {info['flags']}",
        f"  SIMD kernels  {info['isa']} (CPU supports {info['cpu_isa']}; "
        "FASTCONV_ISA can force a lower level)",
        f"  FFT library   {info['fft']} (algorithm='fft'"
        + (")" if info["fft"] == "scipy" else "; install SciPy for faster FFTs)"),
    ]
    print("\n".join(lines))
