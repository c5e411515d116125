"""The implementations of conv2d that ``python -m fastconv bench`` times:
fastconv and its peers (NumPy im2col + matmul, PyTorch, SciPy, and on request
ONNX Runtime and OpenVINO)."""

import importlib

import numpy as np

from .._config import config_info
from .._conv import conv2d, plan
from .._layer import Conv2d

__all__ = ["PEERS", "OPT_IN_PEERS", "ALL_PEERS", "SCIPY_MAX_MACS", "System", "FastconvSystem",
           "NumpySystem", "TorchSystem", "ScipySystem", "OnnxRuntimeSystem", "OpenVinoSystem",
           "im2col_conv2d", "onnx_conv_model", "openvino_conv_model", "make_systems",
           "optional_import"]

#: The peers run by default, when installed.
PEERS = ("numpy", "torch", "scipy")
#: Peers run only when ``--peers`` names them: inference engines that bring
#: their own thread runtime into the process and take seconds to import and
#: compile a model per layer; the default run stays as it was.
OPT_IN_PEERS = ("onnxruntime", "openvino")
ALL_PEERS = PEERS + OPT_IN_PEERS
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

    def skip_reason(self, layer, dtype):
        """Why this system does not run ``layer`` in ``dtype``, or None."""
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
    """fastconv: the functional ``conv2d`` call, or a prepared ``Conv2d``.

    ``key`` is ``"fastconv"``, the system the others are compared with; a
    prepared layer timed beside the call (``--also-prepared``) is
    ``"fastconv-prepared"``.
    """

    key = "fastconv"

    def __init__(self, threads, algorithm="auto", prepared=False, key="fastconv"):
        info = config_info()
        self.key = key
        self.label = f"fastconv {info['version']}" + (" prepared" if key != "fastconv" else "")
        self.threads, self.algorithm, self.prepared = threads, algorithm, prepared

    def _layer(self, layer, w):
        return Conv2d(w, algorithm=self.algorithm, num_threads=self.threads,
                      **layer.conv_kwargs())

    def skip_reason(self, layer, dtype):
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

    def skip_reason(self, layer, dtype):
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


class OnnxRuntimeSystem(System):
    """ONNX Runtime (CPU execution provider): a session per layer running a
    one-node ``Conv`` model whose weights are an initializer (a constant).

    ``intra_op_num_threads`` is the bench's thread count and
    ``inter_op_num_threads`` 1 (sequential execution); the timed call is
    ``InferenceSession.run``. float32 only: the CPU provider has no float64 Conv.
    """

    key = "onnxruntime"

    def __init__(self, ort, onnx, threads):
        self.ort, self.onnx, self.threads = ort, onnx, threads
        self.label = f"onnxruntime {ort.__version__}"

    def skip_reason(self, layer, dtype):
        if np.dtype(dtype) != np.float32:
            return "float32 only (the CPU execution provider has no float64 Conv)"
        return None

    def method(self, layer, dtype):
        return "Conv node, weights an initializer"

    def prepare(self, layer, x, w):
        ort = self.ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        model = onnx_conv_model(self.onnx, layer, w)
        session = ort.InferenceSession(model.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        feed = {"x": x}
        return lambda: session.run(None, feed)[0]


def onnx_conv_model(onnx, layer, w):
    """A one-node ONNX model ``y = Conv(x, w)`` with ``layer``'s stride,
    padding, groups and dilation, ``w`` stored as an initializer."""
    helper = onnx.helper
    elem = helper.np_dtype_to_tensor_dtype(w.dtype)
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[layer.kernel] * 2,
                            strides=[layer.stride] * 2, pads=[layer.padding] * 4,
                            dilations=[layer.dilation] * 2, group=layer.groups)
    graph = helper.make_graph(
        [node], "conv2d", [helper.make_tensor_value_info("x", elem, layer.input_shape)],
        [helper.make_tensor_value_info("y", elem, layer.output_shape)],
        initializer=[onnx.numpy_helper.from_array(w, "w")])
    # Opset 13 and IR version 8: what every ONNX Runtime since 1.10 reads.
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


class OpenVinoSystem(System):
    """OpenVINO on the CPU: a model of one ``Convolution`` (or
    ``GroupConvolution``) with the weights a ``Constant``, compiled per layer.

    Compiled for latency (``PERFORMANCE_HINT`` LATENCY, one stream) with
    ``INFERENCE_NUM_THREADS`` the bench's thread count, float32 inference
    (``INFERENCE_PRECISION_HINT``: CPUs with bfloat16 units would otherwise
    run bf16) and no CPU pinning (the process's other threads stay free to
    move). The input tensor shares the NumPy input; the timed call is
    ``InferRequest.infer``. float32 only: the CPU plugin computes float64 in
    float32.
    """

    key = "openvino"

    def __init__(self, ov, threads):
        self.ov, self.threads = ov, threads
        self.label = f"openvino {ov.__version__.split('-')[0]}"
        self.core = ov.Core()

    def skip_reason(self, layer, dtype):
        if np.dtype(dtype) != np.float32:
            return "float32 only (the CPU plugin computes float64 in float32)"
        return None

    def method(self, layer, dtype):
        return ("GroupConvolution" if layer.groups > 1 else "Convolution") + ", weights constant"

    def prepare(self, layer, x, w):
        ov = self.ov
        compiled = self.core.compile_model(openvino_conv_model(ov, layer, w), "CPU", {
            "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1",
            "INFERENCE_NUM_THREADS": str(self.threads), "INFERENCE_PRECISION_HINT": "f32",
            "ENABLE_CPU_PINNING": "NO"})
        request = compiled.create_infer_request()
        request.set_input_tensor(ov.Tensor(x, shared_memory=True))

        def call():
            request.infer()
            return request.get_output_tensor(0).data
        return call


def openvino_conv_model(ov, layer, w):
    """An OpenVINO model ``y = Convolution(x, w)`` with ``layer``'s stride,
    padding and dilation, ``w`` a constant; a ``GroupConvolution`` (weights
    ``(groups, K/groups, C/groups, k, k)``) when ``layer.groups > 1``."""
    ops = _openvino_opset()
    x = ops.parameter(list(layer.input_shape), ov.Type.f32 if w.dtype == np.float32
                      else ov.Type.f64, name="x")
    geometry = dict(strides=[layer.stride] * 2, pads_begin=[layer.padding] * 2,
                    pads_end=[layer.padding] * 2, dilations=[layer.dilation] * 2)
    if layer.groups == 1:
        y = ops.convolution(x, ops.constant(w), **geometry)
    else:
        grouped = w.reshape(layer.groups, -1, *w.shape[1:])
        y = ops.group_convolution(x, ops.constant(grouped), **geometry)
    return ov.Model([y], [x], "conv2d")


def _openvino_opset():
    """OpenVINO's opset 13 (``openvino.opset13``; ``openvino.runtime.opset13``
    before 2024)."""
    for name in ("openvino.opset13", "openvino.runtime.opset13"):
        module = optional_import(name)
        if module is not None:
            return module
    raise ImportError("this OpenVINO has no opset13")


def make_systems(threads, algorithm="auto", prepared=False, peers=PEERS, also_prepared=False):
    """fastconv and the ``peers`` that are installed.

    ``prepared`` times a prepared ``Conv2d`` as fastconv instead of the
    ``conv2d`` call; ``also_prepared`` times one beside the call
    (``"fastconv-prepared"``).

    Returns
    -------
    systems : list of System
        fastconv first.
    notes : list of str
        One line per requested peer that is not installed.
    """
    systems, notes = [FastconvSystem(threads, algorithm, prepared)], []
    if also_prepared and not prepared:
        systems.append(FastconvSystem(threads, algorithm, True, key="fastconv-prepared"))
    for peer in peers:
        if peer == "numpy":
            systems.append(NumpySystem())
            continue
        needs = {"torch": ["torch"], "scipy": ["scipy.signal"],
                 "onnxruntime": ["onnxruntime", "onnx"], "openvino": ["openvino"]}[peer]
        modules = [optional_import(name) for name in needs]
        if None in modules:
            missing = [name for name, module in zip(needs, modules) if module is None]
            packages = " ".join(name.split(".")[0] for name in missing)
            notes.append(f"{peer}: not installed, not run (pip install {packages})")
        elif peer == "torch":
            systems.append(TorchSystem(modules[0], threads))
        elif peer == "scipy":
            systems.append(ScipySystem(modules[0]))
        elif peer == "onnxruntime":
            systems.append(OnnxRuntimeSystem(*modules, threads))
        else:
            systems.append(OpenVinoSystem(modules[0], threads))
    return systems, notes


def optional_import(name):
    """The module ``name``, or None when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None
