"""``python -m fastconv bench`` on tiny layers (the table, the JSON, the errors),
and ``python -m fastconv`` without a command (the demo)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv import _cpu
from fastconv._benchmarking import bench, plot, report, systems
from fastconv._benchmarking.layers import (DEFAULT_LAYERS, LARGE_KERNEL_LAYERS,
                                           RESNET50_LAYERS, Layer, distinct_layers,
                                           parse_layers)
from fastconv.__main__ import main

TINY = "1,8,8,16"


def _env():
    """The environment of a subprocess that imports this fastconv (src/ builds too)."""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return env


@pytest.mark.subprocess
def test_bench_command_prints_table_and_writes_json(tmp_path):
    path = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "fastconv", "bench", "--layers", TINY, "--repeats", "1",
         "--json", str(path)],
        capture_output=True, text=True, env=_env(), timeout=120, check=True)
    out = result.stdout
    header = next(line for line in out.splitlines() if line.startswith("| layer"))
    assert [cell.strip() for cell in header.strip("|").split("|")] == report.TABLE_HEADERS
    assert "CPU:" in out and "Threads:" in out and "Versions:" in out
    assert TINY in out
    assert "done: " + TINY in result.stderr  # progress on stderr, not in the table

    data = json.loads(path.read_text())
    assert {"machine", "settings", "peak", "reference", "layers", "date"} <= set(data)
    # The peak is measured (an inline-asm multiply-add loop), not estimated;
    # builds without that loop (not x86-64 GCC/Clang) say it is not measured.
    if _cpu.fma_peak(1, seconds=0.001, repeats=1) > 0:
        assert data["peak"]["source"].startswith("measured") and data["peak"]["gflops"] > 0
        assert data["peak"]["one_thread"] > 0
    else:
        assert data["peak"]["source"].startswith("not measured")
    assert "Peak: " in out
    assert data["settings"]["repeats"] == 1
    (layer,) = data["layers"]
    assert layer["label"] == TINY
    assert layer["flops"] == 2 * 1 * 8 * 8 * 9 * 16 * 16
    fast = layer["results"]["fastconv"]
    assert len(fast["times_s"]) == 1
    assert fast["best_ms"] > 0 and fast["gflops"] > 0
    if data["peak"]["gflops"] > 0:
        assert fast["peak_percent"] == pytest.approx(100 * fast["gflops"] / data["peak"]["gflops"])
    else:
        assert "peak_percent" not in fast
    # The kernel path of fastconv.plan (computed in the bench's process, whose
    # thread minimum the suite's fixture does not lift).
    assert fast["path"] in ("winograd_tiles", "winograd_cooperative", "rows", "packed")
    assert fast["path"].startswith("winograd") == fast["method"].startswith("winograd")
    assert fast["method"].endswith("(auto)")
    assert 0 <= fast["max_error"] < 1e-5
    numpy_peer = layer["results"]["numpy"]
    assert numpy_peer["method"] == "im2col + matmul" and numpy_peer["max_error"] < 1e-5


def test_bench_main_in_process(capsys):
    assert main(["bench", "--layers", "2,4,6,9,3,2,1,2", "--repeats", "2", "--peers",
                 "numpy", "--algorithm", "direct", "--prepared", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2,4,6,9,3,2,1,2" in out and "direct, prepared" in out
    assert "torch" not in out.split("\n\n")[1]  # no torch row in the table


@pytest.mark.parametrize("text, layers", [
    ("1,64,64,56", [Layer(1, 64, 64, 56)]),
    ("1,3,8,32,7,2,3; 2,4,4,8,1", [Layer(1, 3, 8, 32, 7, 2, 3),
                                   Layer(2, 4, 4, 8, 1, 1, 0)]),
    ("1,8,8,16,3,1,1,4  1,8,8,16", [Layer(1, 8, 8, 16, groups=4),
                                    Layer(1, 8, 8, 16)]),
])
def test_parse_layers(text, layers):
    assert list(parse_layers(text)) == layers


def test_named_layer_sets():
    assert parse_layers("large-kernel") == LARGE_KERNEL_LAYERS
    assert parse_layers(" default ") == DEFAULT_LAYERS
    assert all(layer.kernel >= 7 and layer.stride == 1 for layer in LARGE_KERNEL_LAYERS)


@pytest.mark.parametrize("text, message", [
    ("1,2,3", "expected N,C,K,H"),
    ("1,a,3,4", "integers"),
    ("1,6,8,16,3,1,1,4", "groups=4 must divide"),
    ("1,8,8,2,5,1,0", "larger than the padded input"),
    ("0,8,8,16", "batch must be >= 1"),
    ("", "no layer"),
])
def test_parse_layers_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_layers(text)


def test_layer_spec_and_flops():
    layer = Layer(1, 128, 128, 56, stride=2)
    assert layer.spec == "1,128,128,56,3,2"
    assert layer.output_size == 28
    assert layer.flops == 2 * 128 * 128 * 9 * 28 * 28


def test_im2col_matches_fastconv_with_groups():
    layer = Layer(2, 6, 4, 9, kernel=3, stride=2, padding=1, groups=2)
    x, w = layer.data(np.float64)
    expected = fastconv.conv2d(x, w, **layer.conv_kwargs())
    got = systems.im2col_conv2d(x, w, layer.stride, layer.padding, layer.groups)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_plot_without_matplotlib_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(plot, "optional_import", lambda name: None)
    with pytest.raises(SystemExit, match="--plot needs matplotlib"):
        main(["bench", "--layers", TINY, "--plot", "x.png"])


def test_no_command_runs_the_demo(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "The worked example" in out and "ResNet-50 layer" in out


# ResNet-50 (torchvision's resnet50, batch 1, 224 x 224), written out by hand
# from the architecture: (spec, how often it occurs), in the order of the
# forward pass. 1 + 10 + 13 + 19 + 10 = 53 convolutions.
RESNET50 = [
    ("1,3,64,224,7,2", 1),                                        # stem
    ("1,64,64,56,1", 1), ("1,64,64,56", 3), ("1,64,256,56,1", 4),  # layer1 (+ projection)
    ("1,256,64,56,1", 2),
    ("1,256,128,56,1", 1), ("1,128,128,56,3,2", 1), ("1,128,512,28,1", 4),  # layer2
    ("1,256,512,56,1,2", 1), ("1,512,128,28,1", 3), ("1,128,128,28", 3),
    ("1,512,256,28,1", 1), ("1,256,256,28,3,2", 1), ("1,256,1024,14,1", 6),  # layer3
    ("1,512,1024,28,1,2", 1), ("1,1024,256,14,1", 5), ("1,256,256,14", 5),
    ("1,1024,512,14,1", 1), ("1,512,512,14,3,2", 1), ("1,512,2048,7,1", 3),  # layer4
    ("1,1024,2048,14,1,2", 1), ("1,2048,512,7,1", 2), ("1,512,512,7", 2),
]


def test_resnet50_layer_set():
    table = parse_layers("resnet50")
    assert table == RESNET50_LAYERS and len(table) == 53
    assert [(layer.spec, count) for layer, count in distinct_layers(table)] == RESNET50
    # torchvision's documented 4.09 GFLOPS (multiply-adds, with the 2 M of the
    # final fully connected layer).
    assert sum(layer.macs for layer in table) + 2048 * 1000 == pytest.approx(4.09e9, rel=2e-3)
    # Each layer's input is the output of the layer before it (the projection
    # and the block's conv1 read the same input; the stem's 112 is max-pooled
    # to 56).
    names = {layer.name: layer for layer in table}
    assert names["conv1"].output_size == 112 and names["layer1.0.conv1"].size == 56
    for layer in table:
        if layer.name.endswith(("conv2", "conv3")):
            before = names[layer.name[:-1] + str(int(layer.name[-1]) - 1)]
            assert (layer.in_channels, layer.size) == (before.out_channels, before.output_size)
    assert names["layer4.2.conv3"].output_shape == (1, 2048, 7, 7)
    assert sum(".downsample." in layer.name for layer in table) == 4


def test_repeated_layers_timed_once_and_counted_in_the_total(tmp_path):
    path = tmp_path / "bench.json"
    assert main(["bench", "--layers", f"{TINY}; 1,4,4,8; {TINY}", "--repeats", "1",
                 "--peers", "numpy", "--also-prepared", "--no-progress", "--peak", "1",
                 "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert [(layer["label"], layer["count"]) for layer in data["layers"]] == [
        (TINY + " x2", 2), ("1,4,4,8", 1)]
    assert set(data["totals"]) == {"fastconv", "fastconv-prepared", "numpy"}
    for key, total in data["totals"].items():
        expected = sum(layer["count"] * layer["results"][key]["best_ms"]
                       for layer in data["layers"])
        assert total["total_ms"] == pytest.approx(expected)
    assert data["layers"][0]["results"]["fastconv-prepared"]["method"].endswith("prepared")


def test_total_lines_skipped_systems_have_no_total():
    records = [{"count": 3, "results": {
        "fastconv": {"label": "fastconv", "best_ms": 2.0},
        "torch": {"label": "torch", "best_ms": 3.0},
        "scipy": {"label": "scipy", "skipped": "too large"}}}]
    text = "\n".join(report.total_lines(records))
    assert "Total over the 3 layers, 1 distinct" in text
    assert "| torch    |     9.00 |            1.50x |" in text
    assert "scipy: skipped 1 of the 1 distinct layers, no total" in text
    assert report.total_lines([dict(records[0], count=1)]) == []


def test_missing_peer_is_a_note(monkeypatch):
    monkeypatch.setattr(systems, "optional_import", lambda name: None)
    found, notes = systems.make_systems(1, peers=("torch", "onnxruntime", "openvino"))
    assert [s.key for s in found] == ["fastconv"]
    assert notes == ["torch: not installed, not run (pip install torch)",
                     "onnxruntime: not installed, not run (pip install onnxruntime onnx)",
                     "openvino: not installed, not run (pip install openvino)"]
    assert not set(systems.OPT_IN_PEERS) & set(systems.PEERS)


@pytest.mark.parametrize("peer, modules", [("onnxruntime", ("onnxruntime", "onnx")),
                                           ("openvino", ("openvino",))])
def test_inference_engine_peer(peer, modules):
    """Each engine on a grouped, strided, dilated layer and a plain one, when
    installed: the same result as the float64 reference."""
    for module in modules:
        pytest.importorskip(module)
    found, notes = systems.make_systems(1, peers=(peer,))
    assert notes == [] and [s.key for s in found] == ["fastconv", peer]
    engine = found[1]
    tiny = [Layer(2, 8, 12, 17, stride=2, padding=2, groups=4, dilation=2), Layer(1, 3, 8, 12)]
    records = bench.run_bench(tiny, found, "float32", repeats=1, progress=False)
    for record in records:
        result = record["results"][peer]
        assert result["best_ms"] > 0 and result["max_error"] < 1e-5
        assert result["label"].startswith(peer + " ")
    assert engine.skip_reason(tiny[0], np.float64).startswith("float32 only")
