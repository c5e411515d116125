"""fastconv: fast 2-D convolution for NumPy with PyTorch's conv2d semantics.

* :func:`conv2d` and :func:`conv1d`: ``torch.nn.functional.conv2d`` /
  ``conv1d`` on NumPy arrays (channels first or last, fused ReLU).
* :func:`conv_transpose2d` and :class:`ConvTranspose2d`:
  ``torch.nn.functional.conv_transpose2d`` and a layer with prepared weights.
* :mod:`fastconv.grad`: the gradients of conv2d (input, weight, bias), as
  ``torch.nn.grad``; :meth:`Conv2d.backward` for a layer.
* :func:`plan`: what a call runs (algorithm, kernel path, threads, memory).
* :class:`Conv2d`: a layer holding its weights, validated and transformed
  once for repeated calls, with PyTorch's padding modes.
* :func:`set_num_threads`, :func:`get_num_threads`, :class:`threads`: the
  default number of OpenMP threads.
* :func:`show_config`: build and runtime configuration.

>>> import numpy as np, fastconv
>>> x = np.arange(25).reshape(1, 1, 5, 5)
>>> fastconv.conv2d(x, np.ones((1, 1, 3, 3), int)).shape
(1, 1, 3, 3)
"""

from ._config import show_config
from ._conv import ACTIVATIONS, ALGORITHMS, LAYOUTS, PADDING_MODES, conv2d
from ._plan import Plan
from ._conv1d import conv1d
from ._layer import Conv2d, ConvTranspose2d
from ._transpose import OPERATIONS, conv_transpose2d, plan
from . import grad
from ._threads import get_num_threads, set_num_threads, threads
from ._version import __version__

__all__ = ["conv2d", "conv1d", "conv_transpose2d", "Conv2d", "ConvTranspose2d", "grad",
           "plan", "OPERATIONS", "Plan", "set_num_threads", "get_num_threads", "threads",
           "ALGORITHMS", "LAYOUTS", "ACTIVATIONS", "PADDING_MODES", "show_config",
           "__version__"]
