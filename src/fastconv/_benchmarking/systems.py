"""The implementations of conv2d that ``python -m fastconv bench`` times:
fastconv and its peers (NumPy im2col + matmul, PyTorch, SciPy)."""

import importlib

import numpy as np

from .._config import config_info
from .._conv import conv2d, plan
from .._layer import Conv2d

__all__ = ["PEERS", "SCIPY_MAX_MACS", "System", "FastconvSystem", "NumpySystem", "TorchSystem",
           "ScipySystem", "im2col_conv2d", "make_systems", "optional_import"]

PEERS = ("numpy", "torch", "scipy")
#: scipy.signal.correlate is run only on layers with at most this many
#: multiply-adds (it correlates one output channel per call).
SCIPY_MAX_MACS = 1.2e8
#: ... or with one input channel per group and at most this many output
#: planes: the images SciPy users filter (correlate picks its FFT method).
SCIPY_MAX_PLANES = 4


class System:
    """One implementation of conv2d being timed.

    Subclasses set ``key`` (``"fastconv"``, ``"numpy"``...) and ``label`` (with
    the version) and implement :meth:`prepare`; :meth:`skip_reason` and
    :meth:`method` have defaults.
    """

    key = ""
    label = ""
    #: Whether the system runs a thread pool: each of its timed calls then
    #: follows an untimed one (a settle call, see :mod:`.timing`).
    threaded = True

    def skip_reason(self, layer):
        """Why this system does not run ``layer``, or None."""
        return None

    def method(self, layer, dtype):
        """How the system computes ``layer`` (shown in the table)."""
        return ""

    def describe(self, layer, dtype):
        """What the report says of how the system computes ``layer``: a dict
        of result fields, each shown by a column of :data:`.report.COLUMNS`."""
        return {"method": self.method(layer, dtype)}

    def prepare(self, layer, x, w):
        """A no-argument callable computing the layer on ``x``, ``w``."""
        raise NotImplementedError


class FastconvSystem(System):
    """fastconv: the functional ``conv2d`` call, or a prepared ``Conv2d``."""

    key = "fastconv"

    def __init__(self, threads, algorithm="auto", prepared=False):
        info = config_info()
        self.label = f"fastconv {info['version']}"
        self.threads, self.algorithm, self.prepared = threads, algorithm, prepared

    def _layer(self, layer, w):
        return Conv2d(w, algorithm=self.algorithm, num_threads=self.threads,
                      **layer.conv_kwargs())

    def skip_reason(self, layer):
        try:
            self._layer(layer, np.zeros(layer.weight_shape, np.float32))
        except ValueError as exc:
            return str(exc)
        return None

    def plan(self, layer, dtype):
        """What the timed call runs (:func:`fastconv.plan`): a one-off
        ``conv2d`` call may choose differently from a ``Conv2d`` layer, which
        keeps its transformed weights."""
        return plan(layer.input_shape, layer.weight_shape, dtype=dtype,
                    algorithm=self.algorithm, num_threads=self.threads,
                    prepared=self.prepared, **layer.conv_kwargs())

    def method(self, layer, dtype):
        chosen = self.plan(layer, dtype)
        name = f"winograd{chosen.tile}" if chosen.tile else chosen.algorithm
        suffix = " (auto)" if self.algorithm == "auto" else ""
        return name + suffix + (", prepared" if self.prepared else "")

    def describe(self, layer, dtype):
        return {**super().describe(layer, dtype), "path": self.plan(layer, dtype).path}

    def prepare(self, layer, x, w):
        if self.prepared:
            conv = self._layer(layer, w)
            return lambda: conv(x)
        kwargs = layer.conv_kwargs()
        return lambda: conv2d(x, w, algorithm=self.algorithm, num_threads=self.threads,
                              **kwargs)


def im2col_conv2d(x, w, stride, padding, groups, dilation=1):
    """conv2d as im2col + matmul in NumPy, in the dtype of ``x`` and ``w``.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    w : ndarray of shape (K, C // groups, kH, kW)
    stride, padding, groups, dilation : int

    Returns
    -------
    ndarray of shape (N, K, Ho, Wo), C-contiguous
    """
    n, channels = x.shape[:2]
    out_channels, group_in, kernel_h, kernel_w = w.shape
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    span_h, span_w = dilation * (kernel_h - 1) + 1, dilation * (kernel_w - 1) + 1
    windows = np.lib.stride_tricks.sliding_window_view(x, (span_h, span_w), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride, ::dilation, ::dilation]
    out_h, out_w = windows.shape[2:4]
    # (N, G, C/G, Ho, Wo, kH, kW) -> columns (N, G, C/G*kH*kW, Ho*Wo): the copy is im2col.
    windows = windows.reshape(n, groups, group_in, out_h, out_w, kernel_h, kernel_w)
    cols = windows.transpose(0, 1, 2, 5, 6, 3, 4).reshape(
        n, groups, group_in * kernel_h * kernel_w, out_h * out_w)
    filters = w.reshape(groups, out_channels // groups, -1)
    return np.matmul(filters, cols).reshape(n, out_channels, out_h, out_w)


class NumpySystem(System):
    """NumPy: im2col (``sliding_window_view``) + ``matmul`` in the same dtype."""

    key = "numpy"

    def __init__(self):
        self.label = f"numpy {np.__version__}"

    def method(self, layer, dtype):
        return "im2col + matmul"

    def prepare(self, layer, x, w):
        return lambda: im2col_conv2d(x, w, layer.stride, layer.padding, layer.groups,
                                     layer.dilation)


class TorchSystem(System):
    """``torch.nn.functional.conv2d`` on tensors sharing the NumPy arrays."""

    key = "torch"

    def __init__(self, torch, threads):
        self.torch = torch
        torch.set_num_threads(threads)
        self.label = f"torch {torch.__version__}"

    def method(self, layer, dtype):
        return "F.conv2d"

    def prepare(self, layer, x, w):
        torch = self.torch
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        kwargs = layer.conv_kwargs()

        def call():
            with torch.no_grad():
                return torch.nn.functional.conv2d(xt, wt, **kwargs).numpy()
        return call


class ScipySystem(System):
    """``scipy.signal.correlate`` of each output channel over its input
    channels (small layers only)."""

    key = "scipy"
    threaded = False

    def __init__(self, signal):
        self.signal = signal
        self.label = f"scipy {importlib.import_module('scipy').__version__}"

    def skip_reason(self, layer):
        if layer.dilation != 1:
            return "dilated kernels are not run (correlate has no dilation)"
        planes = layer.batch * layer.out_channels
        single = layer.in_channels == layer.groups and planes <= SCIPY_MAX_PLANES
        if layer.macs > SCIPY_MAX_MACS and not single:
            return (f"run only on layers of up to {SCIPY_MAX_MACS:.2g} multiply-adds, or "
                    f"of at most {SCIPY_MAX_PLANES} single-channel planes (one correlate "
                    "call per image and output channel)")
        return None

    def method(self, layer, dtype):
        return "signal.correlate"

    def prepare(self, layer, x, w):
        correlate, s, p = self.signal.correlate, layer.stride, layer.padding
        group_in = layer.in_channels // layer.groups
        group_out = layer.out_channels // layer.groups
        shape = layer.output_shape

        def call():
            padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
            out = np.empty(shape, x.dtype)
            for n in range(shape[0]):
                for k in range(shape[1]):
                    c = (k // group_out) * group_in
                    plane = correlate(padded[n, c:c + group_in], w[k], mode="valid")
                    out[n, k] = plane[0, ::s, ::s]
            return out
        return call


def make_systems(threads, algorithm="auto", prepared=False, peers=PEERS):
    """fastconv and the ``peers`` that are installed.

    Returns
    -------
    systems : list of System
        fastconv first.
    notes : list of str
        One line per requested peer that is not installed.
    """
    systems, notes = [FastconvSystem(threads, algorithm, prepared)], []
    for peer in peers:
        if peer == "numpy":
            systems.append(NumpySystem())
            continue
        module = optional_import({"torch": "torch", "scipy": "scipy.signal"}[peer])
        if module is None:
            notes.append(f"{peer}: not installed, not run")
        elif peer == "torch":
            systems.append(TorchSystem(module, threads))
        else:
            systems.append(ScipySystem(module))
    return systems, notes


def optional_import(name):
    """The module ``name``, or None when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None
