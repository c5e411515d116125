"""Choice of the SIMD kernels at import (private).

The compiled micro-kernels exist for several instruction-set levels; the best
one the running CPU supports is used, unless the environment variable
``FASTCONV_ISA`` (``baseline``, ``avx2`` or ``avx512``) asks for a lower one,
e.g. to test every code path on one machine.
"""

import os
import warnings

from . import _direct, _winograd

ISA_LEVELS = _direct.ISA_LEVELS


def _select_from_environment():
    requested = os.environ.get("FASTCONV_ISA", "").strip().lower()
    best = _direct.cpu_isa()
    if not requested:
        return _direct.select_isa(best)
    if requested not in ISA_LEVELS:
        warnings.warn(
            f"FASTCONV_ISA={requested!r} is not one of {', '.join(ISA_LEVELS)}; "
            f"using {best!r}", RuntimeWarning, stacklevel=3)
        return _direct.select_isa(best)
    if ISA_LEVELS.index(requested) > ISA_LEVELS.index(best):
        warnings.warn(
            f"FASTCONV_ISA={requested!r} is not supported by this CPU; using {best!r}",
            RuntimeWarning, stacklevel=3)
    return _direct.select_isa(requested)


_ACTIVE = _select_from_environment()
# The Winograd module has its own copy of the micro-kernel table.
_winograd.select_isa(ISA_LEVELS.index(_ACTIVE))


def active_isa():
    """The instruction-set level of the kernels in use ("baseline", "avx2" or "avx512")."""
    return _ACTIVE
