"""The FFT convolution: running an ``algorithm="fft"`` plan (private).

Overlap-save over tiles (``fastconv._plan.fft`` chooses the windows and the
chunks): the windows of the padded input are transformed with a real FFT,
multiplied by the weights' conjugated spectra and summed over the input
channels (``fastconv._spectral``, on the GEMM tile), transformed back and
cropped into the output. The FFTs are SciPy's (``scipy.fft``, on the call's
threads) when SciPy is installed, else NumPy's (one thread); the plan's
``path`` says which (``fft_scipy`` or ``fft_numpy``).
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Tuple

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import NDArray

from . import _spectral, _winograd

if TYPE_CHECKING:
    from ._plan import Geometry, Plan

__all__ = ["backend", "set_backend", "weight_spectra", "convolve"]

_BACKEND: Optional[str] = None


def backend() -> str:
    """"scipy" when ``scipy.fft`` imports, else "numpy" (decided once)."""
    global _BACKEND
    if _BACKEND is None:
        try:
            import scipy.fft  # noqa: F401
        except ImportError:
            _BACKEND = "numpy"
        else:
            _BACKEND = "scipy"
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


def _transforms(threads: int, pool: Optional[ThreadPoolExecutor]
                ) -> Tuple[Callable[..., Any], Callable[..., Any]]:
    """rfft2 and irfft2 (over the last two axes unless told otherwise) on
    ``threads`` threads: SciPy's own (``workers``), or NumPy's split along
    the first axis among the ``pool``'s threads (NumPy's FFT releases the
    GIL; SciPy's holds it, so a Python pool would not help it)."""
    if backend() == "scipy":
        import scipy.fft

        def forward(a: NDArray[Any], shape: Tuple[int, int],
                    axes: Tuple[int, int] = (-2, -1)) -> NDArray[Any]:
            return scipy.fft.rfft2(a, s=shape, axes=axes, workers=threads)

        def inverse(a: NDArray[Any], shape: Tuple[int, int],
                    axes: Tuple[int, int] = (-2, -1)) -> NDArray[Any]:
            return scipy.fft.irfft2(a, s=shape, axes=axes, workers=threads)

        return forward, inverse

    def numpy_transform(function: Callable[..., Any]) -> Callable[..., Any]:
        def run(a: NDArray[Any], shape: Tuple[int, int],
                axes: Tuple[int, int] = (-2, -1)) -> NDArray[Any]:
            # The first axis not transformed is split among the threads.
            split = next(axis for axis in range(a.ndim) if axis not in (axes[0] % a.ndim,
                                                                        axes[1] % a.ndim))
            parts = _in_parallel(pool, lambda lo, hi: function(
                a[(slice(None),) * split + (slice(lo, hi),)], s=shape, axes=axes),
                a.shape[split])
            # Its result need not be C-contiguous over other axes than the last.
            return np.ascontiguousarray(np.concatenate(parts, axis=split)
                                        if len(parts) > 1 else parts[0])
        return run

    return numpy_transform(np.fft.rfft2), numpy_transform(np.fft.irfft2)


def _in_parallel(pool: Optional[ThreadPoolExecutor], work: Callable[[int, int], Any],
                 n: int) -> List[Any]:
    """``work(lo, hi)`` over [0, n) cut into one range per thread of
    ``pool`` (all of it on this thread without a pool); the results in
    order."""
    parts = 1 if pool is None else min(pool._max_workers, n)
    bounds = [n * i // parts for i in range(parts + 1)]
    if parts == 1:
        return [work(0, n)]
    return list(pool.map(work, bounds[:-1], bounds[1:]))


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
    rows = _rfft_rows(dilated, fft_w, threads)
    spectra = _fft_columns(rows, fft_h, threads)  # (K, C/groups, fft_h, fft_w // 2 + 1)
    frequencies = spectra.shape[2] * spectra.shape[3]
    if group_in == 1:
        return np.conj(spectra.reshape(out_channels, frequencies))
    mr, _ = _winograd.gemm_tile_shape(dtype)
    packed = np.empty((groups, frequencies, -(-2 * out_channels // groups // mr) * mr * 2
                       * group_in), dtype)
    parts = spectra.reshape(out_channels, group_in, frequencies).view(dtype)
    with _pool(threads) as pool:
        _in_parallel(pool, lambda lo, hi: _spectral.pack_weights(parts, packed, groups, lo, hi),
                     frequencies)
    return packed


def _rfft_rows(a: NDArray[Any], n: int, threads: int) -> NDArray[Any]:
    if backend() == "scipy":
        import scipy.fft
        return scipy.fft.rfft(a, n=n, axis=-1, workers=threads)
    return np.fft.rfft(a, n=n, axis=-1)


def _fft_columns(a: NDArray[Any], n: int, threads: int) -> NDArray[Any]:
    if backend() == "scipy":
        import scipy.fft
        return scipy.fft.fft(a, n=n, axis=-2, workers=threads)
    return np.fft.fft(a, n=n, axis=-2)


def _pool(threads: int) -> Any:
    """A thread pool for one call (None, as a context, for one thread):
    threads that wait on locks, so none spins beside SciPy's FFT threads as
    an OpenMP team would (its spin-wait took their core: (1,16,256,256)
    11x11 at 2 threads took 73 ms, 17 ms with OMP_WAIT_POLICY=passive).
    One per call, so that a forked child never inherits a pool's threads."""
    if threads <= 1:
        return contextlib.nullcontext(None)
    return ThreadPoolExecutor(threads, thread_name_prefix="fastconv-fft")


def convolve(plan: Plan, geo: Geometry, x: NDArray[Any], spectra: NDArray[Any],
             bias: NDArray[Any], target: NDArray[Any], pad_top: int, pad_left: int,
             relu: bool, check_finite: bool = False) -> bool:
    """Run ``plan`` into ``target`` (NCHW, the compute dtype) from ``x``
    (NCHW, padded already unless ``pad_top``/``pad_left`` say otherwise, the
    bottom/right padding being zeros). With ``check_finite``, returns
    whether every result is finite (else True).

    With at least as many chunks as threads (``blocking["workers"]`` > 1)
    each thread runs whole chunks; otherwise the chunks run one after the
    other, each step on all the threads: the FFTs on the FFT library's, the
    spectral products split by frequency and the cropping by output channel
    among a pool's."""
    b = plan.blocking
    tile_h, tiles_h, tiles_w = b["tile_h"], b["tiles_h"], b["tiles_w"]
    span_h, span_w = b["fft_h"] - tile_h + 1, b["fft_w"] - b["tile_w"] + 1
    # Zeros past the padded input fill the last windows: their outputs are
    # cropped.
    padded = np.zeros((geo.batch, geo.channels, tiles_h * tile_h + span_h - 1,
                       tiles_w * b["tile_w"] + span_w - 1), target.dtype)
    padded[:, :, pad_top:pad_top + x.shape[2], pad_left:pad_left + x.shape[3]] = x
    chunks = [(n0, min(b["images"], geo.batch - n0), row0, min(b["band_rows"], tiles_h - row0))
              for n0 in range(0, geo.batch, b["images"])
              for row0 in range(0, tiles_h, b["band_rows"])]
    with _pool(plan.threads) as pool:
        if b["workers"] > 1:
            # Whole chunks per thread (each step of a chunk on one thread):
            # its chunk stays in its core's caches, nothing waits between steps.
            return all(list(pool.map(lambda chunk: _chunk(
                chunk, 1, None, b, geo, padded, spectra, bias, target, relu, check_finite),
                chunks)))
        # Too few chunks for that: each step of a chunk on all the threads.
        return all([_chunk(chunk, plan.threads, pool, b, geo, padded, spectra, bias, target,
                           relu, check_finite) for chunk in chunks])


def _chunk(chunk: Tuple[int, int, int, int], threads: int, pool: Any, b: Any,
           geo: Geometry, padded: NDArray[Any], spectra: NDArray[Any], bias: NDArray[Any],
           target: NDArray[Any], relu: bool, check_finite: bool) -> bool:
    """One chunk (``images`` images from n0, ``rows`` rows of tiles from
    row0) into ``target``; whether its results are finite (if checked)."""
    n0, images, row0, rows = chunk
    fft_h, fft_w, tile_h, tile_w = b["fft_h"], b["fft_w"], b["tile_h"], b["tile_w"]
    tiles_w = b["tiles_w"]
    forward, inverse = _transforms(threads, pool)
    s_n, s_c, s_h, s_w = padded.strides
    # Every window of the chunk, channels first: (C, images, rows, tiles_w,
    # fft_h, fft_w), a view of the padded input.
    windows = as_strided(padded[n0:, :, row0 * tile_h:],
                         (geo.channels, images, rows, tiles_w, fft_h, fft_w),
                         (s_c, s_n, tile_h * s_h, tile_w * s_w, s_h, s_w), writeable=False)
    columns = images * rows * tiles_w
    if geo.group_in == 1:
        y_windows = _broadcast_products(forward, inverse, pool, windows, spectra, geo,
                                        columns, (fft_h, fft_w))
    else:
        y_windows = _gemm_products(forward, inverse, pool, windows, spectra, geo, b,
                                   columns, (fft_h, fft_w))
    top = row0 * tile_h
    dest = target[n0:n0 + images, :, top:min(top + rows * tile_h, geo.out_h)]

    def crop(lo: int, hi: int) -> bool:
        part = dest[:, lo:hi]
        _crop_into(part, y_windows[lo:hi], bias[lo:hi], tile_h, tile_w)
        finite = not check_finite or bool(np.isfinite(part).all())
        if relu:
            np.maximum(part, 0, out=part)
        return finite

    return all(_in_parallel(pool, crop, geo.out_channels))


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


def _broadcast_products(forward: Callable[..., Any], inverse: Callable[..., Any], pool: Any,
                        windows: NDArray[Any], spectra: NDArray[Any], geo: Geometry,
                        columns: int, shape: Tuple[int, int]) -> NDArray[Any]:
    """One input channel per group: ``Y[k] = X[group of k] * G[k]`` by NumPy
    broadcasting (split by tiles among the pool's threads), FFTs over the
    last axes. Returns the output windows (K, images, rows, tiles_w, fft_h,
    fft_w)."""
    x_spectra = forward(windows, shape)
    frequencies = x_spectra.shape[-2] * x_spectra.shape[-1]
    x_groups = x_spectra.reshape(geo.groups, 1, columns, frequencies)
    g_groups = spectra.reshape(geo.groups, geo.group_out, 1, frequencies)
    y_spectra = np.empty((geo.groups, geo.group_out, columns, frequencies), x_spectra.dtype)
    _in_parallel(pool, lambda lo, hi: np.multiply(x_groups[:, :, lo:hi], g_groups,
                                                  out=y_spectra[:, :, lo:hi]), columns)
    return inverse(y_spectra.reshape((geo.out_channels,) + x_spectra.shape[1:]), shape)


def _gemm_products(forward: Callable[..., Any], inverse: Callable[..., Any], pool: Any,
                   windows: NDArray[Any], spectra: NDArray[Any], geo: Geometry, b: Any,
                   columns: int, shape: Tuple[int, int]) -> NDArray[Any]:
    """``Y[f, k, p] = sum_c X[f, c, p] * G[f, k, c]`` per group on the GEMM
    tile (``fastconv._spectral``, split by frequency among the pool's
    threads), FFTs over the first axes so that each frequency's matrices are
    contiguous. Returns the output windows as a view (K, images, rows,
    tiles_w, fft_h, fft_w)."""
    # (fft_h, fft_w, C, images, rows, tiles_w): a view, the FFT axes first.
    x_spectra = forward(windows.transpose(4, 5, 0, 1, 2, 3), shape, axes=(0, 1))
    frequencies = x_spectra.shape[0] * x_spectra.shape[1]
    x_parts = x_spectra.reshape(frequencies, geo.channels, columns).view(
        x_spectra.real.dtype)
    y_spectra = np.empty((frequencies, geo.out_channels, columns), x_spectra.dtype)
    y_parts = y_spectra.view(x_parts.dtype)
    _in_parallel(pool, lambda lo, hi: _spectral.spectral_products(
        x_parts, spectra, y_parts, geo.groups, 1, b, lo, hi), frequencies)
    y_windows = inverse(y_spectra.reshape(x_spectra.shape[:2] + (geo.out_channels,)
                                          + windows.shape[1:4]), shape, axes=(0, 1))
    return y_windows.transpose(2, 3, 4, 5, 0, 1)
