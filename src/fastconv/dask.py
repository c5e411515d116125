"""fastconv on Dask arrays: lazy convolutions of arrays larger than memory.

``import fastconv`` never imports this module (nor Dask);
``import fastconv.dask`` does, and needs the ``dask`` extra
(``pip install "fastconv[dask]"``: ``dask[array]`` and ``distributed``).

* :func:`conv2d`: :func:`fastconv.conv2d` on a ``dask.array.Array``.
* :func:`apply`: a prepared :class:`fastconv.Conv2d` layer on one.
* :func:`sequential`: a chain of layers with one halo for the whole chain.

How a call is cut
-----------------
The output's chunks are chosen first: batch chunks are the input's, the
channel axis is one chunk, and each spatial axis gets the output boundary
``ceil((b + pad_before - dilation*(k-1)//2) / stride)`` for each input
boundary ``b`` (the output rows whose window is centred in the input chunk;
with ``padding="same"`` and stride 1 the output's chunks are the input's).
Each output chunk is computed, in one task, from exactly the input region
its windows read: rows ``o0*stride - pad_before`` to
``(o1-1)*stride - pad_before + dilation*(k-1)`` inclusive, which the task
receives as slices of the input blocks it touches (only those slices travel
between workers). Rows of that region outside the image are filled as
fastconv pads the whole image (zeros, or the rows that ``reflect``,
``replicate`` or ``circular`` padding copies, by the same index maps), and the
region is convolved with no padding. Batch-only chunks therefore need no
communication at all. Chunks along the channel axis are merged first: the
channels are the convolution's reduction axis.

Exactness
---------
Every chunk runs the algorithm (and Winograd tile size) that
:func:`fastconv.plan` picks for the *whole* array, and a Winograd chunk
computes the whole call's tile grid (its rows are widened to multiples of the
tile size, then cropped). The result is then bit-identical to the same call
on the whole array for the direct kernel and Winograd (tested for F(2x2),
F(4x4), F(6x6)); the FFT's chunks choose their own windows and batch their
transforms differently, so they agree with the whole call within the FFT's
error bound (docs/algorithms.md), not to the bit. ``-0.0`` and ``0.0`` may differ where the
whole call skips padding that a chunk adds as explicit zeros. One exception:
with ``algorithm="auto"``, a Winograd chunk whose result holds NaN or Inf is
recomputed with the direct kernel, per chunk, where the whole call recomputes
everything: with NaN or Inf in the data, other chunks may then differ from
the whole call's by Winograd's rounding error (docs/algorithms.md).

Threads
-------
Each task calls the kernels with ``num_threads`` = the cores its process may
use (``os.sched_getaffinity``) divided by the tasks that may run at once on
those cores: on a ``distributed`` cluster, the threads of all the worker
processes on the worker's host (read from the client when the graph is
built; else the worker's own ``nthreads``); under Dask's threaded scheduler,
its pool size (``dask.config`` ``num_workers``, else the CPU count); under
the synchronous scheduler, all cores. ``num_threads=`` overrides it.
"""

from __future__ import annotations

import copy
import math
import multiprocessing
import os
import threading
from itertools import product
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph
from numpy.typing import ArrayLike, NDArray

from ._checks import _result_dtypes
from ._conv import Activation, Algorithm, ConvSpec, IntPair, Layout, PaddingArg, PaddingMode
from ._layer import Conv2d
from ._padding import _source_index
from ._threads import check_num_threads, kernel_threads

__all__ = ["conv2d", "apply", "sequential"]


# -- what runs on the workers ---------------------------------------------------

class _ChunkSpec(ConvSpec):
    """A layer's spec as a chunk runs it: no padding (the task pads), and
    the algorithm and tile the whole array's plan picked (its
    ``plan_algorithm``). ``algorithm`` stays "auto" when the caller's was, so that a Winograd chunk holding NaN or Inf
    is recomputed with the direct kernel as "auto" does."""

    def __init__(self, settings: Dict[str, Any], forced: str, prepared: bool) -> None:
        super().__init__(settings["weight"], settings["bias"], settings["stride"], 0,
                         settings["dilation"], settings["groups"],
                         algorithm=settings["algorithm"], cache=True,
                         layout=settings["layout"], activation=settings["activation"])
        self.forced, self.prepared = forced, prepared
        self.plan_algorithm, self.plan_prepared = forced, prepared
        self._zero_padded: Dict[Any, _ChunkSpec] = {}

    def zero_padded(self, pads: Tuple[Tuple[int, int], Tuple[int, int]]) -> "_ChunkSpec":
        """This spec with implicit zero padding ``pads`` (the kernels' own,
        no padded copy), sharing its packed weights."""
        if pads == ((0, 0), (0, 0)):
            return self
        spec = self._zero_padded.get(pads)
        if spec is None:
            spec = copy.copy(self)
            spec.padding, spec._last_geometry = pads, (None, None)
            self._zero_padded[pads] = spec
        return spec


class _Chain:
    """The layers of one graph, sent to each worker once (one key of the
    graph); their packed weights are built there on first use and kept."""

    def __init__(self, settings: List[Dict[str, Any]], forced: List[str],
                 prepared: bool) -> None:
        self.settings, self.forced, self.prepared = settings, forced, prepared
        self._specs: Optional[List[_ChunkSpec]] = None
        self._lock = threading.Lock()

    def specs(self) -> List[_ChunkSpec]:
        with self._lock:
            if self._specs is None:
                self._specs = [_ChunkSpec(s, f, self.prepared)
                               for s, f in zip(self.settings, self.forced)]
            return self._specs

    def __getstate__(self) -> Dict[str, Any]:
        return {"settings": self.settings, "forced": self.forced, "prepared": self.prepared}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__init__(state["settings"], state["forced"], state["prepared"])  # type: ignore[misc]


def _take(array: NDArray[Any], index: NDArray[np.intp], axis: int) -> NDArray[Any]:
    """``array`` indexed along ``axis``; index -1 gives zeros."""
    if index.size and index[0] >= 0 and np.array_equal(
            index, np.arange(index[0], index[0] + index.size)):
        where: List[Any] = [slice(None)] * array.ndim
        where[axis] = slice(int(index[0]), int(index[0]) + index.size)
        return array[tuple(where)]
    zero_shape = list(array.shape)
    zero_shape[axis] = 1
    padded = np.concatenate([array, np.zeros(zero_shape, array.dtype)], axis=axis)
    return np.take(padded, index, axis=axis)


def _zero_ends(index: NDArray[np.intp]) -> Optional[Tuple[int, int, int]]:
    """(zeros before, start, zeros after) when ``index`` is -1s, then
    ``start, start + 1, ...``, then -1s; else None."""
    inside = np.flatnonzero(index >= 0)
    if not inside.size:
        return None
    first, last = int(inside[0]), int(inside[-1])
    start = int(index[first])
    if (np.array_equal(index[first:last + 1], np.arange(start, start + last + 1 - first))
            and not (index[:first] >= 0).any() and not (index[last + 1:] >= 0).any()):
        return first, start, index.size - 1 - last
    return None


def _run_block(chain: _Chain, blocks: List[List[NDArray[Any]]], steps: Any,
               crop: Tuple[slice, slice], axes: Tuple[int, int],
               threads: Any) -> NDArray[Any]:
    """One output chunk: the input region from its blocks' slices, then each
    layer on its padded region, then the crop to the chunk."""
    h_axis, w_axis = axes
    region = (blocks[0][0] if len(blocks) == 1 and len(blocks[0]) == 1 else
              np.concatenate([np.concatenate(row, axis=w_axis) for row in blocks],
                             axis=h_axis))
    num_threads = _task_threads(threads)
    for spec, maps in zip(chain.specs(), steps):
        # Zeros only at the ends (zero padding) are the kernels' implicit
        # padding; anything else is gathered into a padded copy.
        pads = []
        for axis, index in zip(axes, maps):
            ends = _zero_ends(index)
            if ends is None:
                region = _take(region, index, axis)
                pads.append((0, 0))
            else:
                before, start, after = ends
                region = _take(region, np.arange(start, start + index.size - before - after),
                               axis)
                pads.append((before, after))
        region = spec.zero_padded((pads[0], pads[1])).apply(region, num_threads=num_threads)
    where: List[Any] = [slice(None)] * region.ndim
    where[h_axis], where[w_axis] = crop
    return np.ascontiguousarray(region[tuple(where)])


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _current_worker() -> Any:
    try:
        from distributed import get_worker
        return get_worker()
    except (ImportError, ValueError):
        return None


def _task_threads(threads: Any) -> int:
    """The threads of one task: an int (the caller's ``num_threads``), or a
    mapping of worker address to threads read when the graph was built."""
    if isinstance(threads, int):
        return threads
    cores = _cores()
    worker = _current_worker()
    if worker is not None:
        known = threads.get(worker.address) if threads else None
        return known or max(1, cores // max(1, worker.state.nthreads))
    if (threading.current_thread() is threading.main_thread()
            and multiprocessing.parent_process() is None):
        return cores  # the synchronous scheduler: one task at a time
    pool = dask.config.get("num_workers", None) or dask.system.CPU_COUNT
    return max(1, cores // pool)


def _cluster_threads() -> Dict[str, int]:
    """Threads per task on each worker of the default ``distributed``
    client (none: empty): the cores of the worker's process over the
    threads of all the workers on its host."""
    try:
        from distributed import default_client
        client = default_client()
    except (ImportError, ValueError):
        return {}
    workers = client.scheduler_info(n_workers=-1)["workers"]
    cores = client.run(_cores)
    per_host: Dict[str, int] = {}
    for info in workers.values():
        per_host[info["host"]] = per_host.get(info["host"], 0) + info["nthreads"]
    return {address: max(1, cores.get(address, 1) // per_host[info["host"]])
            for address, info in workers.items()}


# -- the graph ----------------------------------------------------------------

def _layer_settings(layer: Conv2d) -> Dict[str, Any]:
    state = layer.__getstate__()
    state["pads"] = layer._spec.padding  # resolved ((top, bottom), (left, right))
    return state


def _output_chunks(chunks: Tuple[int, ...], size: int, out_size: int, kernel: int,
                   stride: int, dilation: int, before: int) -> Tuple[int, ...]:
    """The output's chunks along one spatial axis (see the module's doc)."""
    half = dilation * (kernel - 1) // 2
    bounds = [0]
    for b in np.cumsum(chunks)[:-1]:
        bound = min(max(-(-(int(b) + before - half) // stride), 0), out_size)
        if bound > bounds[-1]:
            bounds.append(bound)
    if out_size > bounds[-1]:
        bounds.append(out_size)
    return tuple(int(b - a) for a, b in zip(bounds[:-1], bounds[1:]))


def _axis_steps(layers: List[Dict[str, Any]], tiles: List[Optional[int]], sizes: List[int],
                axis: int, o0: int, o1: int) -> Tuple[int, int, List[NDArray[np.intp]], int]:
    """Along one spatial axis (0: H, 1: W), for the output range [o0, o1) of
    the last layer: the input range [i0, i1) to read, each layer's index
    map into the previous stage (-1: zeros), and the crop start."""
    maps: List[NDArray[np.intp]] = []
    a, b = o0, o1
    starts = []
    for index in range(len(layers) - 1, -1, -1):
        s = layers[index]
        size, out_size = sizes[index], sizes[index + 1]
        tile = tiles[index]
        if tile:
            a, b = a // tile * tile, min(-(-b // tile) * tile, out_size)
        starts.append(a)
        kernel = s["weight"].shape[2 + axis]
        stride, dilation = s["stride"][axis], s["dilation"][axis]
        before, after = s["pads"][axis]
        mode = s["padding_mode"]
        p0 = a * stride
        p1 = (b - 1) * stride + dilation * (kernel - 1) + 1  # in padded coordinates
        if mode == "zeros":
            source = np.arange(p0, p1) - before
            source[(source < 0) | (source >= size)] = -1
        else:
            source = _source_index(size, before, after, mode)[p0:p1]
        valid = source[source >= 0]
        lo, hi = (int(valid.min()), int(valid.max()) + 1) if valid.size else (0, 1)
        maps.append(source.astype(np.intp))  # made relative below
        a, b = lo, hi
    maps.reverse()
    starts.reverse()
    # Each layer reads the previous stage: the input region (from a) or the
    # range the layer before computed (from its start).
    for index, source in enumerate(maps):
        origin = a if index == 0 else starts[index - 1]
        maps[index] = np.where(source >= 0, source - origin, -1).astype(np.intp)
    # The last layer computed [starts[-1], ...): the chunk starts o0 - that.
    return a, b, maps, o0 - starts[-1]


class _Whole(NamedTuple):
    """What the whole array's calls run, layer by layer."""

    sizes: Tuple[List[int], List[int]]  # H, W: the input's, then each layer's output's
    tiles: List[Optional[int]]  # Winograd's tile size, or None (direct)
    forced: List[str]  # the algorithm each chunk runs: direct, winogradM or fft
    shape: Tuple[int, ...]  # the last output's shape (batched)
    dtype: np.dtype[Any]  # the last output's dtype


def _whole_plan(layers: List[Dict[str, Any]], shape: Tuple[int, ...], dtype: np.dtype[Any],
                layout: str, prepared: bool) -> _Whole:
    """Shapes, dtypes and plans of the layers on the whole array; this also
    checks every argument as the whole call would (the same errors)."""
    h_axis, w_axis = (1, 2) if layout == "NHWC" else (2, 3)
    sizes: Tuple[List[int], List[int]] = ([shape[h_axis]], [shape[w_axis]])
    tiles: List[Optional[int]] = []
    forced = []
    for s in layers:
        spec = ConvSpec(s["weight"], s["bias"], s["stride"], s["padding"], s["dilation"],
                        s["groups"], algorithm=s["algorithm"], cache=prepared,
                        padding_mode=s["padding_mode"], layout=layout,
                        activation=s["activation"])
        geo = spec.geometry(shape)
        probe = np.empty(0, dtype)
        result_dtype, compute_dtype = _result_dtypes(probe, spec.weight, spec.bias)
        plan = spec.plan(geo, compute_dtype, kernel_threads(1))
        tiles.append(plan.tile if plan.algorithm == "winograd" else None)
        forced.append(plan.algorithm if plan.tile is None else f"winograd{plan.tile}")
        sizes[0].append(geo.out_h)
        sizes[1].append(geo.out_w)
        shape, dtype = spec._result_shape(geo, True), result_dtype
    return _Whole(sizes, tiles, forced, shape, dtype)


def _build(x: Any, layers: List[Dict[str, Any]], prepared: bool,
           num_threads: Optional[int], name: str) -> Any:
    """The lazy result of ``layers`` on ``x`` (batched or not)."""
    if not isinstance(x, da.Array):
        raise TypeError(f"x must be a dask.array.Array; got {type(x).__name__} "
                        "(for NumPy arrays call fastconv.conv2d or the layer)")
    threads_arg = check_num_threads(num_threads)
    if any(math.isnan(c) for c in x.shape):
        raise ValueError(f"x must have known chunk sizes; got shape {x.shape} "
                         "(call x.compute_chunk_sizes() first)")
    layouts = {s["layout"] for s in layers}
    if len(layouts) > 1:
        raise ValueError(f"layers must share one layout; got {sorted(layouts)}")
    layout = layouts.pop()
    if x.ndim not in (3, 4):
        raise ValueError(f"x must have 4 dimensions (N, C, H, W) or 3 (C, H, W) "
                         f"(channels last with layout='NHWC'); got shape {x.shape}")
    batched = x.ndim == 4
    if not batched:
        x = x[np.newaxis]
    c_axis, h_axis, w_axis = (3, 1, 2) if layout == "NHWC" else (1, 2, 3)
    whole = _whole_plan(layers, tuple(int(n) for n in x.shape), x.dtype, layout, prepared)
    x = x.rechunk({c_axis: -1})  # the channels are the reduction axis
    out_chunks: List[Tuple[int, ...]] = [x.chunks[0], (), (), ()]
    out_chunks[c_axis] = (whole.shape[c_axis],)
    for axis, dim in ((0, h_axis), (1, w_axis)):
        chunks = x.chunks[dim]
        for index, s in enumerate(layers):
            chunks = _output_chunks(chunks, whole.sizes[axis][index],
                                    whole.sizes[axis][index + 1], s["weight"].shape[2 + axis],
                                    s["stride"][axis], s["dilation"][axis], s["pads"][axis][0])
        out_chunks[dim] = chunks
    settings_token = tokenize([sorted(s.items()) for s in layers], whole.forced, prepared)
    chain_key = f"fastconv-layers-{settings_token}"
    out_name = f"{name}-{tokenize(x, settings_token, threads_arg)}"
    threads: Any = threads_arg if threads_arg is not None else _cluster_threads()
    # Along each spatial axis, per output chunk: the input range, the
    # layers' index maps, the crop.
    axis_plans = {}
    for axis, dim in ((0, h_axis), (1, w_axis)):
        bounds = np.cumsum((0,) + out_chunks[dim])
        for j in range(len(out_chunks[dim])):
            o0, o1 = int(bounds[j]), int(bounds[j + 1])
            axis_plans[axis, j] = _axis_steps(layers, whole.tiles, whole.sizes[axis], axis,
                                              o0, o1) + (o1 - o0,)
    graph: Dict[Any, Any] = {chain_key: _Chain(layers, whole.forced, prepared)}
    for n, oh, ow in product(range(len(out_chunks[0])), range(len(out_chunks[h_axis])),
                             range(len(out_chunks[w_axis]))):
        (r0, r1, row_maps, row_crop, rows), (c0, c1, col_maps, col_crop, cols) = (
            axis_plans[0, oh], axis_plans[1, ow])
        blocks = _region_blocks(graph, x, n, (h_axis, w_axis), (r0, r1), (c0, c1),
                                out_name.replace(name, "fastconv-halo", 1), (oh, ow))
        out_index = [n, 0, 0, 0]
        out_index[h_axis], out_index[w_axis] = oh, ow
        crop = (slice(row_crop, row_crop + rows), slice(col_crop, col_crop + cols))
        graph[(out_name, *out_index)] = (_run_block, chain_key, blocks,
                                         list(zip(row_maps, col_maps)), crop,
                                         (h_axis, w_axis), threads)
    hlg = HighLevelGraph.from_collections(out_name, graph, dependencies=[x])
    result = da.Array(hlg, out_name, tuple(out_chunks), meta=np.empty((0,) * 4, whole.dtype))
    return result if batched else result[0]


def _region_blocks(graph: Dict[Any, Any], x: Any, n: int, axes: Tuple[int, int],
                   rows: Tuple[int, int], cols: Tuple[int, int], name: str,
                   out_index: Tuple[int, int]) -> List[List[Any]]:
    """The keys of the pieces of ``x``'s blocks (batch block ``n``) that
    make up the region ``rows`` x ``cols``, as rows of keys; a piece smaller
    than its block is a getitem task added to ``graph`` (only it travels)."""
    bounds = [np.cumsum((0,) + c) for c in x.chunks]
    blocks = []
    for bh in _touching(bounds[axes[0]], *rows):
        row = []
        for bw in _touching(bounds[axes[1]], *cols):
            index = [n, 0, 0, 0]
            index[axes[0]], index[axes[1]] = bh, bw
            key: Any = (x.name, *index)
            cut: List[Any] = [slice(None)] * 4
            whole = True
            for axis, block, (lo, hi) in ((axes[0], bh, rows), (axes[1], bw, cols)):
                b0, b1 = int(bounds[axis][block]), int(bounds[axis][block + 1])
                cut[axis] = slice(max(lo, b0) - b0, min(hi, b1) - b0)
                whole = whole and lo <= b0 and hi >= b1
            if not whole:
                piece = (name, n, *out_index, bh, bw)
                graph[piece] = (_getitem, key, tuple(cut))
                key = piece
            row.append(key)
        blocks.append(row)
    return blocks


def _getitem(block: NDArray[Any], cut: Tuple[slice, ...]) -> NDArray[Any]:
    return block[cut]


def _touching(bounds: NDArray[Any], lo: int, hi: int) -> List[int]:
    """The blocks (of boundaries ``bounds``) that overlap [lo, hi)."""
    return [i for i in range(len(bounds) - 1) if bounds[i] < hi and bounds[i + 1] > lo]


# -- the public functions -----------------------------------------------------

def conv2d(x: Any, weight: ArrayLike, bias: Optional[ArrayLike] = None, stride: IntPair = 1,
           padding: PaddingArg = 0, dilation: IntPair = 1, groups: int = 1, *,
           algorithm: Algorithm = "auto", num_threads: Optional[int] = None,
           layout: Layout = "NCHW", activation: Activation = None,
           padding_mode: PaddingMode = "zeros") -> Any:
    """:func:`fastconv.conv2d` on a Dask array, lazily.

    Parameters
    ----------
    x : dask.array.Array of shape (N, C, H, W) or (C, H, W)
        (N, H, W, C) or (H, W, C) with ``layout="NHWC"``. Any chunks, with
        known sizes; chunks along C are merged first (C is the reduction
        axis of the convolution).
    weight, bias, stride, padding, dilation, groups, algorithm, layout, activation, padding_mode
        As for :func:`fastconv.conv2d` (``weight`` and ``bias`` are NumPy
        array_likes; they go into the graph once and reach each worker once).
    num_threads : int, optional
        Threads of each task; ``None`` divides the worker's cores among its
        concurrent tasks (see the module's documentation).

    Returns
    -------
    output : dask.array.Array
        Lazy; of the shape, dtype (and ``meta``) of
        ``fastconv.conv2d(x.compute(), weight, ...)`` and, once computed, of
        its values bit for bit (see "Exactness" in the module's
        documentation). Batch chunks are ``x``'s, the channel axis one
        chunk, and the spatial chunks follow ``x``'s (divided by the stride).

    Raises
    ------
    TypeError
        If ``x`` is not a ``dask.array.Array``, and as :func:`fastconv.conv2d`.
    ValueError
        As :func:`fastconv.conv2d`, at once (not when computed), and for
        unknown chunk sizes.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastconv.dask
    >>> x = da.ones((4, 3, 64, 64), chunks=(2, 3, 32, 32), dtype=np.float32)
    >>> y = fastconv.dask.conv2d(x, np.ones((8, 3, 3, 3), np.float32), padding=1)
    >>> y.chunks
    ((2, 2), (8,), (32, 32), (32, 32))
    >>> float(y[0, 0, 0, 0].compute()), float(y[0, 0, 10, 10].compute())
    (12.0, 27.0)
    """
    layer = Conv2d(weight, bias, stride, padding, dilation, groups, padding_mode, algorithm,
                   layout=layout, activation=activation)
    return _build(x, [_layer_settings(layer)], False, num_threads, "fastconv-conv2d")


def apply(layer: Conv2d, x: Any, *, num_threads: Optional[int] = None) -> Any:
    """A prepared :class:`fastconv.Conv2d` layer on a Dask array, lazily.

    The layer goes into the graph as one key, so it reaches each worker
    once, and each worker packs or transforms its weights once.

    Parameters
    ----------
    layer : fastconv.Conv2d
    x : dask.array.Array
        As for :func:`conv2d`, in the layer's layout.
    num_threads : int, optional
        Threads of each task; ``None``: the layer's ``num_threads`` if set,
        else the worker's cores divided among its concurrent tasks.

    Returns
    -------
    output : dask.array.Array
        Lazy, equal once computed to ``layer(x.compute())`` (see
        :func:`conv2d`).
    """
    return sequential([layer], x, num_threads=num_threads)


def sequential(layers: Sequence[Conv2d], x: Any, *, num_threads: Optional[int] = None) -> Any:
    """A chain of :class:`fastconv.Conv2d` layers on a Dask array, with one
    halo for the whole chain.

    Each output chunk is computed in one task from one input region (the
    halo is the sum of the layers' receptive-field growth): through every
    layer, each layer's borders padded as the layer pads the whole
    intermediate image, then cropped. ReLU is fused into a layer
    (``activation="relu"``).

    Parameters
    ----------
    layers : sequence of fastconv.Conv2d
        Applied in order; they must share one ``layout``.
    x : dask.array.Array
        As for :func:`conv2d`.
    num_threads : int, optional
        Threads of each task; ``None``: the layers' ``num_threads`` if they
        all have the same (not None), else the worker's cores divided among
        its concurrent tasks.

    Returns
    -------
    output : dask.array.Array
        Lazy, equal once computed to applying the layers in turn to
        ``x.compute()``; its spatial chunks follow ``x``'s through each
        layer as for :func:`conv2d`.

    Notes
    -----
    With ``padding_mode="circular"`` in a layer after the first, a chunk at
    an image border needs the intermediate image's far border, so its task
    computes the rows (or columns) in between too.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastconv, fastconv.dask
    >>> w = np.full((4, 4, 3, 3), 1 / 36, np.float32)
    >>> net = [fastconv.Conv2d(w, padding=1, activation="relu"),
    ...        fastconv.Conv2d(w, padding=1)]
    >>> x = da.ones((1, 4, 100, 100), chunks=(1, 4, 50, 50), dtype=np.float32)
    >>> y = fastconv.dask.sequential(net, x)
    >>> bool((y.compute() == net[1](net[0](x.compute()))).all())
    True
    """
    layers = list(layers)
    if not layers:
        raise ValueError("layers must hold at least one fastconv.Conv2d")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Conv2d):
            raise TypeError(f"layers[{i}] must be a fastconv.Conv2d; got {type(layer).__name__}")
    if num_threads is None and len({layer.num_threads for layer in layers}) == 1:
        num_threads = layers[0].num_threads
    return _build(x, [_layer_settings(layer) for layer in layers], True, num_threads,
                  "fastconv-sequential")
