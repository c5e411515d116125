"""The FFT convolution: running an ``algorithm="fft"`` plan (private).

Overlap-save over tiles (``fastconv._plan.fft`` chooses the windows and the
chunks): the windows of the padded input are transformed with a real FFT,
multiplied by the weights' conjugated spectra and summed over the input
channels (``fastconv._spectral``, on the GEMM tile), transformed back and
cropped into the output. The FFTs are SciPy's (``scipy.fft``) when SciPy is
installed, else NumPy's; the plan's ``path`` says which (``fft_scipy`` or
``fft_numpy``).

Threads: the chunks are shared out among the call's OpenMP threads
(:func:`fastconv._spectral.run_chunks`), each running its chunk's FFTs,
products and cropping on one thread. Both FFT libraries and the products
release the GIL while they compute. OpenMP's threads, not a Python pool or
SciPy's ``workers``: after an OpenMP region (the previous layer's direct
kernel, say) its threads spin for a while, and a second pool's threads would
then share the cores with them (at 2 threads, (1,32,128,128) 15x15 right
after a direct call took 22.6 ms instead of 13).
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import NDArray

from . import _spectral, _winograd

if TYPE_CHECKING:
    from ._plan import Geometry, Plan

__all__ = ["backend", "set_backend", "weight_spectra", "convolve"]

_BACKEND: Optional[str] = None


def backend() -> str:
    """"scipy" when SciPy is installed, else "numpy" (decided once, without
    importing SciPy: the planner asks on every large-kernel layer, and
    ``scipy.fft`` takes ~0.1 s to import, paid only when an FFT runs)."""
    global _BACKEND
    if _BACKEND is None:
        _BACKEND = "scipy" if importlib.util.find_spec("scipy") is not None else "numpy"
    return _BACKEND


def set_backend(name: Optional[str]) -> None:
    """Use ``name`` ("scipy" or "numpy") from now on, or decide again
    (None); forgets the cached plans, whose paths name the backend. For
    tests and benchmarks."""
    global _BACKEND
    if name not in (None, "scipy", "numpy"):
        raise ValueError(f"backend must be 'scipy', 'numpy' or None; got {name!r}")
    _BACKEND = name
    from ._plan import clear_cache
    clear_cache()


def _library() -> Any:
    """``scipy.fft`` or ``numpy.fft``, as :func:`backend` says: the calls
    used here take the same arguments in both."""
    if backend() == "scipy":
        import scipy.fft
        return scipy.fft
    return np.fft


def _forward(fft: Any, a: NDArray[Any], shape: Tuple[int, int],
             axes: Tuple[int, int] = (-2, -1)) -> NDArray[Any]:
    """rfft2 of ``a`` over ``axes``, C-contiguous (NumPy's need not be over
    other axes than the last)."""
    return np.ascontiguousarray(fft.rfft2(a, s=shape, axes=axes))


def _ranges(n: int, parts: int) -> List[Tuple[int, int]]:
    """[0, n) cut into ``parts`` ranges of nearly equal size."""
    bounds = [n * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def weight_spectra(weight: NDArray[Any], groups: int, dilation: Tuple[int, int],
                   shape: Tuple[int, int], dtype: np.dtype[Any], threads: int) -> NDArray[Any]:
    """The conjugated spectra of the (dilated) weights for windows of
    ``shape``, in ``dtype``: complex of shape (K, F) with one input channel
    per group (NumPy multiplies them), else packed for
    :func:`fastconv._spectral.spectral_products`."""
    out_channels, group_in, kernel_h, kernel_w = weight.shape
    dil_h, dil_w = dilation
    dilated = np.zeros((out_channels, group_in, dil_h * (kernel_h - 1) + 1,
                        dil_w * (kernel_w - 1) + 1), dtype)
    dilated[:, :, ::dil_h, ::dil_w] = weight
    # Rows first, on the kernel's rows only (the window's other rows are
    # zeros), then the columns: cheaper than a 2-D FFT of zero-padded kernels.
    fft_h, fft_w = shape
    spectra = np.empty((out_channels, group_in, fft_h, fft_w // 2 + 1),
                       np.result_type(dtype, np.complex64))
    parts = _ranges(out_channels, min(threads, out_channels))
    fft = _library()

    def transform(part: int) -> None:
        lo, hi = parts[part]
        rows = fft.rfft(dilated[lo:hi], n=fft_w, axis=-1)
        spectra[lo:hi] = fft.fft(rows, n=fft_h, axis=-2)

    _spectral.run_chunks(transform, len(parts), threads)
    frequencies = fft_h * (fft_w // 2 + 1)
    if group_in == 1:
        return np.conj(spectra.reshape(out_channels, frequencies))
    mr, _ = _winograd.gemm_tile_shape(dtype)
    packed = np.empty((groups, frequencies, -(-2 * out_channels // groups // mr) * mr * 2
                       * group_in), dtype)
    parts_view = spectra.reshape(out_channels, group_in, frequencies).view(dtype)
    return _spectral.pack_weights(parts_view, packed, groups, threads)


def convolve(plan: Plan, geo: Geometry, x: NDArray[Any], spectra: NDArray[Any],
             bias: NDArray[Any], target: NDArray[Any], pad_top: int, pad_left: int,
             relu: bool, check_finite: bool = False) -> bool:
    """Run ``plan`` into ``target`` (NCHW, the compute dtype) from ``x``
    (NCHW, padded already unless ``pad_top``/``pad_left`` say otherwise, the
    bottom/right padding being zeros), the chunks shared out among the
    plan's threads. With ``check_finite``, returns whether every result is
    finite (else True)."""
    b = plan.blocking
    tile_h, tiles_h, tiles_w = b["tile_h"], b["tiles_h"], b["tiles_w"]
    span_h, span_w = b["fft_h"] - tile_h + 1, b["fft_w"] - b["tile_w"] + 1
    # Zeros past the padded input fill the last windows: their outputs are
    # cropped.
    padded = np.zeros((geo.batch, geo.channels, tiles_h * tile_h + span_h - 1,
                       tiles_w * b["tile_w"] + span_w - 1), target.dtype)
    padded[:, :, pad_top:pad_top + x.shape[2], pad_left:pad_left + x.shape[3]] = x
    chunks = [(n0, min(b["images"], geo.batch - n0), row0, min(b["band_rows"], tiles_h - row0),
               col0, min(b["band_cols"], tiles_w - col0))
              for n0 in range(0, geo.batch, b["images"])
              for row0 in range(0, tiles_h, b["band_rows"])
              for col0 in range(0, tiles_w, b["band_cols"])]
    finite = [True] * len(chunks)

    def run(index: int) -> None:
        finite[index] = _chunk(chunks[index], b, geo, padded, spectra, bias, target, relu,
                               check_finite)

    _spectral.run_chunks(run, len(chunks), plan.threads)
    return all(finite)


def _chunk(chunk: Tuple[int, ...], b: Any, geo: Geometry, padded: NDArray[Any],
           spectra: NDArray[Any], bias: NDArray[Any], target: NDArray[Any], relu: bool,
           check_finite: bool) -> bool:
    """One chunk (``images`` images from n0, ``rows`` rows of tiles from
    row0, ``cols`` tiles of each from col0) into ``target``, on the calling
    thread; whether its results are finite (if checked)."""
    n0, images, row0, rows, col0, cols = chunk
    fft_h, fft_w, tile_h, tile_w = b["fft_h"], b["fft_w"], b["tile_h"], b["tile_w"]
    fft = _library()
    s_n, s_c, s_h, s_w = padded.strides
    # Every window of the chunk, channels first: (C, images, rows, cols,
    # fft_h, fft_w), a view of the padded input.
    windows = as_strided(padded[n0:, :, row0 * tile_h:, col0 * tile_w:],
                         (geo.channels, images, rows, cols, fft_h, fft_w),
                         (s_c, s_n, tile_h * s_h, tile_w * s_w, s_h, s_w), writeable=False)
    columns = images * rows * cols
    if geo.group_in == 1:
        y_windows = _broadcast_products(fft, windows, spectra, geo, columns, (fft_h, fft_w))
    else:
        y_windows = _gemm_products(fft, windows, spectra, geo, b, columns, (fft_h, fft_w))
    top, left = row0 * tile_h, col0 * tile_w
    dest = target[n0:n0 + images, :, top:min(top + rows * tile_h, geo.out_h),
                  left:min(left + cols * tile_w, geo.out_w)]
    _crop_into(dest, y_windows, bias, tile_h, tile_w)
    finite = not check_finite or bool(np.isfinite(dest).all())
    if relu:
        np.maximum(dest, 0, out=dest)
    return finite


def _crop_into(dest: NDArray[Any], y_windows: NDArray[Any], bias: NDArray[Any],
               tile_h: int, tile_w: int) -> None:
    """``dest`` (images, K, height, width) = the first tile_h x tile_w values
    of the output windows ``y_windows`` (K, images, rows, tiles_w, fft_h,
    fft_w) + bias, in one pass: the full tiles, then the clipped last row
    and column of tiles."""
    images, channels, height, width = dest.shape
    s_n, s_k, s_h, s_w = dest.strides
    bias6 = bias.reshape(1, channels, 1, 1, 1, 1)
    full_rows, last_h = divmod(height, tile_h)
    full_cols, last_w = divmod(width, tile_w)
    for row0, n_rows, h in ((0, full_rows, tile_h), (full_rows, 1, last_h)):
        for col0, n_cols, w in ((0, full_cols, tile_w), (full_cols, 1, last_w)):
            if not (n_rows and h and n_cols and w):
                continue
            source = y_windows[:, :, row0:row0 + n_rows, col0:col0 + n_cols, :h, :w]
            region = as_strided(dest[:, :, row0 * tile_h:, col0 * tile_w:],
                                 (images, channels, n_rows, h, n_cols, w),
                                 (s_n, s_k, tile_h * s_h, s_h, tile_w * s_w, s_w))
            np.add(source.transpose(1, 0, 2, 4, 3, 5), bias6, out=region)


def _broadcast_products(fft: Any, windows: NDArray[Any], spectra: NDArray[Any], geo: Geometry,
                        columns: int, shape: Tuple[int, int]) -> NDArray[Any]:
    """One input channel per group: ``Y[k] = X[group of k] * G[k]`` by NumPy
    broadcasting, FFTs over the last axes. Returns the output windows
    (K, images, rows, tiles_w, fft_h, fft_w)."""
    x_spectra = _forward(fft, windows, shape)
    frequencies = x_spectra.shape[-2] * x_spectra.shape[-1]
    y_spectra = (x_spectra.reshape(geo.groups, 1, columns, frequencies)
                 * spectra.reshape(geo.groups, geo.group_out, 1, frequencies))
    return fft.irfft2(y_spectra.reshape((geo.out_channels,) + x_spectra.shape[1:]), s=shape)


def _gemm_products(fft: Any, windows: NDArray[Any], spectra: NDArray[Any], geo: Geometry, b: Any,
                   columns: int, shape: Tuple[int, int]) -> NDArray[Any]:
    """``Y[f, k, p] = sum_c X[f, c, p] * G[f, k, c]`` per group on the GEMM
    tile (``fastconv._spectral``), FFTs over the first axes so that each
    frequency's matrices are contiguous. Returns the output windows as a
    view (K, images, rows, tiles_w, fft_h, fft_w)."""
    # (fft_h, fft_w, C, images, rows, tiles_w): a view, the FFT axes first.
    x_spectra = _forward(fft, windows.transpose(4, 5, 0, 1, 2, 3), shape, axes=(0, 1))
    frequencies = x_spectra.shape[0] * x_spectra.shape[1]
    x_parts = x_spectra.reshape(frequencies, geo.channels, columns).view(
        x_spectra.real.dtype)
    y_spectra = np.empty((frequencies, geo.out_channels, columns), x_spectra.dtype)
    _spectral.spectral_products(x_parts, spectra, y_spectra.view(x_parts.dtype), geo.groups,
                                1, b)
    y_windows = fft.irfft2(y_spectra.reshape(x_spectra.shape[:2] + (geo.out_channels,)
                                             + windows.shape[1:4]), s=shape, axes=(0, 1))
    return y_windows.transpose(2, 3, 4, 5, 0, 1)
