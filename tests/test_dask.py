"""fastconv.dask against fastconv on the whole array: every chunking gives
the whole call's bits (schedulers: synchronous, threaded, and a
distributed LocalCluster of 2 worker processes)."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import fastconv

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
import fastconv.dask as fd  # noqa: E402

RNG = np.random.default_rng(16)


def data(shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def same(got, want):
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)  # NaN == NaN, -0.0 == 0.0


X = data((4, 16, 30, 34))
W = data((8, 16, 3, 3))
B = data(8)

CHUNKINGS = {
    "batch": (1, 16, 30, 34),
    "spatial": (4, 16, 10, 12),
    "mixed": (3, 5, 7, 11),
    "irregular": ((1, 3), (16,), (4, 9, 1, 16), (20, 3, 11)),
}

OPTIONS = [
    dict(padding=1),
    dict(padding=0),
    dict(padding="same"),
    dict(padding="valid"),
    dict(stride=2, padding=1),
    dict(stride=(2, 3), padding=(2, 1)),
    dict(dilation=2, padding=2),
    dict(dilation=(3, 1), padding="same", padding_mode="reflect"),
    dict(padding=1, padding_mode="reflect"),
    dict(padding=(2, 3), padding_mode="circular"),
    dict(padding=3, padding_mode="replicate", stride=2),
    dict(padding=6),
    dict(padding=1, algorithm="winograd2"),
    dict(padding=1, algorithm="winograd4", padding_mode="circular"),
    dict(padding=1, algorithm="winograd6", activation="relu"),
    dict(padding=1, algorithm="direct"),
]


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_conv2d_equals_the_whole_call(chunking, options):
    x = da.from_array(X, chunks=CHUNKINGS[chunking])
    y = fd.conv2d(x, W, B, **options)
    want = fastconv.conv2d(X, W, B, **options)
    assert y.shape == want.shape and y.dtype == want.dtype
    assert type(y._meta) is np.ndarray and y._meta.dtype == want.dtype
    assert y.chunks[0] == x.chunks[0] and y.chunks[1] == (8,)
    same(y.compute(scheduler="sync"), want)


@pytest.mark.parametrize("algorithm", ["fft", "auto"])
def test_fft_chunks_run_the_fft_within_its_bound(algorithm, monkeypatch):
    """Where the whole array's plan is the FFT, the chunks run the FFT too
    (not the direct kernel), with windows of their own: within the FFT's
    bound of the whole call, not to the bit."""
    from fastconv import _fft, _plan
    x, w = data((2, 3, 40, 44)), data((4, 3, 13, 13))
    if algorithm == "auto":
        monkeypatch.setattr(_plan.fft, "faster_than_direct", lambda *args: True)
        _plan.clear_cache()
    assert fastconv.plan(x.shape, w.shape, padding=6, algorithm=algorithm).algorithm == "fft"
    ran = []
    original = _fft.convolve
    monkeypatch.setattr(_fft, "convolve", lambda *args, **kwargs: ran.append(1) or original(
        *args, **kwargs))
    want = fastconv.conv2d(x, w, padding=6, algorithm=algorithm)
    ran.clear()
    got = fd.conv2d(da.from_array(x, chunks=(1, 3, 20, 22)), w, padding=6,
                    algorithm=algorithm).compute(scheduler="synchronous")
    assert len(ran) == 8  # every chunk ran the FFT path
    scale = fastconv.conv2d(np.abs(x), np.abs(w), padding=6, algorithm="direct").max()
    assert np.abs(got - want).max() <= 4 * np.finfo(np.float32).eps * 12 * scale
    _plan.clear_cache()


def test_chunks_follow_the_input():
    x = da.from_array(X, chunks=(2, 16, 10, 17))
    assert fd.conv2d(x, W, padding=1).chunks[2:] == ((10, 10, 10), (17, 17))
    assert fd.conv2d(x, W, padding="same").chunks[2:] == ((10, 10, 10), (17, 17))
    # stride 2: every output pixel once, the chunks halved (64x64 -> 32x32)
    x64 = da.zeros((1, 16, 64, 64), np.float32, chunks=(1, 16, 32, 32))
    assert fd.conv2d(x64, W, stride=2, padding=1).chunks[2:] == ((16, 16), (16, 16))


@pytest.mark.parametrize("options", [dict(padding=1), dict(padding=2, stride=2)], ids=str)
def test_auto_winograd_on_spatial_chunks(options):
    """auto picks Winograd for this shape; chunks keep the whole call's
    tile size and grid."""
    x = data((2, 32, 40, 40))
    w = data((32, 32, 3, 3))
    if "stride" not in options:
        assert fastconv.plan(x.shape, w.shape, **options).algorithm == "winograd"
    for chunks in [(1, 32, 7, 13), (2, 32, 40, 9), ((1, 1), (32,), (5, 30, 5), (40,))]:
        y = fd.conv2d(da.from_array(x, chunks=chunks), w, **options)
        same(y.compute(scheduler="sync"), fastconv.conv2d(x, w, **options))


def test_winograd_blocking_differs_from_the_whole_calls():
    """Chunks whose Winograd plan cuts the input channels (cb) and the
    paths differently from the whole call's still give its bits."""
    x = data((1, 2048, 40, 40))
    w = data((32, 2048, 3, 3))
    options = dict(padding=1, algorithm="winograd4", num_threads=1)
    whole = fastconv.plan(x.shape, w.shape, **options)
    # Row chunks whose own plan (their rows plus the halo, padded columns)
    # cuts the channels into other chunks than the whole call's; which rows
    # do depends on the SIMD level's tile shapes.
    rows = [h for h in (8, 12, 16) if whole.blocking["cb"] < fastconv.plan(
        (1, 2048, h + 2, 42), w.shape, algorithm="winograd4",
        num_threads=1).blocking["cb"] < 2048]
    assert rows, "the premise (the channel chunks differ) no longer holds: pick other shapes"
    want = fastconv.conv2d(x, w, **options)
    y = fd.conv2d(da.from_array(x, chunks=(1, 2048, rows[0], 40)), w, **options)
    same(y.compute(scheduler="sync"), want)


def test_dtypes_layouts_and_unbatched():
    xi = RNG.integers(-50, 50, (2, 3, 17, 19))
    wi = RNG.integers(-3, 3, (4, 3, 3, 3))
    y = fd.conv2d(da.from_array(xi, chunks=(1, 3, 5, 6)), wi, padding=1, padding_mode="reflect")
    same(y.compute(), fastconv.conv2d(xi, wi, padding=1, padding_mode="reflect"))
    x16 = X.astype(np.float16)
    same(fd.conv2d(da.from_array(x16, chunks=(2, 16, 8, 8)), W, padding=1).compute(),
         fastconv.conv2d(x16, W, padding=1))
    nhwc = np.ascontiguousarray(X.transpose(0, 2, 3, 1))
    y = fd.conv2d(da.from_array(nhwc, chunks=(2, 9, 10, 16)), W, B, padding=1, stride=2,
                  layout="NHWC")
    assert y.chunks[3] == (8,)
    same(y.compute(), fastconv.conv2d(nhwc, W, B, padding=1, stride=2, layout="NHWC"))
    y = fd.conv2d(da.from_array(X[0], chunks=(4, 7, 7)), W, padding="same",
                  padding_mode="circular")
    assert y.ndim == 3 and y.chunks[0] == (8,)
    same(y.compute(), fastconv.conv2d(X[0], W, padding="same", padding_mode="circular"))


def test_groups_and_even_kernel():
    w = data((16, 4, 2, 4))
    x = da.from_array(X, chunks=(2, 16, 6, 5))
    for options in [dict(groups=4, padding="same"), dict(groups=4, stride=2, dilation=2)]:
        same(fd.conv2d(x, w, **options).compute(), fastconv.conv2d(X, w, **options))


def net(padding_mode="zeros", algorithm="auto"):
    w1, w2 = data((16, 16, 3, 3)), data((8, 16, 3, 3))
    return [fastconv.Conv2d(w1, data(16), padding=1, padding_mode=padding_mode,
                            algorithm=algorithm, activation="relu"),
            fastconv.Conv2d(w2, padding=1, padding_mode=padding_mode, algorithm=algorithm)]


def run_net(layers, x):
    for layer in layers:
        x = layer(x)
    return x


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("algorithm", ["auto", "winograd4"])
def test_sequential_one_halo(padding_mode, algorithm):
    layers = net(padding_mode, algorithm)
    for chunks in [(4, 16, 10, 12), (1, 16, 30, 34), (3, 5, 7, 11), ((4,), (16,), (2, 28), (30, 4))]:
        x = da.from_array(X, chunks=chunks)
        y = fd.sequential(layers, x)
        assert y.chunks[2:] == x.chunks[2:]
        same(y.compute(scheduler="sync"), run_net(layers, X))


def test_sequential_strided_chain_and_one_task_per_chunk():
    layers = [fastconv.Conv2d(data((8, 16, 3, 3)), stride=2, padding=1, activation="relu"),
              fastconv.Conv2d(data((4, 8, 3, 3)), dilation=2, padding="same",
                              padding_mode="reflect")]
    x = da.from_array(X, chunks=(2, 16, 10, 12))
    y = fd.sequential(layers, x)
    same(y.compute(scheduler="sync"), run_net(layers, X))
    # one task per output chunk runs the whole chain: beside the input's
    # keys, the graph holds the outputs, the halo pieces and the layers
    graph = dict(y.__dask_graph__())
    names = {key[0] if isinstance(key, tuple) else key for key in graph}
    names -= {key[0] if isinstance(key, tuple) else key for key in x.__dask_graph__()}
    assert sorted(name.split("-")[1] for name in names) == ["halo", "layers", "sequential"]
    assert sum(isinstance(key, tuple) and key[0] == y.name for key in graph) == np.prod(y.numblocks)


def test_apply_sends_the_weights_once():
    layer = net()[0]
    x = da.from_array(X, chunks=(1, 16, 10, 12))
    y = fd.apply(layer, x)
    same(y.compute(scheduler="threads"), layer(X))
    graph = dict(y.__dask_graph__())
    holders = [key for key in graph if "fastconv-layers" in str(key)]
    assert len(holders) == 1
    # the weights are pickled into the graph once, not once per task
    blob = pickle.dumps(graph, protocol=5)
    assert blob.count(layer.weight.tobytes()) == 1
    assert len(graph) > 40


def test_threaded_scheduler_and_num_threads():
    x = da.from_array(X, chunks=(2, 16, 10, 12))
    want = fastconv.conv2d(X, W, B, padding=1, stride=2)
    for num_threads in (None, 1, 3):
        y = fd.conv2d(x, W, B, padding=1, stride=2, num_threads=num_threads)
        same(y.compute(scheduler="threads"), want)


def test_task_threads_rule(monkeypatch):
    assert fd._task_threads(3) == 3
    cores = fd._cores()
    assert fd._task_threads({}) == cores  # synchronous: the main thread
    seen = []
    monkeypatch.setattr(fd, "_cores", lambda: 8)

    def probe():
        seen.append(fd._task_threads({}))
    with dask.config.set(num_workers=4):
        dask.compute(dask.delayed(probe)(), scheduler="threads")
    assert seen == [2]
    # a distributed worker: the client's table, else its cores over its threads
    from types import SimpleNamespace
    worker = SimpleNamespace(address="tcp://w:1", state=SimpleNamespace(nthreads=4))
    monkeypatch.setattr(fd, "_current_worker", lambda: worker)
    assert fd._task_threads({"tcp://w:1": 3}) == 3
    assert fd._task_threads({"tcp://other:1": 3}) == 2
    assert fd._task_threads({}) == 2
    assert fd._task_threads(5) == 5


def test_errors():
    with pytest.raises(TypeError, match="x must be a dask.array.Array"):
        fd.conv2d(X, W)
    x = da.from_array(X, chunks=(2, 16, 10, 12))
    with pytest.raises(ValueError, match="input has C=16"):
        fd.conv2d(x, data((8, 4, 3, 3)))
    with pytest.raises(ValueError, match="padding_mode='reflect' needs padding"):
        fd.conv2d(x, W, padding=30, padding_mode="reflect")
    with pytest.raises(ValueError, match="num_threads"):
        fd.conv2d(x, W, num_threads=0)
    with pytest.raises(TypeError, match=r"layers\[1\]"):
        fd.sequential([net()[0], "relu"], x)
    with pytest.raises(ValueError, match="x must have 4 dimensions"):
        fd.conv2d(da.zeros((3, 4), chunks=2), W)


def test_import_fastconv_does_not_import_dask():
    code = "import sys, fastconv; fastconv.conv2d([[[1.0]]], [[[[1.0]]]]); " \
           "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def cluster_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, worker_dashboard_address=None,
                                       silence_logs=40)
    client = distributed.Client(cluster, timeout=60)
    try:
        yield client
    finally:
        client.close(timeout=30)
        cluster.close(timeout=30)


@pytest.mark.subprocess
def test_local_cluster_two_processes(cluster_client):
    client = cluster_client
    x = da.from_array(X, chunks=(2, 16, 10, 12))
    y = fd.conv2d(x, W, B, padding=1, padding_mode="reflect", stride=2)
    same(y.compute(timeout=60), fastconv.conv2d(X, W, B, padding=1, padding_mode="reflect",
                                                stride=2))
    layers = net("circular")
    y = fd.sequential(layers, x)
    distributed = pytest.importorskip("distributed")
    with distributed.get_task_stream(client) as stream:
        same(client.compute(y).result(timeout=60), run_net(layers, X))
    # the layers are one task, run once; the workers fetch its result
    ran = [task["key"] for task in stream.data]
    assert len(ran) > 40
    assert sum("fastconv-layers" in str(key) for key in ran) == 1
    # each task's threads: the cores over the 2 workers' threads
    table = fd._cluster_threads()
    assert sorted(table) == sorted(client.scheduler_info(n_workers=-1)["workers"])
    assert all(n == max(1, fd._cores() // 2) for n in table.values())
    ran = client.run(lambda: fd._task_threads(table))
    assert all(n == max(1, fd._cores() // 2) for n in ran.values())


def test_docstring_examples_and_sections():
    import doctest
    import inspect
    result = doctest.testmod(fd, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
    for function in (fd.conv2d, fd.apply, fd.sequential):
        doc = inspect.getdoc(function)
        assert "Parameters\n----------" in doc and "Returns\n-------" in doc


@pytest.mark.subprocess
def test_docs_example_runs():
    """docs/dask_example.py (the figures of docs/dask.md), at its small sizes:
    the cluster's sums equal one process's."""
    pytest.importorskip("distributed")
    script = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "dask_example.py")
    out = subprocess.run([sys.executable, script, "--small"], capture_output=True, text=True,
                         timeout=180, env=os.environ.copy())
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("LocalCluster:") == 2
