"""Package metadata, build configuration report and the OpenMP build."""

import os

import pytest

import fastconv


def test_version_is_a_nonempty_string():
    assert isinstance(fastconv.__version__, str)
    assert fastconv.__version__.strip()


def test_show_config_reports_version_and_openmp(capsys):
    fastconv.show_config()
    text = capsys.readouterr().out
    assert "OpenMP" in text
    assert fastconv.__version__ in text


def test_show_config_reports_simd_level(capsys):
    """The active SIMD level is printed (one of the FASTCONV_ISA names)."""
    fastconv.show_config()
    text = capsys.readouterr().out.lower().replace("-", "").replace("_", "")
    assert any(level in text for level in ("baseline", "avx2", "avx512"))


# (MR, NR) of the direct tile and of Winograd's GEMM tile, float32, per level.
_TILE_SHAPES = {"baseline": ((4, 16), (4, 16)), "avx2": ((6, 16), (6, 16)),
                "avx512": ((8, 32), (12, 32))}


def test_one_isa_state_switches_both_extensions(capsys):
    """The level is one state (fastconv._cpu): selecting it once changes what
    both compiled modules run, and show_config reports the level in use."""
    from fastconv import _cpu, _direct, _isa, _winograd
    original = _isa.active_isa()
    levels = _cpu.ISA_LEVELS[:_cpu.ISA_LEVELS.index(_cpu.cpu_isa()) + 1]
    try:
        for level in levels:
            assert _cpu.select_isa(level) == level
            assert _isa.active_isa() == _cpu.active_isa() == level
            assert (_direct.tile_shape("float32"), _winograd.gemm_tile_shape("float32")) == (
                _TILE_SHAPES[level])
            fastconv.show_config()
            assert f"SIMD kernels  {level} " in capsys.readouterr().out
        # Neither driver module keeps a level of its own to select.
        assert not hasattr(_direct, "select_isa") and not hasattr(_winograd, "select_isa")
    finally:
        _cpu.select_isa(original)
    assert _isa.active_isa() == original


def test_openmp_helpers_report_a_bool():
    from fastconv import _openmp_helpers
    assert isinstance(_openmp_helpers.openmp_enabled(), bool)


@pytest.mark.skipif(os.environ.get("FASTCONV_SKIP_OPENMP_CHECK") == "1",
                    reason="FASTCONV_SKIP_OPENMP_CHECK=1")
def test_openmp_is_active():
    """Release builds must be multi-threaded; a silent fallback to a serial
    build (e.g. the compiler flag was dropped) is a bug."""
    from fastconv import _openmp_helpers
    assert _openmp_helpers.openmp_enabled() is True


def test_conv2d_is_exported():
    assert callable(fastconv.conv2d)


def test_show_config_reports_the_fft_library(capsys):
    from fastconv import _fft
    fastconv.show_config()
    assert f"FFT library   {_fft.backend()}" in capsys.readouterr().out
