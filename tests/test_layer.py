"""fastconv.Conv2d: cached weights, settings, pickling, repr, from_torch, and
the docs' worked pipeline."""

import os
import pickle
import runpy
import sys

import numpy as np
import pytest

import fastconv
from fastconv import _direct, _winograd
from reference import assert_conv_close

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


@pytest.fixture
def pack_calls(monkeypatch):
    """How often each weight packing (direct, channel lanes, Winograd) runs."""
    packers = {"direct": (_direct, "pack_weights"),
               "lanes": (_direct, "pack_channel_lanes"),
               "winograd": (_winograd, "pack_weights")}
    calls = dict.fromkeys(packers, 0)
    for name, (module, function) in packers.items():
        original = getattr(module, function)

        def counted(*args, _name=name, _original=original):
            calls[_name] += 1
            return _original(*args)

        monkeypatch.setattr(module, function, counted)
    return calls


@pytest.mark.parametrize("algorithm, r", [
    ("direct", 3), ("winograd2", 3), ("winograd4", 3), ("winograd6", 3), ("auto", 3),
    ("winograd2", 5), ("winograd4", 5), ("winograd", 5), ("winograd2", 7), ("winograd", 7),
])
def test_equals_conv2d_and_packs_once(algorithm, r, pack_calls, rng):
    x = rng.standard_normal((2, 8, 12, 12)).astype(np.float32)
    w = rng.standard_normal((6, 8, r, r)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    layer = fastconv.Conv2d(w, b, padding=r // 2, algorithm=algorithm)
    plan = layer.plan(x.shape)
    chosen = f"winograd{plan.tile}" if plan.tile else plan.algorithm
    want = fastconv.conv2d(x, w, b, padding=r // 2, algorithm=chosen)
    before = dict(pack_calls)
    for _ in range(3):
        np.testing.assert_array_equal(layer(x), want)
    assert sum(pack_calls.values()) - sum(before.values()) == 1
    layer(x.astype(np.float64))  # another dtype: packed once more
    layer(x.astype(np.float64))
    assert sum(pack_calls.values()) - sum(before.values()) == 2


@pytest.mark.parametrize("kwargs", [
    dict(stride=2, padding=(1, 2)), dict(dilation=(2, 1), groups=2, padding="same"),
    dict(padding="valid"), dict(stride=(1, 3), padding=3, padding_mode="replicate"),
])
def test_float64_reference(kwargs, rng):
    x = rng.standard_normal((2, 4, 11, 13))
    w = rng.standard_normal((6, 4 // kwargs.get("groups", 1), 3, 4))
    b = rng.standard_normal(6)
    got = fastconv.Conv2d(w, b, **kwargs)(x)
    if kwargs.get("padding_mode") == "replicate":
        x = np.pad(x, ((0, 0), (0, 0), (3, 3), (3, 3)), mode="edge")
        kwargs = dict(stride=kwargs["stride"])
    kwargs.pop("padding_mode", None)
    assert_conv_close(got, x, w, b, **kwargs)


def test_weights_are_copied_and_read_only(rng):
    w = rng.standard_normal((2, 3, 3, 3))
    b = np.zeros(2)
    layer = fastconv.Conv2d(w, b)
    x = rng.standard_normal((1, 3, 5, 5))
    before = layer(x)
    w[...] = 0
    b[...] = 1
    np.testing.assert_array_equal(layer(x), before)
    with pytest.raises(ValueError):
        layer.weight[0, 0, 0, 0] = 1.0
    assert layer.bias is not None and not layer.bias.flags.writeable


def test_attributes_and_call_arguments(rng):
    layer = fastconv.Conv2d(np.ones((4, 2, 3, 1)), None, 2, "valid", 1, 2, "circular",
                            "direct", 1, layout="NHWC", activation="relu")
    assert (layer.in_channels, layer.out_channels, layer.kernel_size) == (4, 4, (3, 1))
    assert (layer.stride, layer.padding, layer.dilation, layer.groups) == (
        (2, 2), "valid", (1, 1), 2)
    assert (layer.padding_mode, layer.algorithm, layer.num_threads, layer.layout,
            layer.activation) == ("circular", "direct", 1, "NHWC", "relu")
    assert layer.bias is None
    x = rng.standard_normal((7, 5, 4))  # unbatched NHWC
    out = np.empty((3, 3, 4))
    assert layer(x, out, num_threads=2) is out
    np.testing.assert_array_equal(out, layer(x))


def test_repr():
    w = np.ones((8, 2, 3, 3), np.float32)
    assert repr(fastconv.Conv2d(w)) == (
        "Conv2d(2, 8, kernel_size=(3, 3), bias=False, dtype=float32)")
    text = repr(fastconv.Conv2d(w, np.ones(8), stride=2, padding=1, dilation=2, groups=1,
                                padding_mode="reflect", algorithm="direct", num_threads=3,
                                layout="NHWC", activation="relu"))
    assert text == ("Conv2d(2, 8, kernel_size=(3, 3), stride=(2, 2), padding=1, "
                    "dilation=(2, 2), padding_mode='reflect', bias=True, dtype=float32, "
                    "algorithm='direct', num_threads=3, layout='NHWC', activation='relu')")


@pytest.mark.parametrize("kwargs", [
    dict(), dict(padding="same", padding_mode="reflect", activation="relu"),
    dict(stride=(1, 2), padding=(2, 1), groups=2, padding_mode="circular",
         algorithm="direct", num_threads=1, layout="NHWC"),
])
def test_pickle_round_trip(kwargs, rng):
    w = rng.standard_normal((4, 4 // kwargs.get("groups", 1), 3, 3)).astype(np.float32)
    layer = fastconv.Conv2d(w, rng.standard_normal(4), **kwargs)
    x = rng.standard_normal((2, 4, 9, 9) if kwargs.get("layout") != "NHWC"
                            else (2, 9, 9, 4)).astype(np.float32)
    want = layer(x)  # the original has its packed weights cached by now
    copy = pickle.loads(pickle.dumps(layer))
    assert repr(copy) == repr(layer)
    np.testing.assert_array_equal(copy(x), want)


def test_unpickle_older_state(rng):
    """A state written before padding_mode/layout/activation existed."""
    w = rng.standard_normal((2, 3, 3, 3))
    layer = fastconv.Conv2d.__new__(fastconv.Conv2d)
    layer.__setstate__({"weight": w, "bias": None, "stride": (1, 1), "padding": 1,
                        "dilation": (1, 1), "groups": 1, "algorithm": "auto",
                        "num_threads": None})
    x = rng.standard_normal((1, 3, 6, 6))
    np.testing.assert_array_equal(layer(x), fastconv.conv2d(x, w, padding=1))
    assert (layer.padding_mode, layer.layout, layer.activation) == ("zeros", "NCHW", None)


def test_invalid_arguments():
    w = np.ones((2, 2, 3, 3))
    with pytest.raises(ValueError, match="num_threads"):
        fastconv.Conv2d(w, num_threads=0)
    with pytest.raises(ValueError, match="algorithm"):
        fastconv.Conv2d(w, algorithm="gemm")
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        fastconv.Conv2d(w, stride=2, padding="same", padding_mode="reflect")


# --- from_torch -------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("config", [
    dict(in_channels=3, out_channels=8, kernel_size=3, padding=1),
    dict(in_channels=8, out_channels=8, kernel_size=3, padding="same", bias=False,
         padding_mode="reflect"),
    dict(in_channels=4, out_channels=6, kernel_size=(3, 5), stride=(2, 1), padding=(0, 2),
         dilation=(1, 2), groups=2, padding_mode="replicate"),
    dict(in_channels=6, out_channels=6, kernel_size=2, padding="valid", groups=6),
    dict(in_channels=16, out_channels=16, kernel_size=3, padding=1, padding_mode="circular"),
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_from_torch(torch, config, dtype, rng):
    torch.manual_seed(0)
    module = torch.nn.Conv2d(**config).to(getattr(torch, dtype))
    layer = fastconv.Conv2d.from_torch(module)
    assert layer.weight.dtype == np.dtype(dtype)
    assert layer.padding_mode == module.padding_mode and layer.groups == module.groups
    x = rng.standard_normal((2, config["in_channels"], 10, 9)).astype(dtype)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    got = layer(x)
    assert got.shape == want.shape and got.dtype == want.dtype
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    # The layer owns a copy: later changes to the module do not reach it.
    with torch.no_grad():
        module.weight.zero_()
    np.testing.assert_array_equal(layer(x), got)


def test_from_torch_options_and_bfloat16(torch, rng):
    module = torch.nn.Conv2d(3, 4, 3, padding=1).to(torch.bfloat16)
    layer = fastconv.Conv2d.from_torch(module, algorithm="direct", num_threads=1,
                                       layout="NHWC", activation="relu")
    assert layer.weight.dtype == np.float32
    assert (layer.algorithm, layer.num_threads, layer.layout, layer.activation) == (
        "direct", 1, "NHWC", "relu")
    x = rng.standard_normal((1, 5, 5, 3)).astype(np.float32)
    assert (layer(x) >= 0).all()


def test_from_torch_rejects_other_modules(torch):
    for module in (torch.nn.Linear(3, 3), torch.nn.ConvTranspose2d(3, 3, 3),
                   torch.nn.Conv1d(3, 3, 3), np.ones((1, 1, 3, 3))):
        with pytest.raises(TypeError, match="needs a torch.nn.Conv2d"):
            fastconv.Conv2d.from_torch(module)


def test_from_torch_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch fails
    with pytest.raises(ImportError, match="from_torch needs PyTorch"):
        fastconv.Conv2d.from_torch(object())


def test_docs_pipeline_example(torch, capsys):
    path = os.path.join(DOCS, "pipeline_example.py")
    if not os.path.isfile(path):
        pytest.skip("docs/ is not in this copy of the sources")
    example = runpy.run_path(path)
    assert example["main"]() < 1e-4
    assert "max |NHWC - NCHW| = 0.00e+00" in capsys.readouterr().out
