"""Conv2d: a convolution with fixed weights, transformed once (private)."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Type, TypeVar, cast

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from ._checks import _as_array, _result_dtypes
from ._conv import Activation, Algorithm, ConvSpec, IntPair, Layout, PaddingArg, PaddingMode
from ._plan import Plan
from ._threads import check_num_threads, kernel_threads
from ._transpose import (TransposeSpec, _requested_threads, check_transpose_args,
                         transpose_size)

__all__ = ["Conv2d", "ConvTranspose2d"]

_Layer = TypeVar("_Layer", bound="Conv2d")

#: The keys of every state :meth:`Conv2d.__getstate__` has written.
_STATE_KEYS = ("weight", "bias", "stride", "padding", "dilation", "groups", "algorithm",
               "num_threads")
#: Keys added later, with the values of the layers pickled before they existed.
_LATER_STATE_KEYS: Dict[str, Any] = {"padding_mode": "zeros", "layout": "NCHW",
                                     "activation": None}


class _LayerProperties:
    """The read-only settings a layer shares, from its spec (``_spec``)."""

    _spec: Any

    @property
    def weight(self) -> NDArray[Any]:
        """ndarray: the layer's weights (read-only view), (K, C // groups, kH, kW)
        for a Conv2d, (C_in, C_out // groups, kH, kW) for a ConvTranspose2d."""
        view = self._spec.weight.view()
        view.flags.writeable = False
        return view

    @property
    def bias(self) -> Optional[NDArray[Any]]:
        """ndarray of shape (K,) or None (read-only view)."""
        if self._spec.bias is None:
            return None
        view = self._spec.bias.view()
        view.flags.writeable = False
        return view

    @property
    def in_channels(self) -> int:
        """C, the input channels."""
        return self._spec.in_channels

    @property
    def out_channels(self) -> int:
        """K, the output channels."""
        return self._spec.out_channels

    @property
    def kernel_size(self) -> Tuple[int, int]:
        """(kH, kW)."""
        return self._spec.kernel_size

    @property
    def groups(self) -> int:
        """The number of groups."""
        return self._spec.groups

    @property
    def algorithm(self) -> str:
        """The algorithm name the layer was made with (e.g. "auto")."""
        return self._spec.algorithm

    @property
    def layout(self) -> Layout:
        """"NCHW" or "NHWC": the layout of inputs and results."""
        return cast(Layout, self._spec.layout)


class Conv2d(_LayerProperties):
    """A 2-D convolution layer holding its weights, for repeated calls.

    The weights are validated once, and packed (direct) or transformed
    (Winograd ``U = G g G^T``) the first time each algorithm and dtype is
    used; later calls reuse them, so an inference pipeline never pays the
    weight transform twice. ``layer(x)`` equals
    ``conv2d(x, weight, bias, stride, padding, dilation, groups,
    algorithm=algorithm, num_threads=num_threads, layout=layout,
    activation=activation, padding_mode=padding_mode)``.

    Parameters
    ----------
    weight : array_like of shape (K, C // groups, kH, kW)
        Copied: changing the caller's array later does not change the layer.
        Its dtype is kept (the result dtype follows :func:`fastconv.conv2d`'s
        rules, e.g. float32 input and weights give float32).
    bias : array_like of shape (K,), optional
        Copied, like ``weight``.
    stride, padding, dilation, groups
        As for :func:`fastconv.conv2d`.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}, default="zeros"
        What the padding holds, as in ``torch.nn.Conv2d``. Modes other than
        zeros build a padded copy of each input (as PyTorch does); zeros are
        implicit (no copy).
    algorithm : str, default="auto"
        As for :func:`fastconv.conv2d`; ``"auto"`` decides per input shape.
    num_threads : int, optional
        Threads of every call of this layer (``None``: the active
        :class:`fastconv.threads` block, else :func:`fastconv.set_num_threads`'s
        default, else OpenMP's).
    layout : {"NCHW", "NHWC"}, default="NCHW"
        Layout of the inputs and results (the weight is always
        (K, C // groups, kH, kW)). NHWC costs one transposed copy of the
        input and one of the output per call.
    activation : {None, "relu"}, default=None
        Fused into the kernels' output stage.

    Attributes
    ----------
    weight, bias : ndarray
        Read-only views of the layer's copies.
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups
        The geometry; ``stride``, ``dilation`` and ``kernel_size`` as pairs,
        ``padding`` as given.
    padding_mode, algorithm, layout, activation : str or None
    num_threads : int or None

    Raises
    ------
    TypeError, ValueError
        As :func:`fastconv.conv2d` for the same arguments; also for an
        unknown ``padding_mode``, ``layout`` or ``activation``.

    See Also
    --------
    fastconv.conv2d, Conv2d.from_torch

    Notes
    -----
    A layer is picklable: the pickle holds the weights and settings, and the
    packed weights (which depend on the CPU's SIMD level) are rebuilt where
    it is loaded. It is safe to call one layer from several Python threads
    at once (two first calls may both transform the weights; one result is
    kept).

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> layer = fastconv.Conv2d(np.ones((2, 3, 3, 3), np.float32), padding=1,
    ...                         padding_mode="reflect", activation="relu")
    >>> layer  # doctest: +NORMALIZE_WHITESPACE
    Conv2d(3, 2, kernel_size=(3, 3), padding=1, padding_mode='reflect',
           bias=False, dtype=float32, activation='relu')
    >>> layer(np.ones((1, 3, 8, 8), np.float32)).shape
    (1, 2, 8, 8)
    """

    def __init__(self, weight: ArrayLike, bias: Optional[ArrayLike] = None,
                 stride: IntPair = 1, padding: PaddingArg = 0, dilation: IntPair = 1,
                 groups: int = 1, padding_mode: PaddingMode = "zeros",
                 algorithm: Algorithm = "auto", num_threads: Optional[int] = None, *,
                 layout: Layout = "NCHW", activation: Activation = None) -> None:
        check_num_threads(num_threads)
        # Copies, so that later changes to the caller's arrays do not reach
        # the layer (converted first, so that errors name the argument).
        weight = np.array(_as_array(weight, "weight"), copy=True)
        bias = None if bias is None else np.array(_as_array(bias, "bias"), copy=True)
        self._spec = ConvSpec(weight, bias, stride, padding, dilation, groups,
                              algorithm=algorithm, cache=True, padding_mode=padding_mode,
                              layout=layout, activation=activation)
        self._padding_arg = padding
        self.num_threads = num_threads
        self._input_grad_spec: Optional[TransposeSpec] = None

    @classmethod
    def from_torch(cls: Type[_Layer], module: Any, *, algorithm: Algorithm = "auto",
                   num_threads: Optional[int] = None, layout: Layout = "NCHW",
                   activation: Activation = None) -> _Layer:
        """A layer with the weights and settings of a ``torch.nn.Conv2d``.

        Parameters
        ----------
        module : torch.nn.Conv2d
            Its weight and bias are copied (detached, moved to the CPU;
            bfloat16 becomes float32, other dtypes are kept), with its
            ``stride``, ``padding``, ``dilation``, ``groups`` and
            ``padding_mode``.
        algorithm, num_threads, layout, activation
            As for :class:`Conv2d` (a ``torch.nn.Conv2d`` has no activation:
            ``activation="relu"`` fuses a following ``torch.nn.ReLU``).

        Returns
        -------
        layer : Conv2d
            ``layer(x)`` matches ``module(torch.from_numpy(x))``.

        Raises
        ------
        ImportError
            If PyTorch is not installed.
        TypeError
            If ``module`` is not a ``torch.nn.Conv2d`` (or a subclass).

        Examples
        --------
        >>> import torch, fastconv  # doctest: +SKIP
        >>> module = torch.nn.Conv2d(3, 8, 3, padding=1)  # doctest: +SKIP
        >>> layer = fastconv.Conv2d.from_torch(module)  # doctest: +SKIP
        """
        torch = _import_torch("Conv2d.from_torch")
        if not isinstance(module, torch.nn.Conv2d):
            raise TypeError(
                f"Conv2d.from_torch needs a torch.nn.Conv2d; got {type(module).__name__}")
        bias = None if module.bias is None else _torch_numpy(torch, module.bias)
        padding = module.padding
        return cls(_torch_numpy(torch, module.weight), bias, _int_pair(module.stride),
                   cast(PaddingArg, padding) if isinstance(padding, str) else _int_pair(padding),
                   _int_pair(module.dilation), module.groups, module.padding_mode, algorithm,
                   num_threads, layout=layout, activation=activation)






    @property
    def stride(self) -> Tuple[int, int]:
        """(sH, sW)."""
        return self._spec.stride

    @property
    def dilation(self) -> Tuple[int, int]:
        """(dH, dW)."""
        return self._spec.dilation


    @property
    def padding(self) -> PaddingArg:
        """The padding as given (int, pair, "valid" or "same")."""
        return self._padding_arg

    @property
    def padding_mode(self) -> str:
        """"zeros", "reflect", "replicate" or "circular"."""
        return self._spec.padding_mode



    @property
    def activation(self) -> Optional[str]:
        """None or "relu"."""
        return self._spec.activation

    def __call__(self, input: ArrayLike, out: Optional[NDArray[Any]] = None, *,
                 num_threads: Optional[int] = None) -> NDArray[Any]:
        """Convolve ``input``.

        Parameters
        ----------
        input : array_like of shape (N, C, H, W) or (C, H, W)
            (N, H, W, C) or (H, W, C) for ``layout="NHWC"``.
        out : ndarray, optional
            As for :func:`fastconv.conv2d`: C-contiguous, of the result's
            shape (in the layer's layout) and dtype.
        num_threads : int, optional
            Overrides the layer's ``num_threads`` for this call.

        Returns
        -------
        output : ndarray of shape (N, K, H_out, W_out) or (K, H_out, W_out)
            (N, H_out, W_out, K) or (H_out, W_out, K) for ``layout="NHWC"``.
        """
        threads = self.num_threads if num_threads is None else num_threads
        return self._spec.apply(input, num_threads=threads, out=out)

    def plan(self, input_shape: Sequence[int], dtype: DTypeLike = np.float32, *,
             num_threads: Optional[int] = None) -> Plan:
        """What a call on an input of ``input_shape`` runs: the algorithm,
        kernel path, threads and workspace (see :func:`fastconv.plan`).

        Parameters
        ----------
        input_shape : tuple of ints
            The input's shape in the layer's layout, batched or not.
        dtype : dtype, default=float32
            The input's dtype.
        num_threads : int, optional
            As for a call: overrides the layer's ``num_threads``.

        Returns
        -------
        plan : fastconv.Plan
        """
        threads = self.num_threads if num_threads is None else num_threads
        probe = np.empty(0, dtype)
        compute_dtype = _result_dtypes(probe, self._spec.weight, self._spec.bias)[1]
        return self._spec.plan(self._spec.geometry(tuple(input_shape)), compute_dtype,
                               kernel_threads(threads))

    def backward(self, grad_output: ArrayLike, input: ArrayLike, *,
                 num_threads: Optional[int] = None
                 ) -> Tuple[NDArray[Any], NDArray[Any], Optional[NDArray[Any]]]:
        """The gradients of a call ``self(input)`` from the gradient of its
        result: ``(grad_input, grad_weight, grad_bias)`` as
        ``torch.nn.grad.conv2d_input``, ``conv2d_weight`` and the sum of
        ``grad_output`` over the batch and pixels (None without bias).

        The layer keeps the transposed and packed weights of the input
        gradient for later calls, as it keeps its forward weights; the input
        is passed rather than kept, so that a layer shared by threads or
        called on several inputs holds no per-call state.

        Parameters
        ----------
        grad_output : array_like
            Of the shape of ``self(input)``, in the layer's layout.
        input : array_like
            The input of that call.
        num_threads : int, optional
            Overrides the layer's ``num_threads``.

        Raises
        ------
        ValueError
            For a layer with a fused activation or a padding mode other than
            zeros (not differentiated here), or shapes that do not match.
        """
        from . import grad
        if self.activation is not None or self.padding_mode != "zeros":
            raise ValueError("Conv2d.backward needs activation=None and padding_mode='zeros'; "
                             f"this layer has activation={self.activation!r}, "
                             f"padding_mode={self.padding_mode!r}")
        threads = self.num_threads if num_threads is None else num_threads
        spec = self._spec
        x = _as_array(input, "input")
        g = _as_array(grad_output, "grad_output")
        grad_weight = grad.conv2d_weight(x, spec.weight.shape, g, spec.stride,
                                         self._padding_arg, spec.dilation, spec.groups,
                                         num_threads=threads, layout=self.layout)
        # Checked by conv2d_weight: the shapes match the forward call.
        input_spec = self._input_grad_spec
        if input_spec is None:
            (top, _), (left, _) = spec.padding
            input_spec = TransposeSpec(spec.weight, None, spec.stride, (top, left),
                                       spec.dilation, spec.groups, algorithm=spec.algorithm,
                                       cache=True, layout=self.layout,
                                       threads=_requested_threads(threads))
            self._input_grad_spec = input_spec
        height, width = x.shape[-3:-1] if self.layout == "NHWC" else x.shape[-2:]
        grad_input = input_spec.apply(g, (height, width), num_threads=threads)
        grad_bias = None if spec.bias is None else grad.conv2d_bias(g, layout=self.layout)
        return grad_input, grad_weight, grad_bias

    def __repr__(self) -> str:
        parts = [f"{self.in_channels}, {self.out_channels}",
                 f"kernel_size={self.kernel_size}"]
        if self.stride != (1, 1):
            parts.append(f"stride={self.stride}")
        if self._padding_arg != 0:
            parts.append(f"padding={self._padding_arg!r}")
        if self.dilation != (1, 1):
            parts.append(f"dilation={self.dilation}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if self.padding_mode != "zeros":
            parts.append(f"padding_mode={self.padding_mode!r}")
        parts.append(f"bias={self._spec.bias is not None}")
        parts.append(f"dtype={self._spec.weight.dtype}")
        if self.algorithm != "auto":
            parts.append(f"algorithm={self.algorithm!r}")
        if self.num_threads is not None:
            parts.append(f"num_threads={self.num_threads}")
        if self.layout != "NCHW":
            parts.append(f"layout={self.layout!r}")
        if self.activation is not None:
            parts.append(f"activation={self.activation!r}")
        return f"Conv2d({', '.join(parts)})"

    def __getstate__(self) -> Dict[str, Any]:
        # The packed weights depend on the CPU's SIMD level: rebuild them
        # where the layer is unpickled.
        spec = self._spec
        return {"weight": spec.weight, "bias": spec.bias, "stride": spec.stride,
                "padding": self._padding_arg, "dilation": spec.dilation,
                "groups": spec.groups, "padding_mode": spec.padding_mode,
                "algorithm": spec.algorithm, "num_threads": self.num_threads,
                "layout": spec.layout, "activation": spec.activation}

    def __setstate__(self, state: object) -> None:
        """Rebuild the layer from a state of :meth:`__getstate__` (unpickling).

        Parameters
        ----------
        state : dict
            The keys :meth:`__getstate__` writes. ``padding_mode``,
            ``layout`` and ``activation`` may be missing (pickles of layers
            made before these settings existed): then "zeros", "NCHW" and
            None.

        Raises
        ------
        TypeError
            If ``state`` is not a dict.
        ValueError
            If a key is missing, or unknown, or the constructor refuses a
            value; the message names it. An unknown key is refused rather
            than ignored: it is a setting of a newer fastconv (or not a
            Conv2d's state), and a layer built without it could compute
            something else.
        """
        if not isinstance(state, dict):
            raise TypeError(f"Conv2d state must be a dict; got {type(state).__name__}")
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:
            raise ValueError(f"Conv2d state is missing {', '.join(map(repr, missing))}")
        unknown = [key for key in state
                   if key not in _STATE_KEYS and key not in _LATER_STATE_KEYS]
        if unknown:
            raise ValueError(f"Conv2d state has unknown key{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(map(repr, unknown))} (a state of a newer fastconv?)")
        settings = {**_LATER_STATE_KEYS, **state}
        try:
            self.__init__(  # type: ignore[misc]
                settings["weight"], settings["bias"], settings["stride"], settings["padding"],
                settings["dilation"], settings["groups"], settings["padding_mode"],
                settings["algorithm"], settings["num_threads"], layout=settings["layout"],
                activation=settings["activation"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Conv2d state holds a value Conv2d refuses: {exc}") from exc


def _int_pair(value: Sequence[int]) -> Tuple[int, int]:
    """A torch module's (h, w) setting as a pair of Python ints."""
    return int(value[0]), int(value[1])


class ConvTranspose2d(_LayerProperties):
    """A 2-D transposed convolution layer holding its weights, for repeated
    calls: ``layer(x)`` equals ``conv_transpose2d(x, weight, bias, stride,
    padding, output_padding, groups, dilation, ...)``, with each phase
    group's sub-kernels stacked and packed once (see
    :func:`fastconv.conv_transpose2d`).

    Parameters
    ----------
    weight : array_like of shape (C_in, C_out // groups, kH, kW)
        Copied.
    bias : array_like of shape (C_out,), optional
        Copied.
    stride, padding, output_padding, groups, dilation, algorithm, layout
        As for :func:`fastconv.conv_transpose2d`.
    num_threads : int, optional
        Threads of every call (overridden per call).

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> up = fastconv.ConvTranspose2d(np.ones((4, 2, 2, 2), np.float32), stride=2)
    >>> up(np.ones((1, 4, 8, 8), np.float32)).shape
    (1, 2, 16, 16)
    """

    def __init__(self, weight: ArrayLike, bias: Optional[ArrayLike] = None,
                 stride: IntPair = 1, padding: IntPair = 0, output_padding: IntPair = 0,
                 groups: int = 1, dilation: IntPair = 1, algorithm: Algorithm = "auto",
                 num_threads: Optional[int] = None, *, layout: Layout = "NCHW") -> None:
        check_num_threads(num_threads)
        weight = np.array(_as_array(weight, "weight"), copy=True)
        bias = None if bias is None else np.array(_as_array(bias, "bias"), copy=True)
        self.stride, self.padding, self.output_padding, self.dilation = check_transpose_args(
            stride, padding, output_padding, dilation)
        self._spec = TransposeSpec(weight, bias, self.stride, self.padding, self.dilation,
                                   groups, algorithm=algorithm, cache=True, layout=layout,
                                   threads=_requested_threads(num_threads))
        self.num_threads = num_threads

    @classmethod
    def from_torch(cls, module: Any, *, algorithm: Algorithm = "auto",
                   num_threads: Optional[int] = None,
                   layout: Layout = "NCHW") -> "ConvTranspose2d":
        """A layer with the weights and settings of a ``torch.nn.ConvTranspose2d``
        (copied, detached, on the CPU; bfloat16 becomes float32). Raises
        ImportError without PyTorch, TypeError for another module, and
        ValueError for a ``padding_mode`` other than zeros (PyTorch allows
        no other)."""
        torch = _import_torch("ConvTranspose2d.from_torch")
        if not isinstance(module, torch.nn.ConvTranspose2d):
            raise TypeError("ConvTranspose2d.from_torch needs a torch.nn.ConvTranspose2d; "
                            f"got {type(module).__name__}")
        bias = None if module.bias is None else _torch_numpy(torch, module.bias)
        return cls(_torch_numpy(torch, module.weight), bias, _int_pair(module.stride),
                   _int_pair(module.padding), _int_pair(module.output_padding),
                   module.groups, _int_pair(module.dilation), algorithm, num_threads,
                   layout=layout)

    def __call__(self, input: ArrayLike, out: Optional[NDArray[Any]] = None, *,
                 num_threads: Optional[int] = None) -> NDArray[Any]:
        """The transposed convolution of ``input`` (see
        :func:`fastconv.conv_transpose2d`)."""
        threads = self.num_threads if num_threads is None else num_threads
        x = _as_array(input, "input")
        size = transpose_size(self._spec, x.shape, self.padding, self.output_padding)
        return self._spec.apply(x, size, num_threads=threads, out=out)

    def plan(self, input_shape: Sequence[int], dtype: DTypeLike = np.float32, *,
             num_threads: Optional[int] = None) -> Tuple[Plan, ...]:
        """The plan of each conv2d call a call on ``input_shape`` makes (one
        per group of output phases; see :func:`fastconv.plan`)."""
        threads = self.num_threads if num_threads is None else num_threads
        size = transpose_size(self._spec, tuple(input_shape), self.padding,
                              self.output_padding)
        probe = np.empty(0, dtype)
        compute_dtype = _result_dtypes(probe, self._spec.weight, self._spec.bias)[1]
        return self._spec.plans(input_shape, size, compute_dtype, _requested_threads(threads))

    def __repr__(self) -> str:
        parts = [f"{self.in_channels}, {self.out_channels}", f"kernel_size={self.kernel_size}"]
        for name, default in (("stride", (1, 1)), ("padding", (0, 0)),
                              ("output_padding", (0, 0)), ("dilation", (1, 1))):
            if getattr(self, name) != default:
                parts.append(f"{name}={getattr(self, name)}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        parts.append(f"bias={self._spec.bias is not None}")
        parts.append(f"dtype={self._spec.weight.dtype}")
        if self.algorithm != "auto":
            parts.append(f"algorithm={self.algorithm!r}")
        if self.num_threads is not None:
            parts.append(f"num_threads={self.num_threads}")
        if self.layout != "NCHW":
            parts.append(f"layout={self.layout!r}")
        return f"ConvTranspose2d({', '.join(parts)})"

    def __getstate__(self) -> Dict[str, Any]:
        spec = self._spec
        return {"weight": spec.weight, "bias": spec.bias, "stride": self.stride,
                "padding": self.padding, "output_padding": self.output_padding,
                "groups": spec.groups, "dilation": self.dilation,
                "algorithm": spec.algorithm, "num_threads": self.num_threads,
                "layout": spec.layout}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        layout = state.pop("layout", "NCHW") if isinstance(state, dict) else "NCHW"
        if not isinstance(state, dict):
            raise TypeError(
                f"ConvTranspose2d state must be a dict; got {type(state).__name__}")
        self.__init__(**state, layout=layout)  # type: ignore[misc]


def _import_torch(what: str) -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ImportError(f"{what} needs PyTorch, which is not installed "
                          "(pip install torch)") from exc
    return torch


def _torch_numpy(torch: Any, tensor: Any) -> NDArray[Any]:
    """A torch parameter as a NumPy array (detached, on the CPU; bfloat16 as float32)."""
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.numpy()
