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
