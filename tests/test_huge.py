"""Large and absurd sizes: 64-bit index arithmetic, and clean failures.

* Opt-in (marker ``huge``: ``FASTCONV_RUN_HUGE=1`` or ``-m huge``; each
  test skips itself when the machine lacks the memory): convolutions whose
  input or output has more than 2**31 elements, through every code path,
  checked exactly (small-integer data in float32 sums exactly) or, for
  Winograd, against the reference at sampled positions.
* Always (fast): absurd shapes (a broadcast array of 2**40 elements,
  padding of 2**40) raise ``MemoryError`` or ``ValueError`` at once, without
  touching memory; valid geometries with offsets near 2**62 give the right
  answer. Geometries that could make the kernels misbehave run in a child
  process under an address-space limit, so a crash or a huge allocation
  fails the test instead of the test run (or the machine).
"""

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastconv

# --- opt-in ------------------------------------------------------------------------

GiB = 2**30
# AddressSanitizer reserves terabytes of shadow address space: an
# address-space limit (RLIMIT_AS) cannot be combined with it.
UNDER_ASAN = "asan" in os.environ.get("LD_PRELOAD", "")


def _huge_requested(config):
    if os.environ.get("FASTCONV_RUN_HUGE", "").strip() not in ("", "0"):
        return True
    expr = config.getoption("markexpr", default="") or ""
    return "huge" in expr and "not huge" not in expr


@pytest.fixture
def huge(request):
    """Skip unless huge tests were asked for (see the module docstring)."""
    if not _huge_requested(request.config):
        pytest.skip("huge-array test: set FASTCONV_RUN_HUGE=1 or select -m huge")


def available_memory():
    """MemAvailable in bytes (Linux), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def need_memory(nbytes):
    """Skip unless ``nbytes`` plus a 2 GiB margin are available."""
    have = available_memory()
    if have is None:
        pytest.skip("cannot tell the available memory")
    if have < nbytes + 2 * GiB:
        pytest.skip(f"needs {(nbytes + 2 * GiB) / GiB:.1f} GiB available, have {have / GiB:.1f}")


def _fill_pattern(x):
    """Small integers (-8..8) that depend on every index, written in chunks
    of rows (no temporary the size of ``x``)."""
    n, c, h, w = x.shape
    cols = (np.arange(w, dtype=np.int64) * 3) % 17
    step = max(1, (64 << 20) // (8 * w))
    for b in range(n):
        for ch in range(c):
            for r0 in range(0, h, step):
                rows = (np.arange(r0, min(h, r0 + step), dtype=np.int64) * 7 + ch * 5 + b) % 17
                x[b, ch, r0:r0 + len(rows)] = (rows[:, None] + cols[None, :]) % 17 - 8


def _strided_reference(x, w, stride, dilation, groups=1):
    """Exact (float64) conv with no padding, accumulated tap by tap from
    strided views (no copy of ``x``)."""
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    ho = (h - dilation * (kh - 1) - 1) // stride + 1
    wo = (wd - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((n, k, ho, wo))
    kg = k // groups
    for oc in range(k):
        g = oc // kg
        for ci in range(cg):
            for i in range(kh):
                for j in range(kw):
                    r0, c0 = i * dilation, j * dilation
                    view = x[:, g * cg + ci, r0:r0 + (ho - 1) * stride + 1:stride,
                             c0:c0 + (wo - 1) * stride + 1:stride]
                    out[:, oc] += float(w[oc, ci, i, j]) * view
    return out


# These come first: the 8 GiB input below lives until the end of the module.
@pytest.mark.huge
@pytest.mark.slow
@pytest.mark.parametrize("path", ["gemm", "rows", "plane", "winograd"])
def test_output_over_2_31_elements(huge, path):
    """A tiny input padded into an output of more than 2**31 elements: all
    of it is the bias except where the kernel meets the input."""
    rng = np.random.default_rng(3)
    if path == "plane":  # two depthwise channels of 32769 x 32769
        x = rng.integers(-3, 4, (1, 2, 1, 1)).astype(np.float32)
        w = rng.integers(-3, 4, (2, 1, 1, 1)).astype(np.float32)
        kw = dict(padding=16384, groups=2)
    elif path == "gemm":  # a 1x1 kernel: the packed GEMM path
        x = rng.integers(-3, 4, (1, 1, 1, 1)).astype(np.float32)
        w = rng.integers(-3, 4, (1, 1, 1, 1)).astype(np.float32)
        kw = dict(padding=23170, algorithm="direct")
    else:
        x = rng.integers(-3, 4, (1, 1, 3, 3)).astype(np.float32)
        w = rng.integers(-3, 4, (1, 1, 3, 3)).astype(np.float32)
        kw = dict(padding=23170, algorithm="direct" if path == "rows" else "winograd4")
    b = np.array([5.0] * w.shape[0], np.float32)
    ho = x.shape[2] + 2 * kw["padding"] - w.shape[2] + 1
    elements = w.shape[0] * ho * ho
    assert elements > 2**31
    # The result, the plane kernel's per-thread scratch (up to a quarter of
    # a plane each) and the checks' temporaries.
    need_memory(elements * 4 + elements * 2 + GiB)
    got = fastconv.conv2d(x, w, b, **kw)
    assert got.shape == (1, w.shape[0], ho, ho)
    # Where the kernel window meets the input: the small reference.
    p, kh = kw["padding"], w.shape[2]
    lo, hi = p - kh + 1, p + x.shape[2]
    small = fastconv.conv2d(x, w, b, padding=kh - 1, groups=kw.get("groups", 1),
                            algorithm="direct")
    window = got[:, :, lo:hi, lo:hi]
    np.testing.assert_allclose(window, small, rtol=0, atol=1e-4 * 9 * 9)
    # Everything else is exactly the bias; count in row blocks.
    for k in range(w.shape[0]):
        for r0 in range(0, ho, 4096):
            block = got[0, k, r0:r0 + 4096]
            mismatches = int(np.count_nonzero(block != b[k]))
            expected = 0
            rows = range(max(r0, lo), min(r0 + 4096, hi))
            if len(rows):
                expected = int(np.count_nonzero(got[0, k, rows.start:rows.stop, lo:hi] != b[k]))
            assert mismatches == expected, (k, r0)


# An input of 2 x 32768 x 32800 float32 = 2**31 + 2,097,152 elements (8 GiB):
# the last rows of channel 1 lie past element 2**31.
BIG_SHAPE = (1, 2, 32768, 32800)


@pytest.fixture(scope="module")
def big_input(request):
    if not _huge_requested(request.config):
        pytest.skip("huge-array test: set FASTCONV_RUN_HUGE=1 or select -m huge")
    need_memory(int(np.prod(BIG_SHAPE)) * 4 + 5 * GiB)  # + the Winograd output
    x = np.empty(BIG_SHAPE, np.float32)
    assert x.size > 2**31
    _fill_pattern(x)
    yield x
    del x


@pytest.mark.huge
@pytest.mark.slow
@pytest.mark.parametrize("name, k, kernel, stride, dilation, groups", [
    ("rows-3x3", 3, (3, 3), 61, 1, 1),        # row-panel path
    ("gemm-1x1", 3, (1, 1), 61, 1, 1),        # packed GEMM path
    ("gemm-2x5", 2, (2, 5), 97, 1, 1),
    ("plane-depthwise", 2, (3, 3), 61, 1, 2),  # plane path
    ("dilated", 2, (3, 3), 97, 3000, 1),
])
def test_input_over_2_31_elements(big_input, name, k, kernel, stride, dilation, groups):
    """Every output exact (small integers in float32 sum exactly)."""
    x = big_input
    rng = np.random.default_rng(1)
    w = rng.integers(-3, 4, (k, x.shape[1] // groups, *kernel)).astype(np.float32)
    t0 = time.perf_counter()
    got = fastconv.conv2d(x, w, stride=stride, dilation=dilation, groups=groups,
                          algorithm="direct")
    elapsed = time.perf_counter() - t0
    want = _strided_reference(x, w, stride, dilation, groups)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    print(f"{name}: {x.size} input elements, output {got.shape}, {elapsed:.2f} s")


@pytest.mark.huge
@pytest.mark.slow
def test_input_over_2_31_elements_winograd(big_input):
    """Winograd over the whole 2**31-element input (a 4 GiB output), checked
    at sampled positions, the last rows and columns included."""
    x = big_input
    rng = np.random.default_rng(2)
    w = rng.integers(-3, 4, (1, 2, 3, 3)).astype(np.float32)
    got = fastconv.conv2d(x, w, algorithm="winograd4")
    ho, wo = x.shape[2] - 2, x.shape[3] - 2
    assert got.shape == (1, 1, ho, wo)
    ys = np.concatenate([rng.integers(0, ho, 4000), [0, ho - 1, ho - 1, ho - 2]])
    xs = np.concatenate([rng.integers(0, wo, 4000), [0, wo - 1, 0, wo - 3]])
    want = np.zeros(len(ys))
    for c in range(2):
        for i in range(3):
            for j in range(3):
                want += float(w[0, c, i, j]) * x[0, c, ys + i, xs + j]
    scale = np.zeros(len(ys))
    for c in range(2):
        for i in range(3):
            for j in range(3):
                scale += abs(float(w[0, c, i, j])) * 8  # |x| <= 8
    err = np.abs(got[0, 0, ys, xs].astype(np.float64) - want)
    assert (err <= 1e-4 * scale).all(), float(err.max())


# --- absurd shapes, in process (nothing is allocated) -------------------------------

def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize("name, make", [
    ("input-2**40-elements",
     lambda: (np.broadcast_to(np.float32(1), (2**20, 1, 2**10, 2**10)),
              np.ones((1, 1, 1, 1), np.float32), {})),
    ("input-2**40-elements-tiny-output",
     lambda: (np.broadcast_to(np.float32(1), (1, 1, 2**20, 2**20)),
              np.ones((1, 1, 1, 1), np.float32), dict(stride=2**20))),
    ("batch-2**40",
     lambda: (np.broadcast_to(np.float64(1), (2**40, 1, 1, 1)), np.ones((3, 1, 1, 1)), {})),
    ("weight-2**40-elements",
     lambda: (np.ones((1, 2**20, 1, 1), np.float32),
              np.broadcast_to(np.float32(1), (2**20, 2**20, 1, 1)), {})),
    ("padding-2**40",
     lambda: (np.ones((1, 1, 2, 2), np.float32), np.ones((1, 1, 1, 1), np.float32),
              dict(padding=2**40))),
    ("padding-2**40-pair",
     lambda: (np.ones((1, 1, 2, 2), np.float32), np.ones((1, 1, 1, 1), np.float32),
              dict(padding=(0, 2**40)))),
    ("padding-2**62-dense",
     lambda: (np.ones((1, 1, 2, 2), np.float32), np.ones((1, 1, 3, 3), np.float32),
              dict(padding=2**62))),
    ("dilation-2**40-no-padding",
     lambda: (np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 2, 2), np.float32),
              dict(dilation=2**40))),
    ("stride-2**40-padding-2**40-dilation-2**40-output-2**80",
     lambda: (np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 2, 2), np.float32),
              dict(padding=2**62, dilation=2**40, stride=1))),
])
def test_absurd_shapes_fail_fast(name, make):
    """MemoryError or ValueError, raised before any large allocation is
    touched: fast, and the resident memory does not grow."""
    x, w, kwargs = make()
    rss0, t0 = _rss(), time.perf_counter()
    with pytest.raises((MemoryError, ValueError)):
        fastconv.conv2d(x, w, **kwargs)
    assert time.perf_counter() - t0 < 5
    assert _rss() - rss0 < 256 << 20


@pytest.mark.parametrize("name", ["padding", "stride", "dilation"])
def test_values_beyond_int64_name_the_argument(name):
    """A padding, stride or dilation that does not fit a 64-bit index: a
    ValueError naming it, not an OverflowError from the conversion to C."""
    with pytest.raises(ValueError, match=name):
        fastconv.conv2d(np.ones((1, 1, 2, 2), np.float32), np.ones((1, 1, 1, 1), np.float32),
                        **{name: 2**70})
    with pytest.raises(ValueError, match=name):
        fastconv.conv2d(np.ones((1, 1, 2, 2), np.float32), np.ones((1, 1, 1, 1), np.float32),
                        **{name: (1, 2**62 + 1)})


@pytest.mark.parametrize("algorithm", ["direct", "auto"])
def test_huge_stride_and_padding_are_exact(algorithm):
    """Offsets near 2**62 in 64-bit index arithmetic: the windows that
    miss the input give the bias, the one that hits it the product."""
    x = np.full((1, 1, 2, 2), 3.0, np.float32)
    w = np.full((1, 1, 1, 1), 2.0, np.float32)
    b = np.ones(1, np.float32)
    got = fastconv.conv2d(x, w, b, padding=2**40, stride=2**41, algorithm=algorithm)
    np.testing.assert_array_equal(got, np.ones((1, 1, 2, 2)))
    got = fastconv.conv2d(x, w, b, padding=2**62, stride=2**62, algorithm=algorithm)
    want = np.ones((1, 1, 3, 3), np.float32)
    want[0, 0, 1, 1] = 7
    np.testing.assert_array_equal(got, want)


def test_huge_dilation_on_the_gemm_path_is_exact():
    """Taps 2**40 apart (stride 2: the packed GEMM path): only the centre
    tap meets the input."""
    rng = np.random.default_rng(4)
    x = rng.integers(-3, 4, (2, 8, 3, 3)).astype(np.float32)
    w = rng.integers(-3, 4, (5, 8, 3, 3)).astype(np.float32)
    d = 2**40
    got = fastconv.conv2d(x, w, dilation=d, padding=d, stride=2, algorithm="direct")
    want = np.einsum("nchw,kc->nkhw", x[:, :, ::2, ::2].astype(np.float64),
                     w[:, :, 1, 1].astype(np.float64))
    np.testing.assert_array_equal(got, want)


# --- geometries that may crash or allocate without bound: in a child -----------------

def run_child(code, address_space=4 * GiB, timeout=120):
    """Run ``code`` in a child Python with fastconv, its address space
    limited (so a runaway allocation fails instead of paging); returns the
    CompletedProcess."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
               PYTHONFAULTHANDLER="1")

    def limit():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    limited = sys.platform.startswith("linux") and not UNDER_ASAN
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limit if limited else None)


# The child prints RESULT ok / RESULT wrong / ERROR <type>.
_CHILD_PRELUDE = """
import numpy as np, fastconv
from fastconv import _direct
def report(call, want):
    try:
        got = call()
    except (MemoryError, ValueError) as exc:
        print("ERROR", type(exc).__name__, exc)
        return
    print("RESULT", "ok" if np.array_equal(got, want) else "wrong")
"""

needs_linux = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="uses RLIMIT_AS (Linux)")


def _child_outcome(code, **kwargs):
    """(CompletedProcess, last RESULT/ERROR line). A Python error in the
    child's own code is a RuntimeError, so that it cannot pass for the
    failure an xfail(raises=AssertionError) test expects."""
    proc = run_child(_CHILD_PRELUDE + textwrap.dedent(code), **kwargs)
    if "Traceback (most recent call last)" in proc.stderr:
        raise RuntimeError(f"the child script failed:\n{proc.stderr[-3000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("RESULT", "ERROR"))]
    return proc, (lines[-1] if lines else "")


@pytest.mark.subprocess
@needs_linux
def test_plane_scratch_size_overflow_is_safe():
    """A depthwise kernel with dilations whose padded span wraps the scratch
    size to 4 bytes: the right answer (only the centre tap meets the 1x1
    input) or a MemoryError/ValueError, never a crash."""
    proc, outcome = _child_outcome("""
        dh, dw = 2**61 - 2**30, 2**30 - 8      # (2dh+1)(2dw+17) = 1 mod 2**62
        x = np.full((1, 2, 1, 1), 3.0, np.float32)
        w = np.full((2, 1, 3, 3), 2.0, np.float32)
        report(lambda: fastconv.conv2d(x, w, dilation=(dh, dw), padding=(dh, dw), groups=2),
               np.full((1, 2, 1, 1), 6.0, np.float32))
    """)
    assert proc.returncode == 0 and (outcome == "RESULT ok" or outcome.startswith("ERROR")), (
        proc.returncode, outcome, proc.stderr[-2000:])


@pytest.mark.subprocess
@needs_linux
def test_rows_scratch_size_overflow_is_safe():
    proc, outcome = _child_outcome("""
        mr, nr = _direct.tile_shape("float32")
        phase_len = nr + 3                     # padded width + 2 + 1 (3x3, dilation 1 in w)
        rows = pow(phase_len, -1, 2**62)       # rows * phase_len = 1 mod 2**62
        dh = (rows - 1) // 2
        x = np.full((1, 1, 1, nr), 3.0, np.float32)
        w = np.full((1, 1, 3, 3), 2.0, np.float32)
        want = np.full((1, 1, 1, nr), 18.0, np.float32)
        want[..., 0] = want[..., -1] = 12.0
        report(lambda: fastconv.conv2d(x, w, dilation=(dh, 1), padding=(dh, 1),
                                       algorithm="direct", num_threads=1), want)
    """)
    assert proc.returncode == 0 and (outcome == "RESULT ok" or outcome.startswith("ERROR")), (
        proc.returncode, outcome, proc.stderr[-2000:])


@pytest.mark.subprocess
@needs_linux
@pytest.mark.skipif(UNDER_ASAN, reason="needs RLIMIT_AS (else it touches ~17 GB)")
@pytest.mark.parametrize("path", ["plane", "rows"])
def test_dilation_does_not_blow_up_scratch(path):
    """A dilated kernel over a small input, with padding so the output is
    the input's size: memory like the input's, not the dilated span's."""
    proc, outcome = _child_outcome(f"""
        d = 16384
        path = {path!r}
        if path == "plane":
            x = np.full((1, 2, 3, 3), 3.0, np.float32)
            w = np.full((2, 1, 3, 3), 2.0, np.float32)
            call = lambda: fastconv.conv2d(x, w, dilation=d, padding=d, groups=2)
            want = np.full((1, 2, 3, 3), 6.0, np.float32)
        else:
            mr, nr = _direct.tile_shape("float32")
            x = np.full((1, 1, 3, nr), 3.0, np.float32)
            w = np.full((1, 1, 3, 3), 2.0, np.float32)
            call = lambda: fastconv.conv2d(x, w, dilation=d, padding=d, algorithm="direct")
            want = np.full((1, 1, 3, nr), 6.0, np.float32)
        report(call, want)
    """, address_space=3 * GiB)
    assert proc.returncode == 0 and outcome == "RESULT ok", (
        proc.returncode, outcome, proc.stderr[-2000:])


@pytest.mark.subprocess
@needs_linux
@pytest.mark.parametrize("path", ["plane", "rows", "gemm"])
def test_large_dilation_fails_cleanly_or_computes(path):
    """Dilation 2**20 (span about 2**21): today the plane and row kernels
    take the packed path (bounded scratch); whatever the kernels do,
    the process must survive and not return a wrong number."""
    proc, outcome = _child_outcome(f"""
        d = 2**20
        path = {path!r}
        mr, nr = _direct.tile_shape("float32")
        if path == "plane":
            x = np.full((1, 2, 3, 3), 3.0, np.float32)
            w = np.full((2, 1, 3, 3), 2.0, np.float32)
            call = lambda: fastconv.conv2d(x, w, dilation=d, padding=d, groups=2)
            want = np.full((1, 2, 3, 3), 6.0, np.float32)
        elif path == "rows":
            x = np.full((1, 1, 3, nr), 3.0, np.float32)
            w = np.full((1, 1, 3, 3), 2.0, np.float32)
            call = lambda: fastconv.conv2d(x, w, dilation=d, padding=d, algorithm="direct")
            want = np.full((1, 1, 3, nr), 6.0, np.float32)
        else:  # stride 2 and a narrow output: the packed GEMM path
            x = np.full((1, 1, 3, 3), 3.0, np.float32)
            w = np.full((1, 1, 3, 3), 2.0, np.float32)
            call = lambda: fastconv.conv2d(x, w, dilation=d, padding=d, stride=2,
                                           algorithm="direct")
            want = np.full((1, 1, 2, 2), 6.0, np.float32)
        report(call, want)
    """, address_space=3 * GiB)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert outcome == "RESULT ok" or outcome.startswith("ERROR MemoryError"), outcome
    if path == "gemm":
        assert outcome == "RESULT ok"
