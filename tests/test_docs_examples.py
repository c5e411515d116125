"""The documentation's examples run and say what they print, and its relative
links point to files (and headings) that exist.

* ``docs/pipeline_example.py`` runs without PyTorch (torch made unimportable in
  a child process): it skips the comparison with a note and exits 0.
* The README's example (its first ``python`` block) prints exactly the
  ``text`` block that follows it.
* Every relative link in README.md, CONTRIBUTING.md, CHANGELOG.md and docs/*.md
  names a file of the checkout, and a ``#fragment`` a heading of that file;
  so does every link into the repository (``REPO_URL/blob/main/<path>``).
* README.md, the long description on a package index, has no relative links
  (they would not resolve there): its links into the repository are absolute.
"""

import doctest
import glob
import os
import re
import subprocess
import sys

import pytest

import fastconv
from fastconv import _cpu, _openmp_helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
# pyproject.toml's [project.urls] Source: README.md links into the repository here.
REPO_URL = "https://github.com/fastconv/fastconv"
REPO_FILE = re.compile(re.escape(REPO_URL) + r"/(?:blob|tree)/main/(.*)")
# The child imports the fastconv this process tested (installed, or src/).
IMPORT_PATH = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))


def _child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [IMPORT_PATH] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _need(path):
    if not os.path.isfile(path):
        pytest.skip(f"{os.path.relpath(path, ROOT)} is not in this copy of the sources")


@pytest.mark.subprocess
def test_pipeline_example_runs_without_torch(tmp_path):
    path = os.path.join(ROOT, "docs", "pipeline_example.py")
    _need(path)
    wrapper = ("import runpy, sys; sys.modules['torch'] = None; "  # import torch fails
               f"runpy.run_path({path!r}, run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", wrapper], cwd=tmp_path, env=_child_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PyTorch is not installed" in result.stdout
    assert "max |fastconv - torch|" not in result.stdout
    assert "max |NHWC - NCHW| = 0.00e+00" in result.stdout
    assert "1 thread == " in result.stdout and ": True" in result.stdout


def _readme_example():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    match = re.search(r"```python\n(.*?)```\s*\n(?:[^`\n][^\n]*\n|\n)*?```text\n(.*?)```",
                      text, re.S)
    assert match, "README.md has no ```python block followed by a ```text block"
    return match.group(1), match.group(2)


@pytest.mark.subprocess
def test_readme_example_prints_what_the_readme_says(tmp_path):
    _need(README)
    code, expected = _readme_example()
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_child_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected


def _markdown_files():
    names = ["README.md", "CONTRIBUTING.md", "CHANGELOG.md"]
    files = [os.path.join(ROOT, name) for name in names]
    files += sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    files += sorted(glob.glob(os.path.join(ROOT, "benchmarks", "*.md")))
    return [f for f in files if os.path.isfile(f)]


def _anchors(path):
    """GitHub's heading anchors: lower case, punctuation dropped, spaces -> '-'."""
    anchors, seen = set(), {}
    with open(path, encoding="utf-8") as f:
        in_code = False
        for line in f:
            if line.startswith("```"):
                in_code = not in_code
            if in_code or not line.startswith("#"):
                continue
            slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _links(path):
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"```.*?```", "", f.read(), flags=re.S)  # not in code blocks
    text = re.sub(r"`[^`\n]*`", "", text)                       # nor in inline code
    return re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: os.path.relpath(p, ROOT))
def test_relative_links_resolve(path):
    broken = []
    for link in _links(path):
        in_repo = REPO_FILE.match(link)
        if in_repo:  # a file of the checkout, by its absolute URL
            link = in_repo.group(1)
            base = ROOT
        elif re.match(r"[a-z][a-z0-9+.-]*:", link):  # other http:, https:, mailto:
            continue
        else:
            base = os.path.dirname(path)
        target, _, fragment = link.partition("#")
        target_path = os.path.normpath(os.path.join(base, target)) if target else path
        if not os.path.exists(target_path):
            broken.append(f"{link}: no file {os.path.relpath(target_path, ROOT)}")
        elif fragment and target_path.endswith(".md") and fragment not in _anchors(target_path):
            broken.append(f"{link}: no heading #{fragment}")
    assert not broken, f"{os.path.relpath(path, ROOT)}: " + "; ".join(broken)


def test_readme_links_are_absolute():
    """README.md is the long description on a package index, where a relative
    link resolves to nothing: its links are absolute URLs (or #fragments)."""
    _need(README)
    relative = [link for link in _links(README)
                if not re.match(r"[a-z][a-z0-9+.-]*:", link) and not link.startswith("#")]
    assert not relative, f"README.md has relative links: {relative}"


def test_repo_url_is_the_projects():
    path = os.path.join(ROOT, "pyproject.toml")
    _need(path)
    with open(path, encoding="utf-8") as f:
        assert f'Source = "{REPO_URL}"' in f.read()


@pytest.mark.skipif(
    _cpu.active_isa() != "avx512" or not _openmp_helpers.openmp_enabled(),
    reason="docs/api.md shows the plans of an AVX-512 build with OpenMP")
def test_api_doc_examples_are_real():
    """The examples in docs/api.md (fastconv.plan's output included) print
    what the page says."""
    result = doctest.testfile(os.path.join(ROOT, "docs", "api.md"), module_relative=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
