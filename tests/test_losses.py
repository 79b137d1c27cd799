"""Tests for the pixel-weighted cross-entropy (paper Eq. 1)."""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from unet_tutorial.losses import WeightedCrossEntropy, pixel_cross_entropy, weighted_cross_entropy


def _random_batch(seed=0, shape=(2, 5, 6), n_classes=3):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=shape + (n_classes,))
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = rng.integers(0, n_classes, size=shape)
    weights = rng.uniform(0.5, 12.0, size=shape)
    return labels.astype(np.int32), probabilities.astype(np.float32), weights.astype(np.float32)


def test_unit_weights_equal_plain_cross_entropy():
    labels, probabilities, _ = _random_batch()
    plain = float(np.mean(keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(labels, probabilities))))
    ones = np.ones(labels.shape, np.float32)
    assert float(weighted_cross_entropy(labels, probabilities)) == pytest.approx(plain, rel=1e-5)
    assert float(weighted_cross_entropy(labels, probabilities, ones)) == pytest.approx(plain, rel=1e-5)


def test_two_by_two_hand_computation():
    labels = np.array([[[0, 1], [1, 0]]])
    probabilities = np.array([[[[0.9, 0.1], [0.2, 0.8]], [[0.6, 0.4], [0.3, 0.7]]]], np.float32)
    weights = np.array([[[1.0, 2.0], [10.0, 0.5]]], np.float32)
    expected = (
        1.0 * -math.log(0.9) + 2.0 * -math.log(0.8) + 10.0 * -math.log(0.4) + 0.5 * -math.log(0.3)
    ) / 4
    assert float(weighted_cross_entropy(labels, probabilities, weights)) == pytest.approx(expected, rel=1e-6)
    per_pixel = keras.ops.convert_to_numpy(pixel_cross_entropy(labels, probabilities))
    np.testing.assert_allclose(per_pixel, -np.log([[[0.9, 0.8], [0.4, 0.3]]]), rtol=1e-6)


def test_confident_wrong_prediction_is_finite():
    labels = np.array([[[0, 1]]])
    probabilities = np.array([[[[0.0, 1.0], [1.0, 0.0]]]], np.float32)  # p(true class) = 0
    value = float(weighted_cross_entropy(labels, probabilities, np.full((1, 1, 2), 10.0, np.float32)))
    assert np.isfinite(value)
    epsilon = keras.config.epsilon()
    assert value == pytest.approx(10.0 * -math.log(epsilon), rel=1e-4)


def _gradient(function, x):
    """d function / d x with the running Keras backend's own autodiff (TensorFlow, JAX or PyTorch)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax  # noqa: PLC0415

        return np.asarray(jax.grad(function)(x))
    if backend == "tensorflow":
        import tensorflow as tf  # noqa: PLC0415

        variable = tf.Variable(x)
        with tf.GradientTape() as tape:
            value = function(variable)
        return tape.gradient(value, variable).numpy()
    if backend == "torch":
        import torch  # noqa: PLC0415

        tensor = torch.tensor(x, requires_grad=True)
        function(tensor).backward()
        return tensor.grad.numpy()
    pytest.skip(f"no gradient for the {backend} backend")


def test_gradient_is_finite_for_zero_probability():
    labels = np.array([[[0, 1]]])
    probabilities = np.array([[[[0.0, 1.0], [0.5, 0.5]]]], np.float32)
    gradient = _gradient(lambda p: weighted_cross_entropy(labels, p), probabilities)
    assert np.isfinite(gradient).all()
    # where the probability is not clipped the gradient is the analytic -1 / (n_pixels * p_true)
    assert gradient[0, 0, 1, 1] == pytest.approx(-1 / (2 * 0.5), rel=1e-5)


def test_loss_class_applies_sample_weight_per_pixel():
    labels, probabilities, weights = _random_batch(seed=1)
    expected = float(weighted_cross_entropy(labels, probabilities, weights))
    loss = WeightedCrossEntropy()
    assert float(loss(labels, probabilities, sample_weight=weights)) == pytest.approx(expected, rel=1e-5)
    # y_true arrives as float from Keras; it must still index the classes.
    assert float(loss(labels.astype(np.float32), probabilities, sample_weight=weights)) == pytest.approx(
        expected, rel=1e-5
    )
    # Weights really act per pixel: doubling the weight of one pixel changes the loss by its term.
    doubled = weights.copy()
    doubled[0, 0, 0] *= 2
    per_pixel = keras.ops.convert_to_numpy(pixel_cross_entropy(labels, probabilities))
    change = float(loss(labels, probabilities, sample_weight=doubled)) - expected
    assert change == pytest.approx(weights[0, 0, 0] * per_pixel[0, 0, 0] / labels.size, rel=1e-3)


def test_loss_in_compiled_model_uses_weight_map_from_evaluate():
    """Keras 3 passes (B, h, w) sample weights from (x, y, w) data to the loss per pixel."""
    labels, _, weights = _random_batch(seed=2, shape=(4, 6, 6), n_classes=2)
    x = np.random.default_rng(3).random((4, 6, 6, 1)).astype(np.float32)
    inputs = keras.Input((6, 6, 1))
    outputs = keras.layers.Conv2D(2, 1, activation="softmax")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss=WeightedCrossEntropy())
    probabilities = model.predict(x, verbose=0)
    expected = float(weighted_cross_entropy(labels, probabilities, weights))
    unweighted = float(weighted_cross_entropy(labels, probabilities))
    result = model.evaluate(x, labels, sample_weight=weights, batch_size=4, verbose=0)
    assert result == pytest.approx(expected, rel=1e-4)
    assert result != pytest.approx(unweighted, rel=1e-2)
    history = model.fit(x, labels, sample_weight=weights, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_loss_class_round_trips_through_config():
    assert isinstance(keras.losses.deserialize(keras.losses.serialize(WeightedCrossEntropy())), WeightedCrossEntropy)


def test_bad_shapes_are_rejected():
    labels, probabilities, weights = _random_batch()
    with pytest.raises(ValueError, match="got"):
        weighted_cross_entropy(labels, probabilities, weights[:, :3])
    with pytest.raises(ValueError, match="got"):
        weighted_cross_entropy(labels[0, 0], probabilities)


def _losses_in_subprocess(backend, labels, probabilities, weights):
    code = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        from unet_tutorial.losses import weighted_cross_entropy, WeightedCrossEntropy
        data = json.load(sys.stdin)
        y = np.array(data["labels"], np.int32)
        p = np.array(data["probabilities"], np.float32)
        w = np.array(data["weights"], np.float32)
        print(json.dumps({
            "wce": float(weighted_cross_entropy(y, p, w)),
            "cls": float(WeightedCrossEntropy()(y, p, sample_weight=w)),
        }))
        """
    )
    repo_root = Path(__file__).resolve().parents[1]
    environment = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo_root), os.environ.get("PYTHONPATH")]))
    payload = json.dumps({"labels": labels.tolist(), "probabilities": probabilities.tolist(), "weights": weights.tolist()})
    result = subprocess.run(
        [sys.executable, "-c", code], input=payload, capture_output=True, text=True, env=environment, cwd=repo_root, timeout=120
    )
    if result.returncode != 0:
        raise AssertionError(f"{backend} subprocess failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_same_value_on_tensorflow_and_jax():
    pytest.importorskip("jax")
    labels, probabilities, weights = _random_batch(seed=4)
    probabilities[0, 0, 0] = [0.0, 1.0, 0.0]  # a zero probability for the true class somewhere
    labels[0, 0, 0] = 0
    on_jax = _losses_in_subprocess("jax", labels, probabilities, weights)
    on_tf = _losses_in_subprocess("tensorflow", labels, probabilities, weights)
    for key in on_jax:
        assert np.isfinite(on_jax[key])
        assert on_jax[key] == pytest.approx(on_tf[key], rel=1e-5), key
    assert on_jax["wce"] == pytest.approx(float(weighted_cross_entropy(labels, probabilities, weights)), rel=1e-5)
