"""Conv2d: a convolution with fixed weights, transformed once (private)."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Type, TypeVar, cast

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from ._checks import _as_array, _result_dtypes
from ._conv import Activation, Algorithm, ConvSpec, IntPair, Layout, PaddingArg, PaddingMode
from ._plan import Plan
from ._threads import check_num_threads, kernel_threads

__all__ = ["Conv2d"]

_Layer = TypeVar("_Layer", bound="Conv2d")

#: The keys of every state :meth:`Conv2d.__getstate__` has written.
_STATE_KEYS = ("weight", "bias", "stride", "padding", "dilation", "groups", "algorithm",
               "num_threads")
#: Keys added later, with the values of the layers pickled before they existed.
_LATER_STATE_KEYS: Dict[str, Any] = {"padding_mode": "zeros", "layout": "NCHW",
                                     "activation": None}


class Conv2d:
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
        try:
            import torch
        except ImportError as exc:
            raise ImportError(
                "Conv2d.from_torch needs PyTorch, which is not installed "
                "(pip install torch)") from exc
        if not isinstance(module, torch.nn.Conv2d):
            raise TypeError(
                f"Conv2d.from_torch needs a torch.nn.Conv2d; got {type(module).__name__}")

        def to_numpy(tensor: Any) -> NDArray[Any]:
            tensor = tensor.detach().cpu()
            if tensor.dtype == torch.bfloat16:
                tensor = tensor.float()
            return tensor.numpy()

        bias = None if module.bias is None else to_numpy(module.bias)
        padding = module.padding
        return cls(to_numpy(module.weight), bias, _int_pair(module.stride),
                   cast(PaddingArg, padding) if isinstance(padding, str) else _int_pair(padding),
                   _int_pair(module.dilation), module.groups, module.padding_mode, algorithm,
                   num_threads, layout=layout, activation=activation)

    @property
    def weight(self) -> NDArray[Any]:
        """ndarray of shape (K, C // groups, kH, kW): the layer's weights (read-only view)."""
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
    def stride(self) -> Tuple[int, int]:
        """(sH, sW)."""
        return self._spec.stride

    @property
    def dilation(self) -> Tuple[int, int]:
        """(dH, dW)."""
        return self._spec.dilation

    @property
    def groups(self) -> int:
        """The number of groups."""
        return self._spec.groups

    @property
    def padding(self) -> PaddingArg:
        """The padding as given (int, pair, "valid" or "same")."""
        return self._padding_arg

    @property
    def padding_mode(self) -> str:
        """"zeros", "reflect", "replicate" or "circular"."""
        return self._spec.padding_mode

    @property
    def algorithm(self) -> str:
        """The algorithm name the layer was made with (e.g. "auto")."""
        return self._spec.algorithm

    @property
    def layout(self) -> str:
        """"NCHW" or "NHWC": the layout of inputs and results."""
        return self._spec.layout

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
