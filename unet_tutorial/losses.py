"""The loss of U-Net: the paper's pixel-weighted cross-entropy.

Ronneberger et al. 2015, Sec. 3, Eq. 1: "The energy function is computed by a
pixel-wise soft-max over the final feature map combined with the cross entropy
loss function", each pixel weighted by the weight map ``w(x)`` of Eq. 2
(``unet_tutorial.weights.weight_map``)::

    E = sum_x w(x) * log(p_{l(x)}(x))        (paper, with the sign of a log-likelihood)

Here the loss is the mean over pixels of ``-w(x) * log p_{l(x)}(x)`` (the paper
sums; the mean keeps the value independent of the tile size). The model already
ends in a softmax (``build_unet``), so these functions take probabilities, not
logits; ``log(0)`` is avoided by clipping the probabilities to
``[epsilon, 1]`` with ``epsilon = keras.config.epsilon()`` (1e-7), so a
confidently wrong pixel costs at most ``-log(1e-7) ~ 16.1`` times its weight and
never gives inf or NaN.

Only ``keras.ops`` is used: the same code runs on TensorFlow and JAX.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["AddWeightedCrossEntropy", "WeightedCrossEntropy", "pixel_cross_entropy", "weighted_cross_entropy"]


def _labels_and_probabilities(labels, probabilities):
    """Cast labels to int32 class indices (B, h, w) and probabilities to float32 (B, h, w, K)."""
    probabilities = ops.cast(ops.convert_to_tensor(probabilities), "float32")
    labels = ops.convert_to_tensor(labels)
    if len(labels.shape) == len(probabilities.shape):  # (B, h, w, 1) -> (B, h, w)
        labels = ops.squeeze(labels, axis=-1)
    if len(labels.shape) != len(probabilities.shape) - 1:
        raise ValueError(
            f"labels must be class indices of shape (B, h, w) for probabilities of shape "
            f"(B, h, w, n_classes); got labels {tuple(labels.shape)} and probabilities "
            f"{tuple(probabilities.shape)}."
        )
    return ops.cast(labels, "int32"), probabilities


def pixel_cross_entropy(labels, probabilities):
    """Per-pixel cross-entropy ``-log p_{l(x)}(x)`` (Ronneberger et al. 2015, Eq. 1).

    Args:
        labels: (B, h, w) (or (B, h, w, 1)) integer class indices (floats holding
            whole numbers are accepted, as Keras passes ``y_true`` as float).
        probabilities: (B, h, w, K) softmax output.

    Returns:
        (B, h, w) float32 tensor of per-pixel losses.
    """
    labels, probabilities = _labels_and_probabilities(labels, probabilities)
    n_classes = probabilities.shape[-1]
    epsilon = keras.config.epsilon()
    # Probability of the true class: sum over classes of one_hot * p.
    one_hot = ops.one_hot(labels, n_classes, dtype="float32")  # (B, h, w, K)
    true_class_probability = ops.sum(one_hot * probabilities, axis=-1)  # (B, h, w)
    return -ops.log(ops.clip(true_class_probability, epsilon, 1.0))


def weighted_cross_entropy(labels, probabilities, weights=None):
    """Pixel-weighted cross-entropy: mean over pixels of ``w(x) * -log p_{l(x)}(x)``.

    Args:
        labels: (B, h, w) integer class indices.
        probabilities: (B, h, w, K) softmax probabilities.
        weights: (B, h, w) weight map (``weights.weight_map``), or None for 1.

    Returns:
        Scalar float32 tensor. With all weights 1 this is the plain mean
        sparse categorical cross-entropy.
    """
    losses = pixel_cross_entropy(labels, probabilities)
    if weights is not None:
        weights = ops.cast(ops.convert_to_tensor(weights), "float32")
        if tuple(weights.shape) != tuple(losses.shape):
            raise ValueError(
                f"weights must have the labels' shape {tuple(losses.shape)} (B, h, w), got "
                f"{tuple(weights.shape)}."
            )
        losses = losses * weights
    return ops.mean(losses)


@keras.saving.register_keras_serializable(package="unet_tutorial")
class WeightedCrossEntropy(keras.losses.Loss):
    """The paper's pixel-weighted cross-entropy as a Keras loss, for ``model.compile``.

    ``call`` returns the per-pixel cross-entropy (B, h, w). The weight map comes
    as Keras ``sample_weight`` with the same shape (B, h, w), i.e. the third
    element of ``(x, y, w)`` batches given to ``fit``: Keras 3 multiplies the
    per-pixel losses by it element-wise and, with the default reduction
    ``"sum_over_batch_size"``, divides the sum by B*h*w. So
    ``WeightedCrossEntropy()(y, p, sample_weight=w) ==
    weighted_cross_entropy(y, p, w)``. Without a sample weight every pixel has
    weight 1.
    """

    def __init__(self, name="weighted_cross_entropy", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return pixel_cross_entropy(y_true, y_pred)


@keras.saving.register_keras_serializable(package="unet_tutorial")
class AddWeightedCrossEntropy(keras.layers.Layer):
    """A layer that adds ``weighted_cross_entropy(labels, probabilities, weights)`` to its model's losses.

    ``[probabilities, labels, weights]`` -> ``probabilities`` (unchanged). For
    a model whose labels and weights are made inside it, where ``compile``'s
    loss cannot see them (``augment_device.augmenting_model``): compile that
    model without a loss. The same value as :class:`WeightedCrossEntropy`
    with the weights as ``sample_weight``.
    """

    def call(self, inputs):
        probabilities, labels, weights = inputs
        self.add_loss(weighted_cross_entropy(labels, probabilities, weights))
        return probabilities

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs[0].shape, inputs[0].dtype)
