"""fastconv.Conv2d's pickle state: the round trip, and the errors of
``__setstate__`` for a state that is not one of ``__getstate__``."""

import pickle

import numpy as np
import pytest

import fastconv

REQUIRED = ["weight", "bias", "stride", "padding", "dilation", "groups", "algorithm",
            "num_threads"]


@pytest.fixture
def layer(rng):
    return fastconv.Conv2d(rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(4),
                           stride=(1, 2), padding=1, groups=2, padding_mode="reflect",
                           algorithm="direct", num_threads=1, layout="NHWC",
                           activation="relu")


def restored(state):
    """A Conv2d rebuilt from ``state`` the way unpickling does."""
    copy = fastconv.Conv2d.__new__(fastconv.Conv2d)
    copy.__setstate__(state)
    return copy


def test_round_trip(layer, rng):
    x = rng.standard_normal((2, 7, 7, 4))
    copy = pickle.loads(pickle.dumps(layer))
    assert repr(copy) == repr(layer)
    np.testing.assert_array_equal(copy(x), layer(x))
    assert repr(restored(layer.__getstate__())) == repr(layer)


def test_getstate_writes_the_keys_setstate_requires(layer):
    """The test's list of required keys is the one ``__getstate__`` writes
    (plus the three settings older pickles lack)."""
    assert set(layer.__getstate__()) == {*REQUIRED, "padding_mode", "layout", "activation"}


@pytest.mark.parametrize("key", REQUIRED)
def test_missing_key(layer, key):
    state = layer.__getstate__()
    del state[key]
    with pytest.raises(ValueError, match=f"^Conv2d state is missing '{key}'$"):
        restored(state)


def test_missing_keys_all_named(layer):
    with pytest.raises(ValueError, match="^Conv2d state is missing 'weight', 'groups'$"):
        restored({key: value for key, value in layer.__getstate__().items()
                  if key not in ("weight", "groups")})


@pytest.mark.parametrize("state", [None, [1, 2], ("weight",), "weight"],
                         ids=["None", "list", "tuple", "str"])
def test_state_not_a_dict(state):
    with pytest.raises(TypeError, match="^Conv2d state must be a dict; got "
                                        + type(state).__name__):
        restored(state)


def test_unknown_key_refused(layer):
    """A setting this version does not know (a newer fastconv's) is refused,
    not dropped: the layer would compute something else without it."""
    state = layer.__getstate__()
    state["bias_scale"] = 2.0
    with pytest.raises(ValueError, match="unknown key 'bias_scale'"):
        restored(state)
    state[3] = None
    with pytest.raises(ValueError, match="unknown keys 'bias_scale', 3"):
        restored(state)


@pytest.mark.parametrize("key, value, message", [
    ("num_threads", 0, "num_threads must be >= 1"),
    ("num_threads", "2", "num_threads must be an int"),
    ("algorithm", "fft", "algorithm"),
    ("padding_mode", "mirror", "padding_mode"),
    ("weight", np.ones((4, 3, 3)), "weight"),
])
def test_value_the_constructor_refuses(layer, key, value, message):
    state = layer.__getstate__()
    state[key] = value
    with pytest.raises(ValueError, match="^Conv2d state holds a value Conv2d refuses: .*"
                                         + message) as info:
        restored(state)
    assert isinstance(info.value.__cause__, (TypeError, ValueError))


def test_state_without_later_settings(layer, rng):
    """Pickles of layers made before padding_mode, layout and activation
    existed get the defaults of those settings."""
    state = {key: layer.__getstate__()[key] for key in REQUIRED}
    copy = restored(state)
    assert (copy.padding_mode, copy.layout, copy.activation) == ("zeros", "NCHW", None)
    x = rng.standard_normal((2, 4, 7, 7))
    np.testing.assert_array_equal(
        copy(x), fastconv.conv2d(x, layer.weight, layer.bias, stride=(1, 2), padding=1,
                                 groups=2, algorithm="direct"))
