"""The on-device augmentation (unet_tutorial.augment_device): keras.ops only, on TensorFlow and on JAX.

One script checks everything on a backend; it runs in this process for the
active backend and in a child process for each backend (Keras picks its backend
at import): the warp of a fixed displacement field against the scipy
reference, the class values of the labels, the flips/rotations, and the layer
inside a compiled step (``predict_on_batch``).
"""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

CHECKS = textwrap.dedent(
    """
    import numpy as np, keras
    from scipy import ndimage
    from unet_tutorial.augment import displacement_field, elastic_deform
    from unet_tutorial.augment_device import DeviceAugment, augment_batch, warp_batch
    from unet_tutorial.config import AugmentConfig

    N, SIZE = 4, 48  # one batch shape for every eager call: JAX compiles each op once per shape

    def smooth(height=SIZE, width=SIZE):
        rows, cols = np.indices((height, width))
        image = (0.5 + 0.3 * np.sin(rows / 7.0) * np.cos(cols / 9.0)).astype(np.float32)
        labels = np.where(image > 0.6, 7, np.where(image < 0.4, 3, 0)).astype(np.int32)
        weights = np.where(labels == 7, 4.0, np.where(labels == 3, 2.0, 0.5)).astype(np.float32)
        return image, labels, weights

    def check_warp_agrees_with_the_reference():
        image, labels, weights = smooth()
        fields = np.stack([displacement_field(labels.shape, 3, 10.0, rng=seed) for seed in range(N)])
        batch = np.stack([image] * N)[..., None], np.stack([labels] * N), np.stack([weights] * N)
        x, y, w = (np.asarray(a) for a in warp_batch(*batch, fields))
        assert y.dtype == np.int32 and x.dtype == np.float32
        for seed in range(N):  # the same seed draws the same field as the reference's
            reference = elastic_deform(image, labels, rng=seed, weights=weights, method="scipy")
            assert np.abs(reference[0] - image).mean() * 255 > 5, "the field should move the image"
            assert np.abs(x[seed, ..., 0] - reference[0]).mean() * 255 < 1.0, "more than a grey level off"
            interior = ndimage.maximum_filter(reference[1], 3) == ndimage.minimum_filter(reference[1], 3)
            assert interior.mean() > 0.5
            np.testing.assert_array_equal(y[seed][interior], reference[1][interior])
            np.testing.assert_array_equal(w[seed][interior], reference[2][interior])

    def check_mirror_border():
        image, labels, weights = smooth()
        field = np.zeros((N, 2, SIZE, SIZE), np.float32)
        field[:, 0], field[:, 1] = -12.0, 7.0  # whole pixels: nearest = exact shift, mirrored without the edge
        batch = np.stack([image] * N)[..., None], np.stack([labels] * N), np.stack([weights] * N)
        x, y, w = (np.asarray(a) for a in warp_batch(*batch, field))
        rows = np.abs(np.arange(SIZE) - 12)
        cols = np.arange(SIZE) + 7
        cols = np.where(cols > SIZE - 1, 2 * (SIZE - 1) - cols, cols)
        np.testing.assert_array_equal(y[0], labels[rows][:, cols])
        np.testing.assert_allclose(x[0, ..., 0], image[rows][:, cols], atol=1e-5)

    def check_flips_rotations_and_classes():
        rng = np.random.default_rng(0)
        image = rng.random((SIZE, SIZE)).astype(np.float32)
        labels = rng.integers(0, 5, (SIZE, SIZE)).astype(np.int32)
        batch = np.stack([image] * N)[..., None], np.stack([labels] * N), np.stack([image] * N)
        x, y, w = (np.concatenate([np.asarray(part) for part in parts]) for parts in zip(
            *[augment_batch(*batch, seed=seed, elastic=False, intensity=False) for seed in range(4)]))
        seen = set()
        for k in range(len(x)):
            found = [i for i, (a, b) in enumerate(dihedral(image)) if np.array_equal(x[k, ..., 0], a)]
            assert len(found) == 1, "not one of the 8 flips/rotations of the input"
            np.testing.assert_array_equal(y[k], dihedral(labels)[found[0]][0])
            np.testing.assert_array_equal(w[k], x[k, ..., 0])
            seen.add(found[0])
        assert len(seen) >= 4
        x, y, w = (np.asarray(a) for a in augment_batch(*batch, seed=4))
        assert set(np.unique(y)) <= set(range(5)) and 0.0 <= x.min() and x.max() <= 1.0
        assert set(np.unique(w)) <= set(np.unique(image))

    def dihedral(array):
        out = []
        for flipped in (array, np.flip(array, axis=1)):
            for k in range(4):
                out.append((np.rot90(flipped, k), k))
        return out

    def check_compiled_layer():
        image, labels, weights = smooth()
        inputs = [keras.Input((SIZE, SIZE, 1)), keras.Input((SIZE, SIZE), dtype="int32"), keras.Input((SIZE, SIZE))]
        model = keras.Model(inputs, DeviceAugment(AugmentConfig(), seed=1)(inputs))
        batch = [np.stack([image] * N)[..., None], np.stack([labels] * N), np.stack([weights] * N)]
        first, second = model.predict_on_batch(batch), model.predict_on_batch(batch)
        assert [a.shape for a in first] == [(N, SIZE, SIZE, 1), (N, SIZE, SIZE), (N, SIZE, SIZE)]
        assert set(np.unique(first[1])) <= {0, 3, 7}
        assert not np.array_equal(first[0], second[0]), "each step must draw new deformations"

    def check_label_border():
        rng = np.random.default_rng(1)
        batch = (rng.random((N, SIZE, SIZE, 1)).astype(np.float32), rng.integers(0, 5, (N, SIZE, SIZE)).astype(np.int32),
                 rng.random((N, SIZE, SIZE)).astype(np.float32))
        whole = [np.asarray(a) for a in augment_batch(*batch, seed=2)]
        centre = [np.asarray(a) for a in augment_batch(*batch, seed=2, label_border=8)]
        np.testing.assert_array_equal(centre[0], whole[0])  # the image keeps its context
        for got, full in zip(centre[1:], whole[1:]):  # labels and weights: the same draw, only the centre
            np.testing.assert_array_equal(got, full[:, 8:-8, 8:-8])

    def check_augmenting_model_trains_the_network_it_wraps():
        from unet_tutorial.augment_device import augmenting_model, network_of
        from unet_tutorial.config import TileConfig
        from unet_tutorial.model import build_unet

        tiles = TileConfig(tile_size=44, depth=2, padding="valid")  # 44 -> 28: a border of 8
        network = build_unet(input_shape=(None, None, 1), depth=2, base_filters=4, dropout=0.0)
        model = augmenting_model(network, tiles, AugmentConfig(), seed=3)
        assert network_of(model) is network and network_of(network) is network
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        image, labels, weights = smooth(44, 44)
        windows = (np.stack([image] * N)[..., None], np.stack([labels > 0] * N).astype(np.int32),
                   np.stack([weights] * N))
        before = [np.array(v) for v in network.get_weights()]
        losses = [float(model.train_on_batch(list(windows))) for _ in range(3)]
        assert all(np.isfinite(losses)) and 0 < losses[0]
        assert any(not np.array_equal(a, np.array(b)) for a, b in zip(before, network.get_weights()))
        assert model.predict_on_batch(list(windows)).shape == (N, 28, 28, 2)

    check_warp_agrees_with_the_reference()
    check_mirror_border()
    check_flips_rotations_and_classes()
    check_compiled_layer()
    check_label_border()
    check_augmenting_model_trains_the_network_it_wraps()
    print("device checks passed on", keras.backend.backend())
    """
)


def test_device_augmentation_on_the_active_backend():
    namespace = {}
    exec(compile(CHECKS, "device_checks", "exec"), namespace)  # noqa: S102 (our own script)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_device_augmentation_on_each_backend(tmp_path, backend):
    pytest.importorskip(backend)
    if backend == keras.backend.backend():
        pytest.skip("the active backend is checked in this process")
    script = tmp_path / "device_checks.py"
    script.write_text(CHECKS)
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == f"device checks passed on {backend}"


def test_bad_batches_are_rejected():
    from unet_tutorial.augment_device import augment_batch

    with pytest.raises(ValueError, match="B, H, W, C"):
        augment_batch(np.zeros((4, 4), np.float32), np.zeros((4, 4), np.int32))
    with pytest.raises(ValueError, match="at least 2 x 2"):
        augment_batch(np.zeros((1, 1, 5, 1), np.float32), np.zeros((1, 1, 5), np.int32))


def test_the_rule_of_where_to_augment():
    from unet_tutorial.augment_device import on_device
    from unet_tutorial.config import AugmentConfig
    from unet_tutorial.distribute import gpu_available

    assert on_device(AugmentConfig(method="device"))
    assert not on_device(AugmentConfig(method="opencv")) and not on_device(AugmentConfig(method="scipy"))
    assert on_device(AugmentConfig(method="auto")) == gpu_available()  # a CPU: OpenCV in the pipeline
    assert not on_device(AugmentConfig(enabled=False, method="device"))
    assert AugmentConfig(method="device").sample_options()["method"] == "auto"  # the CPU pipeline can still run it


def test_the_layers_survive_a_save_and_load(tmp_path):
    from unet_tutorial.augment_device import augmenting_model, network_of
    from unet_tutorial.config import AugmentConfig, TileConfig
    from unet_tutorial.evaluate import load_model
    from unet_tutorial.model import build_unet

    network = build_unet(input_shape=(None, None, 1), depth=2, base_filters=4, dropout=0.0)
    model = augmenting_model(network, TileConfig(tile_size=44, depth=2), AugmentConfig(elastic_sigma=4.0), seed=5)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    augment = loaded.get_layer("augment")
    assert augment.augmentation == AugmentConfig(elastic_sigma=4.0) and augment.label_border == 8
    for a, b in zip(network_of(loaded).get_weights(), network.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_added_loss_is_the_weighted_cross_entropy():
    from unet_tutorial.losses import AddWeightedCrossEntropy, WeightedCrossEntropy

    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet([1, 1, 1], (2, 5, 5)).astype(np.float32)
    labels, weights = rng.integers(0, 3, (2, 5, 5)), rng.random((2, 5, 5)).astype(np.float32)
    layer = AddWeightedCrossEntropy()
    out = layer([probabilities, labels, weights])
    np.testing.assert_allclose(np.asarray(out), probabilities)
    expected = WeightedCrossEntropy()(labels, probabilities, sample_weight=weights)
    np.testing.assert_allclose(float(layer.losses[0]), float(expected), rtol=1e-5)
