# Type stub of the compiled module fastconv._spectral (Cython): its functions are
# typed as Any, so that type checkers of fastconv and of its users need no
# knowledge of the kernels' signatures (see the .pyx for them).
from typing import Any

def __getattr__(name: str) -> Any: ...
