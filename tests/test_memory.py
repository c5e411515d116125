"""Memory: no leaks over many calls, and no access outside the arrays.

* Leaks: 10,000 calls over mixed shapes, algorithms, dtypes, layers,
  ``out=`` and error paths leave the resident set size (and, with glibc,
  the bytes malloc has handed out in all arenas, OpenMP threads' included)
  flat.
* Out-of-bounds access ("electric fence"): the input, weight and ``out``
  are placed right against an inaccessible (PROT_NONE) page, at their end
  or their start, and the input and weight pages are made read-only, so
  any read past either end, or any write into an operand, faults. These
  run in a child process (a fault kills it; the test reports the case it
  was running), over every direct path (GEMM, row panels, shared columns,
  plane), every Winograd tile size, every SIMD level up to the active one,
  and random cases from ``cases.random_case``.

AddressSanitizer and valgrind runs of the whole suite are described in
CONTRIBUTING.md.
"""

import ctypes
import ctypes.util
import gc
import inspect
import mmap
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

import fastconv

# --- resident memory --------------------------------------------------------------


def rss_bytes():
    """Resident set size of this process, in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _libc():
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name, use_errno=True) if name else None


def malloc_in_use():
    """Bytes malloc has handed out and not got back, over all arenas (glibc's
    malloc_info), or None where that is not available."""
    libc = _libc()
    if libc is None or not hasattr(libc, "malloc_info") or not hasattr(libc, "fopen"):
        return None
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    with tempfile.NamedTemporaryFile(suffix=".xml") as tmp:
        stream = libc.fopen(tmp.name.encode(), b"w")
        if not stream:
            return None
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        text = open(tmp.name).read()
    # The totals over all arenas follow the last </heap>.
    tail = text[text.rfind("</heap>"):]
    totals = dict(re.findall(r'<total type="(\w+)" count="\d+" size="(\d+)"', tail))
    system = re.search(r'<system type="current" size="(\d+)"', tail)
    if system is None or "fast" not in totals or "rest" not in totals:
        return None
    return (int(system.group(1)) - int(totals["fast"]) - int(totals["rest"])
            + int(totals.get("mmap", 0)))


def _leak_calls():
    """Small calls through every path, plus calls that fail validation."""
    rng = np.random.default_rng(11)

    def normal(*shape, dtype=np.float32):
        return rng.standard_normal(shape).astype(dtype)

    x, w, b = normal(2, 4, 9, 11), normal(6, 4, 3, 3), normal(6)
    xd, wd = normal(1, 8, 12, 40, dtype=np.float64), normal(8, 8, 3, 3, dtype=np.float64)
    xg, wg = normal(2, 6, 8, 8), normal(6, 1, 5, 5)
    xi, wi = rng.integers(-9, 9, (1, 3, 7, 7)), rng.integers(-9, 9, (2, 3, 2, 2))
    xh, wh = normal(1, 3, 6, 6, dtype=np.float16), normal(2, 3, 3, 3, dtype=np.float16)
    xw, ww = normal(1, 16, 10, 10), normal(8, 16, 3, 3)
    x1, w1 = normal(1, 40, 5, 5), normal(70, 40, 1, 1)
    out = np.empty((2, 6, 9, 11), np.float32)
    layer = fastconv.Conv2d(ww, padding=1, algorithm="winograd4")
    calls = [
        lambda: fastconv.conv2d(x, w, b, padding=1, algorithm="direct"),
        lambda: fastconv.conv2d(x, w, b, padding=1, algorithm="direct", out=out),
        lambda: fastconv.conv2d(x[0], w, stride=2),
        lambda: fastconv.conv2d(xd, wd, padding=1, algorithm="direct"),
        lambda: fastconv.conv2d(xg, wg, groups=6, padding=2),
        lambda: fastconv.conv2d(xg, wg, groups=6, dilation=2, padding=(4, 1), num_threads=1),
        lambda: fastconv.conv2d(xi, wi, dilation=2),
        lambda: fastconv.conv2d(xh, wh, padding="same"),
        lambda: fastconv.conv2d(xw, ww, padding=1, algorithm="winograd2"),
        lambda: fastconv.conv2d(xw, ww, padding=1, algorithm="winograd6"),
        lambda: layer(xw),
        lambda: fastconv.Conv2d(ww, padding=1)(xw),
        lambda: fastconv.conv2d(x1, w1),
        lambda: fastconv.conv2d(np.zeros((0, 4, 9, 11), np.float32), w),
        lambda: fastconv.conv2d(x.tolist(), w.tolist(), padding="valid"),
    ]
    parameters = inspect.signature(fastconv.conv2d).parameters
    kwargs = {}
    if {"layout", "activation", "padding_mode"} <= set(parameters):
        kwargs = dict(layout="NHWC", activation="relu", padding_mode="reflect")
    if kwargs:
        xn = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        calls.append(lambda: fastconv.conv2d(xn, w, b, padding=1, **kwargs))

    def bad_channels():
        with pytest.raises(ValueError):
            fastconv.conv2d(x, wd)

    def bad_out():
        with pytest.raises(ValueError):
            fastconv.conv2d(x, w, out=np.empty((1,)))

    def bad_dtype():
        with pytest.raises(TypeError):
            fastconv.conv2d(x.astype(complex), w)

    calls += [bad_channels, bad_out, bad_dtype]
    return calls


@pytest.mark.skipif("asan" in os.environ.get("LD_PRELOAD", ""),
                    reason="AddressSanitizer's quarantine holds freed memory (RSS grows)")
def test_10000_calls_leave_memory_flat():
    """Resident memory after 10,000 mixed calls (tiny shapes, every path,
    error paths too) is within 20 MiB of where it was after a warm-up; the
    bytes held by malloc (all arenas) within 2 MiB. A leak of a scratch
    buffer or of a Python object per call would be far above both."""
    calls = _leak_calls()
    for _ in range(60):  # warm-up: pools, caches, arenas, OpenMP threads
        for call in calls:
            call()
    gc.collect()
    rss0, heap0, objects0 = rss_bytes(), malloc_in_use(), len(gc.get_objects())
    t0 = time.perf_counter()
    for i in range(10_000):
        calls[i % len(calls)]()
    elapsed = time.perf_counter() - t0
    gc.collect()
    rss1, heap1, objects1 = rss_bytes(), malloc_in_use(), len(gc.get_objects())
    grew = (rss1 - rss0) / 2**20
    print(f"10,000 calls in {elapsed:.2f} s: RSS {rss0 / 2**20:.1f} -> "
          f"{rss1 / 2**20:.1f} MiB ({grew:+.2f} MiB)"
          + ("" if heap0 is None else
             f"; malloc in use {heap0 / 2**20:.2f} -> {heap1 / 2**20:.2f} MiB "
             f"({(heap1 - heap0) / 2**20:+.3f} MiB)")
          + f"; gc objects {objects0} -> {objects1}")
    assert grew < 20, f"RSS grew by {grew:.1f} MiB over 10,000 calls"
    if heap0 is not None:
        assert heap1 - heap0 < 2 * 2**20, f"malloc'd memory grew by {heap1 - heap0} bytes"
    assert objects1 - objects0 < 200, f"{objects1 - objects0} more Python objects"


# --- guard pages ------------------------------------------------------------------

PROT_NONE, PROT_READ = 0, 1


class GuardedArrays:
    """Arrays that end (or start) right at a PROT_NONE page."""

    def __init__(self):
        self.maps = []
        self.libc = _libc()
        self.libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self.page = mmap.PAGESIZE

    def _protect(self, address, size, prot):
        if self.libc.mprotect(ctypes.c_void_p(address), size, prot) != 0:
            raise OSError(ctypes.get_errno(), "mprotect failed")

    def array(self, values, at="end", read_only=False):
        """A copy of ``values`` (C-contiguous) whose last (``at="end"``) or
        first (``at="start"``) byte touches an inaccessible page."""
        values = np.ascontiguousarray(values)
        page, nbytes = self.page, max(values.nbytes, 1)
        data_pages = -(-nbytes // page)
        region = mmap.mmap(-1, (data_pages + 2) * page)
        self.maps.append(region)
        base = ctypes.addressof(ctypes.c_char.from_buffer(region))
        offset = page + (data_pages * page - values.nbytes if at == "end" else 0)
        array = np.frombuffer(region, values.dtype, count=values.size,
                              offset=offset).reshape(values.shape)
        array[...] = values
        self._protect(base, page, PROT_NONE)
        self._protect(base + (data_pages + 1) * page, page, PROT_NONE)
        if read_only:
            self._protect(base + page, data_pages * page, PROT_READ)
        return array


def _guard_cases():
    """(id, x, w, b, kwargs): every code path, and random cases."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from cases import random_case

    rng = np.random.default_rng(99)

    def normal(*shape, dtype=np.float32):
        return rng.standard_normal(shape).astype(dtype)

    f32, f64 = np.float32, np.float64
    cases = [
        ("gemm", normal(2, 5, 9, 7), normal(7, 5, 3, 2), normal(7), dict(padding=(1, 2))),
        ("gemm-f64-strided", normal(1, 6, 13, 11, dtype=f64), normal(5, 6, 3, 3, dtype=f64),
         None, dict(stride=(2, 3), padding=1, dilation=(1, 2))),
        ("gemm-long-reduction", normal(1, 40, 8, 9), normal(9, 40, 3, 3), None, {}),
        ("pointwise", normal(2, 33, 5, 6), normal(17, 33, 1, 1), normal(17), {}),
        ("rows", normal(1, 8, 6, 64), normal(6, 8, 3, 3), normal(6), dict(padding=1)),
        ("rows-f64", normal(2, 3, 5, 33, dtype=f64), normal(4, 3, 3, 5, dtype=f64), None,
         dict(padding=(1, 2), stride=(1, 2))),
        ("shared-columns", normal(1, 16, 4, 4), normal(96, 16, 3, 3), None, dict(padding=1)),
        ("plane-depthwise", normal(2, 6, 9, 10), normal(6, 1, 3, 3), normal(6),
         dict(padding=1, groups=6)),
        ("plane-5x5-f64", normal(1, 4, 11, 8, dtype=f64), normal(8, 1, 5, 5, dtype=f64), None,
         dict(padding=2, groups=4)),
        ("plane-grouped-dilated", normal(1, 8, 13, 14), normal(4, 4, 2, 3), None,
         dict(groups=2, dilation=(3, 2), stride=2)),
        ("int64", rng.integers(-9, 9, (2, 3, 7, 9)), rng.integers(-9, 9, (4, 3, 3, 3)),
         rng.integers(-9, 9, 4), dict(padding=1)),
        ("int64-depthwise", rng.integers(-9, 9, (1, 4, 6, 6)), rng.integers(-9, 9, (4, 1, 3, 3)),
         None, dict(groups=4)),
    ]
    for m in (2, 4, 6):
        for dtype in (f32, f64):
            cases.append((f"winograd{m}-{np.dtype(dtype).name}", normal(2, 9, 11, 13, dtype=dtype),
                          normal(10, 9, 3, 3, dtype=dtype), normal(10, dtype=dtype),
                          dict(padding=(1, 0), algorithm=f"winograd{m}")))
    cases.append(("winograd-grouped", normal(1, 8, 9, 9), normal(8, 4, 3, 3), None,
                  dict(groups=2, padding=1, algorithm="winograd4")))
    for seed in range(150):
        case = random_case(seed)
        if case.batch is None or case.batch == 0:
            continue
        x, w, b = case.arrays()
        cases.append((f"random-{seed}", x, w, b, case.kwargs()))
    return cases


def _guard_layer_cases():
    """(id, x, w, b, kwargs) run through a prepared Conv2d: with AVX-512 these
    take the channel-lanes kernel (small images, a tile of output channels)."""
    rng = np.random.default_rng(98)
    f32, f64 = np.float32, np.float64

    def normal(*shape, dtype=f32):
        return rng.standard_normal(shape).astype(dtype)

    return [
        ("lanes", normal(1, 5, 7, 9), normal(70, 5, 3, 3), normal(70), dict(padding=1)),
        ("lanes-f64-strided", normal(2, 3, 8, 8, dtype=f64), normal(40, 3, 3, 3, dtype=f64),
         None, dict(stride=2, padding=(1, 0))),
        ("lanes-relu", normal(1, 4, 6, 6), normal(64, 4, 1, 1), None,
         dict(activation="relu")),
    ]


def _guard_page_child():
    """Child process: run every case with guarded operands; print progress."""
    from fastconv import _cpu, _isa

    levels = _cpu.ISA_LEVELS[:_cpu.ISA_LEVELS.index(_isa.active_isa()) + 1]
    guard = GuardedArrays()
    cases = _guard_cases()
    runs = 0
    for level in levels:
        _cpu.select_isa(level)
        for name, x, w, b, kwargs in cases:
            expected = fastconv.conv2d(x, w, b, **kwargs)
            for at in ("end", "start"):
                for threads in (1, 2):
                    print(f"{level} {name} at={at} num_threads={threads}", flush=True)
                    gx = guard.array(x, at, read_only=True)
                    gw = guard.array(w, at, read_only=True)
                    gb = None if b is None else guard.array(b, at, read_only=True)
                    out = guard.array(np.zeros_like(expected), at)
                    got = fastconv.conv2d(gx, gw, gb, out=out, num_threads=threads, **kwargs)
                    assert got is out
                    assert np.array_equal(got, expected), f"{level} {name}: wrong result"
                    runs += 1
            del guard.maps[:]  # unmapped once nothing refers to them
        for name, x, w, b, kwargs in _guard_layer_cases():
            expected = fastconv.Conv2d(w, b, **kwargs)(x)
            for at in ("end", "start"):
                for threads in (1, 2):
                    print(f"{level} layer {name} at={at} num_threads={threads}", flush=True)
                    gw = guard.array(w, at, read_only=True)
                    gb = None if b is None else guard.array(b, at, read_only=True)
                    layer = fastconv.Conv2d(gw, gb, **kwargs)
                    out = guard.array(np.zeros_like(expected), at)
                    got = layer(guard.array(x, at, read_only=True), out=out,
                                num_threads=threads)
                    assert got is out
                    assert np.array_equal(got, expected), f"{level} layer {name}: wrong result"
                    runs += 1
            del guard.maps[:]
    print(f"OK {runs} guarded calls", flush=True)


@pytest.mark.subprocess
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses mprotect (Linux)")
def test_no_access_outside_the_operands():
    """No kernel reads before or past its operands, or writes into the input
    or weight, or outside ``out`` (a child process faults if one does)."""
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([here] + [p for p in sys.path if p]),
               PYTHONFAULTHANDLER="1")
    code = "import test_memory; test_memory._guard_page_child()"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=600)
    lines = proc.stdout.strip().splitlines()
    last = lines[-1] if lines else "(nothing)"
    assert proc.returncode == 0 and last.startswith("OK"), (
        f"child exited with {proc.returncode} while running: {last}\n"
        f"{proc.stderr[-3000:]}")
    print(last)


def representative_workload():
    """A few calls of every path, algorithm and dtype at every SIMD level up
    to the active one: the script CONTRIBUTING.md runs under valgrind
    (``python tests/test_memory.py``)."""
    from fastconv import _cpu, _isa

    levels = _cpu.ISA_LEVELS[:_cpu.ISA_LEVELS.index(_isa.active_isa()) + 1]
    cases = _guard_cases()
    runs = 0
    for level in levels:
        _cpu.select_isa(level)
        for call in _leak_calls():  # new layers: packed weights depend on the level
            call()
            runs += 1
        for name, x, w, b, kwargs in cases:
            for threads in (1, 2):
                fastconv.conv2d(x, w, b, num_threads=threads, **kwargs)
                runs += 1
    print(f"{runs} calls at SIMD levels {', '.join(levels)}")


if __name__ == "__main__":
    representative_workload()
