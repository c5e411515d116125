"""Conv2d: a convolution with fixed weights, transformed once (private)."""

import numpy as np

from ._conv import ConvSpec, _check_num_threads

__all__ = ["Conv2d"]


class Conv2d:
    """A 2-D convolution layer holding its weights, for repeated calls.

    The weights are validated once, and packed (direct) or transformed
    (Winograd ``U = G g G^T``) the first time each algorithm and dtype is
    used; later calls reuse them, so an inference pipeline never pays the
    weight transform twice. ``layer(x)`` equals
    ``conv2d(x, weight, bias, stride, padding, dilation, groups,
    algorithm=algorithm, num_threads=num_threads)``.

    Parameters
    ----------
    weight : array_like of shape (K, C // groups, kH, kW)
        Copied: changing the caller's array later does not change the layer.
    bias : array_like of shape (K,), optional
    stride, padding, dilation, groups
        As for :func:`fastconv.conv2d`.
    algorithm : str, default="auto"
        As for :func:`fastconv.conv2d`; ``"auto"`` decides per input shape.
    num_threads : int, optional
        Default thread count of the calls (``None``: OpenMP's default).

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> layer = fastconv.Conv2d(np.ones((2, 3, 3, 3), np.float32), padding=1)
    >>> layer(np.ones((1, 3, 8, 8), np.float32)).shape
    (1, 2, 8, 8)
    """

    def __init__(self, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                 *, algorithm="auto", num_threads=None):
        _check_num_threads(num_threads)
        weight = np.array(weight, copy=True)
        bias = None if bias is None else np.array(bias, copy=True)
        self._spec = ConvSpec(weight, bias, stride, padding, dilation, groups,
                              algorithm=algorithm, cache=True)
        self._padding_arg = padding
        self.num_threads = num_threads

    @property
    def weight(self):
        """ndarray of shape (K, C // groups, kH, kW): the layer's weights (read-only view)."""
        view = self._spec.weight.view()
        view.flags.writeable = False
        return view

    @property
    def bias(self):
        """ndarray of shape (K,) or None (read-only view)."""
        if self._spec.bias is None:
            return None
        view = self._spec.bias.view()
        view.flags.writeable = False
        return view

    in_channels = property(lambda self: self._spec.in_channels, doc="C")
    out_channels = property(lambda self: self._spec.out_channels, doc="K")
    kernel_size = property(lambda self: self._spec.kernel_size, doc="(kH, kW)")
    stride = property(lambda self: self._spec.stride, doc="(sH, sW)")
    dilation = property(lambda self: self._spec.dilation, doc="(dH, dW)")
    groups = property(lambda self: self._spec.groups, doc="groups")
    algorithm = property(lambda self: self._spec.algorithm, doc="algorithm name")

    @property
    def padding(self):
        """The padding as given (int, pair, "valid" or "same")."""
        return self._padding_arg

    def __call__(self, input, *, out=None, num_threads=None):
        """Convolve ``input`` of shape (N, C, H, W) or (C, H, W).

        Parameters
        ----------
        input : array_like
        out : ndarray, optional
            As for :func:`fastconv.conv2d`.
        num_threads : int, optional
            Overrides the layer's ``num_threads`` for this call.

        Returns
        -------
        output : ndarray of shape (N, K, H_out, W_out) or (K, H_out, W_out)
        """
        threads = self.num_threads if num_threads is None else num_threads
        return self._spec.apply(input, num_threads=threads, out=out)

    def algorithm_for(self, input_shape, dtype=np.float32):
        """The algorithm ``"auto"`` runs for an input of ``input_shape``:
        ``"direct"`` or ``"winograd2"``/``"winograd4"``/``"winograd6"``."""
        shape = tuple(input_shape)
        batch = shape[0] if len(shape) == 4 else 1
        out_size = self._spec.output_shape(shape[-2:])
        kind, tile = self._spec.choose_algorithm(batch, out_size, np.dtype(dtype))
        return kind if tile is None else f"winograd{tile}"

    def __repr__(self):
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
        parts.append(f"bias={self._spec.bias is not None}")
        parts.append(f"dtype={self._spec.weight.dtype}")
        if self.algorithm != "auto":
            parts.append(f"algorithm={self.algorithm!r}")
        if self.num_threads is not None:
            parts.append(f"num_threads={self.num_threads}")
        return f"Conv2d({', '.join(parts)})"

    def __getstate__(self):
        # The packed weights depend on the CPU's SIMD level: rebuild them
        # where the layer is unpickled.
        spec = self._spec
        return {"weight": spec.weight, "bias": spec.bias, "stride": spec.stride,
                "padding": self._padding_arg, "dilation": spec.dilation,
                "groups": spec.groups, "algorithm": spec.algorithm,
                "num_threads": self.num_threads}

    def __setstate__(self, state):
        self.__init__(state["weight"], state["bias"], state["stride"], state["padding"],
                      state["dilation"], state["groups"], algorithm=state["algorithm"],
                      num_threads=state["num_threads"])
