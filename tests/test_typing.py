"""Typing and documentation of the public API: annotations, py.typed, stubs of
the compiled modules, numpydoc sections, and the docstring examples.

``FASTCONV_TEST_MYPY=1`` also runs mypy on the package (needs ``pip install
mypy``; about 10 s without its cache, so it is opt-in).
"""

import doctest
import inspect
import os
import subprocess
import sys
import typing

import pytest

import fastconv
from fastconv import _conv, _conv1d, _layer, _threads

PACKAGE = os.path.dirname(os.path.abspath(fastconv.__file__))
# The checkout is where this file is, not where fastconv was imported from: an
# installed fastconv (pip install . && python -m pytest) lives in site-packages.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUBLIC = [getattr(fastconv, name) for name in fastconv.__all__
          if callable(getattr(fastconv, name))]
PUBLIC_CALLABLES = [fastconv.conv2d, fastconv.conv1d, fastconv.set_num_threads,
                    fastconv.get_num_threads, fastconv.threads.__init__,
                    fastconv.Conv2d.__init__, fastconv.Conv2d.__call__,
                    fastconv.Conv2d.from_torch, fastconv.Conv2d.plan]


def test_marker_and_stubs_present():
    assert os.path.isfile(os.path.join(PACKAGE, "py.typed"))
    for module in ("_direct", "_winograd", "_openmp_helpers"):
        assert os.path.isfile(os.path.join(PACKAGE, module + ".pyi")), module


def test_marker_and_stubs_are_package_data():
    tomllib = pytest.importorskip("tomllib")
    path = os.path.join(ROOT, "pyproject.toml")
    if not os.path.isfile(path):
        pytest.skip(f"no pyproject.toml beside the tests ({ROOT})")
    with open(path, "rb") as f:
        data = tomllib.load(f)["tool"]["setuptools"]["package-data"]["fastconv"]
    assert "py.typed" in data and "*.pyi" in data


@pytest.mark.parametrize("function", PUBLIC_CALLABLES, ids=lambda f: f.__qualname__)
def test_annotated(function):
    signature = inspect.signature(function)
    missing = [name for name, p in signature.parameters.items()
               if name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
    assert not missing, f"{function.__qualname__}: no annotation for {missing}"
    assert signature.return_annotation is not inspect.Signature.empty
    typing.get_type_hints(function)  # every annotation resolves


@pytest.mark.parametrize("obj", PUBLIC + [fastconv.Conv2d.from_torch,
                                          fastconv.Conv2d.__call__,
                                          fastconv.Conv2d.plan],
                         ids=lambda f: f.__qualname__)
def test_numpydoc_sections(obj):
    doc = inspect.getdoc(obj)
    assert doc, f"{obj.__qualname__} has no docstring"
    parameters = [p for p in inspect.signature(obj).parameters if p not in ("self", "cls")]
    if parameters:
        assert "Parameters\n----------" in doc, obj.__qualname__
    returns = typing.get_type_hints(obj).get("return", type(None))  # unannotated: not checked
    if not inspect.isclass(obj) and returns is not type(None):
        assert "Returns\n-------" in doc or "Yields\n------" in doc, obj.__qualname__


def test_properties_documented():
    for name, value in vars(fastconv.Conv2d).items():
        if isinstance(value, property):
            assert value.__doc__, name
            assert "return" in typing.get_type_hints(value.fget), name


@pytest.mark.parametrize("module", [fastconv, _conv, _conv1d, _layer, _threads],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
    fastconv.set_num_threads(None)
    try:
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    finally:
        fastconv.set_num_threads(None)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.skipif(os.environ.get("FASTCONV_TEST_MYPY") != "1",
                    reason="opt-in: FASTCONV_TEST_MYPY=1")
def test_mypy():
    pytest.importorskip("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", *(os.path.join(PACKAGE, m) for m in (
            "__init__.py", "_conv.py", "_conv1d.py", "_layer.py", "_padding.py",
            "_threads.py", "_checks.py", "_execute.py", "_plan/__init__.py",
            "_plan/direct.py", "_plan/winograd.py", "_plan/fft.py", "_plan/weight_grad.py",
            "_fft.py", "_transpose.py", "grad.py", "dask.py"))],
        cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
