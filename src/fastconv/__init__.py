"""fastconv: fast 2-D convolution for NumPy with PyTorch's conv2d semantics.

>>> import numpy as np, fastconv
>>> x = np.arange(25).reshape(1, 1, 5, 5)
>>> fastconv.conv2d(x, np.ones((1, 1, 3, 3), int)).shape
(1, 1, 3, 3)
"""

from ._config import show_config
from ._conv import ALGORITHMS, conv2d
from ._layer import Conv2d
from ._version import __version__

__all__ = ["conv2d", "Conv2d", "ALGORITHMS", "show_config", "__version__"]
