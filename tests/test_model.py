"""build_unet: the paper's network with its defaults, the options, save/load."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from unet_tutorial import build_unet, shapes


def _conv_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
            and not isinstance(layer, keras.layers.Conv2DTranspose)]


def test_paper_network():
    model = build_unet()
    assert model.input_shape == (None, 572, 572, 1)
    assert model.output_shape == (None, 388, 388, 2)
    assert model.count_params() == 31_030_658
    # 23 convolutional layers in total (paper, Sec. 2): 18 3x3 convs + 4 up-convs + 1x1.
    ups = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert len(_conv_layers(model)) + len(ups) == 23
    assert all(layer.padding == "valid" for layer in _conv_layers(model))
    assert all(layer.kernel_size == (2, 2) and layer.strides == (2, 2) for layer in ups)
    # Up-convolutions halve the channels: 1024 -> 512 -> 256 -> 128 -> 64.
    assert [layer.filters for layer in ups] == [512, 256, 128, 64]
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert len(pools) == 4 and all(p.pool_size == (2, 2) for p in pools)
    # Feature-map sizes of the paper's Fig. 1 at the end of each contracting level.
    sizes = {layer.name: layer.output.shape[1] for layer in model.layers}
    assert [sizes[f"contract{i}_relu2"] for i in range(1, 5)] == [568, 280, 136, 64]
    assert sizes["bottleneck_relu2"] == 28
    assert [sizes[f"expand{i}_relu2"] for i in (4, 3, 2, 1)] == [52, 100, 196, 388]
    # Dropout at the end of the contracting path, He-normal initialisation.
    assert {layer.name for layer in model.layers if isinstance(layer, keras.layers.Dropout)} == {
        "contract4_dropout", "bottleneck_dropout"}
    assert all(type(layer.kernel_initializer).__name__ == "HeNormal" for layer in _conv_layers(model))
    assert model.layers[-1].get_config()["activation"] == "softmax"


@pytest.mark.parametrize("depth,base_filters", [(1, 4), (2, 4), (3, 8), (4, 2)])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_size_helper_agrees_with_model(depth, base_filters, padding):
    for n in shapes.valid_input_sizes(60, 140, depth=depth, padding=padding)[:3]:
        model = build_unet((n, n, 1), base_filters=base_filters, depth=depth, padding=padding)
        expected = shapes.output_size(n, depth=depth, padding=padding)
        assert model.output_shape == (None, expected, expected, 2)
        if padding == "same":
            assert expected == n
        out = model(np.zeros((1, n, n, 1), "float32"))
        assert tuple(out.shape) == (1, expected, expected, 2)


def test_probabilities_and_options():
    model = build_unet((None, None, 3), n_classes=4, base_filters=4, depth=3,
                       padding="same", batch_norm=True, dropout=0.0)
    x = np.random.default_rng(0).random((2, 64, 48, 3), dtype=np.float32)
    out = np.asarray(model(x))
    assert out.shape == (2, 64, 48, 4)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)


@pytest.mark.parametrize("size,padding", [(570, "valid"), (512, "valid"), (500, "same")])
def test_building_with_wrong_size_names_nearest(size, padding):
    with pytest.raises(ValueError, match="Nearest valid input sizes"):
        build_unet((size, size, 1), padding=padding)


def test_calling_with_wrong_size_names_nearest():
    model = build_unet((None, None, 1), base_filters=4, depth=3)
    with pytest.raises(ValueError, match=r"Nearest valid input sizes: 88 or 92"):
        model(np.zeros((1, 90, 90, 1), "float32"))


@pytest.mark.parametrize("bad", [dict(input_shape=(572, 572)), dict(input_shape=(572, 572, 0)),
                                 dict(n_classes=0), dict(dropout=1.0)])
def test_bad_arguments(bad):
    with pytest.raises(ValueError):
        build_unet(**bad)


@pytest.mark.parametrize("bad,message", [
    (dict(depth=0), r"depth must be an integer >= 1 .*got 0"),
    (dict(depth=2.5), r"depth must be an integer >= 1 .*got 2\.5"),
    (dict(padding="full"), r"padding must be one of \('valid', 'same'\), got 'full'"),
    (dict(base_filters=0), r"base_filters must be a whole number >= 1 .*got 0"),
    (dict(n_classes=1), r"n_classes must be a whole number >= 2, got 1"),
    (dict(n_classes=2.0), r"n_classes must be a whole number >= 2, got 2\.0"),
    (dict(dropout=-0.1), r"dropout must be a number in \[0, 1\) .*got -0\.1"),
    (dict(dropout=1.5), r"dropout must be a number in \[0, 1\) .*got 1\.5"),
    (dict(input_shape=(None, None)), r"input_shape must be \(height, width, channels\), got \(None, None\)"),
    (dict(input_shape=(None, None, None)), r"input_shape channels must be known and >= 1, got None"),
    (dict(input_shape=(92.5, 92, 1)), r"input_shape height must be a whole number or None .*got 92\.5"),
])
def test_bad_arguments_are_named_before_any_layer_is_built(bad, message):
    """The issue's case: build_unet((None, None, 1), depth=0) used to fail deep inside Keras."""
    arguments = dict(input_shape=(None, None, 1), base_filters=4, depth=2)
    with pytest.raises(ValueError, match=message):
        build_unet(**{**arguments, **bad})


def test_numpy_integers_are_whole_numbers():
    model = build_unet((np.int64(44), 44, np.int64(1)), n_classes=np.int64(3), base_filters=np.int64(4),
                       depth=np.int64(2), dropout=0.0)
    assert model.output_shape == (None, 28, 28, 3)


def test_save_load_round_trip(tmp_path):
    model = build_unet((None, None, 1), base_filters=4, depth=2)
    x = np.random.default_rng(1).random((1, 44, 44, 1), dtype=np.float32)
    path = tmp_path / "unet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


def test_the_paper_initialises_the_up_convolutions_with_std_sqrt_2_over_n():
    """N = C_in for a 2x2 up-convolution with stride 2; Keras' He initialiser gives half that variance."""
    import numpy as np

    from unet_tutorial.model import build_unet

    stds = {}
    for init in ("he_normal", "paper"):
        model = build_unet((None, None, 1), base_filters=32, depth=3, dropout=0.0, upconv_init=init)
        kernel = np.asarray(model.get_layer("expand2_upconv").kernel)  # (2, 2, 64, 128): C_in = 128
        stds[init] = float(kernel.std())
    assert stds["paper"] == pytest.approx((2 / 128) ** 0.5, rel=0.05)
    assert stds["he_normal"] == pytest.approx((1 / 128) ** 0.5, rel=0.05)
    with pytest.raises(ValueError, match="upconv_init"):
        build_unet((None, None, 1), upconv_init="ones")
