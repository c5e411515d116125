"""Choice of the SIMD kernels at import (private).

The compiled kernels exist for several instruction-set levels; the best one
the running CPU supports is used, unless the environment variable
``FASTCONV_ISA`` (``baseline``, ``avx2`` or ``avx512``) asks for a lower one,
e.g. to test every code path on one machine. The level is one state for the
whole package, held by :mod:`fastconv._cpu`: selected once here, it is what
both :mod:`fastconv._direct` and :mod:`fastconv._winograd` run.
"""

import os
import warnings

from . import _cpu

ISA_LEVELS = _cpu.ISA_LEVELS


def _select_from_environment():
    requested = os.environ.get("FASTCONV_ISA", "").strip().lower()
    best = _cpu.cpu_isa()
    if not requested:
        return _cpu.select_isa(best)
    if requested not in ISA_LEVELS:
        warnings.warn(
            f"FASTCONV_ISA={requested!r} is not one of {', '.join(ISA_LEVELS)}; "
            f"using {best!r}", RuntimeWarning, stacklevel=3)
        return _cpu.select_isa(best)
    if ISA_LEVELS.index(requested) > ISA_LEVELS.index(best):
        warnings.warn(
            f"FASTCONV_ISA={requested!r} is not supported by this CPU; using {best!r}",
            RuntimeWarning, stacklevel=3)
    return _cpu.select_isa(requested)


_select_from_environment()


def active_isa():
    """The instruction-set level of the kernels in use ("baseline", "avx2" or "avx512")."""
    return _cpu.active_isa()
