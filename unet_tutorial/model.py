"""The U-Net of Ronneberger, Fischer and Brox (MICCAI 2015), in Keras 3.

With its defaults, ``build_unet()`` is the network of the paper's Fig. 1:

* a 572x572x1 input tile and a 388x388x2 output (class probabilities);
* contracting path: per level two unpadded 3x3 convolutions with ReLU, then
  2x2 max pooling with stride 2; the number of feature channels doubles at
  every level (64, 128, 256, 512, 1024);
* expansive path: a 2x2 up-convolution that halves the channels, concatenation
  with the centre-cropped feature map of the same level ("copy and crop"), two
  3x3 convolutions with ReLU;
* dropout at the end of the contracting path (Sec. 3.1) and He-normal
  initialisation (Sec. 3: "a Gaussian distribution with a standard deviation of
  sqrt(2/N)");
* a final 1x1 convolution to the class channels, with softmax (Sec. 3, Eq. 1).

That network has 31,030,658 trainable parameters. Departures are options only:
``padding="same"`` (output as big as the input, no cropping), ``batch_norm=True``
(not in the paper, which predates common use of batch normalisation in U-Nets).

Only ``keras`` and ``keras.ops`` are used, so the same code runs on TensorFlow
and on JAX.
"""

from __future__ import annotations

import numbers

import keras
from keras import layers, ops

from . import shapes


@keras.saving.register_keras_serializable(package="unet_tutorial")
class CropAndConcat(layers.Layer):
    """Centre-crop the skip connection to the up-sampled map, then concatenate.

    The paper's "copy and crop" (grey arrows in Fig. 1): with valid convolutions
    the feature map from the contracting path is larger than the up-sampled one,
    so its centre is cut out before the two are stacked along the channels.
    Call it as ``CropAndConcat()([skip, upsampled])``.
    """

    def call(self, inputs):
        skip, upsampled = inputs
        skip_height, skip_width = ops.shape(skip)[1], ops.shape(skip)[2]
        height, width = ops.shape(upsampled)[1], ops.shape(upsampled)[2]
        top = (skip_height - height) // 2
        left = (skip_width - width) // 2
        cropped = skip[:, top : top + height, left : left + width, :]  # (B, h, w, C_skip)
        return ops.concatenate([cropped, upsampled], axis=-1)  # (B, h, w, C_skip + C_up)

    def compute_output_shape(self, input_shapes):
        skip_shape, upsampled_shape = input_shapes
        channels = None
        if skip_shape[-1] is not None and upsampled_shape[-1] is not None:
            channels = skip_shape[-1] + upsampled_shape[-1]
        return (*upsampled_shape[:-1], channels)


@keras.saving.register_keras_serializable(package="unet_tutorial")
class InputSizeCheck(layers.Layer):
    """Pass the input through unchanged, but refuse sizes the network cannot take.

    Without this check a wrong size fails deep inside the network (or, worse,
    with padding="same", silently gives a shifted output). The message names the
    nearest valid sizes (see ``unet_tutorial.shapes``).
    """

    def __init__(self, depth: int = 5, padding: str = "valid", **kwargs):
        super().__init__(**kwargs)
        self.depth = depth
        self.padding = padding

    def _check(self, shape):
        for size in shape[1:3]:
            if isinstance(size, int):
                shapes.check_input_size(size, depth=self.depth, padding=self.padding)

    def build(self, input_shape):
        self._check(input_shape)

    def call(self, inputs):
        self._check(tuple(inputs.shape))
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "depth": self.depth, "padding": self.padding}


def conv_block(x, filters: int, name: str, padding: str = "valid", batch_norm: bool = False):
    """Two 3x3 convolutions, each followed by ReLU (and batch norm if asked).

    With padding="valid" each convolution trims one pixel per side:
    (B, H, W, C) -> (B, H-4, W-4, filters).
    """
    for i in (1, 2):
        x = layers.Conv2D(
            filters,
            3,
            padding=padding,
            use_bias=not batch_norm,  # batch norm has its own offset
            kernel_initializer="he_normal",
            name=f"{name}_conv{i}",
        )(x)  # (B, H-2i, W-2i, filters) with "valid"; (B, H, W, filters) with "same"
        if batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def contracting_block(x, filters: int, name: str, padding="valid", batch_norm=False, dropout=0.0):
    """One level of the contracting path.

    Returns (skip, pooled): the features kept for the copy-and-crop connection,
    and the 2x2 max-pooled map that goes one level down.
    """
    x = conv_block(x, filters, name, padding, batch_norm)  # (B, H-4, W-4, filters)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    pooled = layers.MaxPooling2D(2, name=f"{name}_pool")(x)  # (B, (H-4)/2, (W-4)/2, filters)
    return x, pooled


UPCONV_INITS = ("he_normal", "paper")


def upconv_initializer(upconv_init: str, channels_in: int):
    """The up-convolution's initial weights.

    ``"paper"``: Gaussian with std sqrt(2/N), N the inputs of one neuron (Sec. 3).
    A 2x2 up-convolution with stride 2 feeds each output pixel from one input
    pixel, so N = C_in. ``"he_normal"``: Keras' He initialiser, which for a
    transposed kernel (2, 2, C_out, C_in) takes its fan-in as 4 C_out = 2 C_in,
    i.e. std sqrt(1/C_in) (truncated): half the paper's variance.
    """
    if upconv_init == "paper":
        return keras.initializers.RandomNormal(stddev=(2.0 / channels_in) ** 0.5)
    return "he_normal"


def expansive_block(x, skip, filters: int, name: str, padding="valid", batch_norm=False, upconv_init="he_normal"):
    """One level of the expansive path: up-convolution, copy and crop, two convs.

    The 2x2 up-convolution doubles the size and halves the channels:
    (B, h, w, 2*filters) -> (B, 2h, 2w, filters).
    """
    x = layers.Conv2DTranspose(
        filters, 2, strides=2, kernel_initializer=upconv_initializer(upconv_init, x.shape[-1]), name=f"{name}_upconv"
    )(x)  # (B, 2h, 2w, filters)
    x = CropAndConcat(name=f"{name}_concat")([skip, x])  # (B, 2h, 2w, 2*filters)
    return conv_block(x, filters, name, padding, batch_norm)  # (B, 2h-4, 2w-4, filters)


def _is_whole_number(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_build_arguments(input_shape, n_classes, base_filters, depth, padding, dropout) -> None:
    """Refuse, before any layer is made, arguments that would fail deep inside Keras or build a useless network."""
    shapes.check_depth_and_padding(depth, padding)
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(
            f"input_shape must be (height, width, channels), got {input_shape!r}; "
            "for a grey image use (572, 572, 1)."
        )
    height, width, channels = input_shape
    for axis, size in (("height", height), ("width", width)):
        if size is not None and not _is_whole_number(size):
            raise ValueError(f"input_shape {axis} must be a whole number or None (any valid size), got {size!r}.")
    if not _is_whole_number(channels) or channels < 1:
        raise ValueError(f"input_shape channels must be known and >= 1, got {channels!r} in {input_shape!r}.")
    if not _is_whole_number(n_classes) or n_classes < 2:
        raise ValueError(
            f"n_classes must be a whole number >= 2, got {n_classes!r}: the output is a softmax over the "
            "classes, which is always 1 for a single class; a foreground/background mask has 2 classes."
        )
    if not _is_whole_number(base_filters) or base_filters < 1:
        raise ValueError(f"base_filters must be a whole number >= 1 (the paper uses 64), got {base_filters!r}.")
    if not isinstance(dropout, numbers.Real) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a number in [0, 1) (0 disables it; the paper uses 0.5), got {dropout!r}.")
    for size in (height, width):
        if size is not None:
            shapes.check_input_size(size, depth=depth, padding=padding)


def build_unet(
    input_shape=(572, 572, 1),
    n_classes: int = 2,
    base_filters: int = 64,
    depth: int = 5,
    padding: str = "valid",
    dropout: float = 0.5,
    batch_norm: bool = False,
    name: str = "unet",
    upconv_init: str = "he_normal",
) -> keras.Model:
    """Build U-Net with the functional API; the defaults give the paper's network.

    Args:
        input_shape: (height, width, channels). Height and width may be None
            (any valid size, checked when the model is called).
        n_classes: number of output channels (classes, at least 2), softmax over them.
        base_filters: channels of the first level; doubled at every level down.
        depth: levels of the U including the bottom one (the paper: 5).
        padding: "valid" (the paper: unpadded convolutions, output smaller than
            the input) or "same" (output as big as the input).
        dropout: dropout rate at the end of the contracting path (0 disables it).
        batch_norm: add batch normalisation after each convolution (not in the paper).
        upconv_init: ``"he_normal"`` (Keras' He initialiser, as every other
            convolution) or ``"paper"`` (std sqrt(2/N) with N = C_in, the paper's
            rule for the up-convolutions; see :func:`upconv_initializer`).

    Returns:
        A ``keras.Model`` mapping (B, H, W, C) to class probabilities
        (B, h, w, n_classes) with h = ``shapes.output_size(H, depth, padding)``.

    Raises:
        ValueError: naming the argument, its value and what is allowed, for a
            size that does not fit (with the nearest valid sizes), depth < 1,
            base_filters < 1, n_classes < 2, dropout outside [0, 1), a padding
            other than "valid"/"same", or an input_shape that is not
            (height, width, channels) with known channels.

    The shape comments below are those of the paper's network (572x572x1 in,
    base_filters 64, depth 5, "valid"); B is the batch size.
    """
    _check_build_arguments(input_shape, n_classes, base_filters, depth, padding, dropout)
    if upconv_init not in UPCONV_INITS:
        raise ValueError(f"upconv_init must be one of {UPCONV_INITS}, got {upconv_init!r}.")

    inputs = keras.Input(shape=tuple(input_shape), name="image")  # (B, 572, 572, 1)
    x = InputSizeCheck(depth=depth, padding=padding, name="input_size_check")(inputs)

    # Contracting path: two 3x3 convs (-4 pixels), keep as skip, 2x2 max pool (halves).
    #   level 1: skip (B, 568, 568, 64)  -> x (B, 284, 284, 64)
    #   level 2: skip (B, 280, 280, 128) -> x (B, 140, 140, 128)
    #   level 3: skip (B, 136, 136, 256) -> x (B, 68, 68, 256)
    #   level 4: skip (B, 64, 64, 512)   -> x (B, 32, 32, 512)
    skips = []
    for level in range(1, depth):
        # Dropout on the deepest contracting level (and at the bottom, below):
        # "drop-out layers at the end of the contracting path" (Sec. 3.1).
        level_dropout = dropout if level == depth - 1 else 0.0
        skip, x = contracting_block(
            x, base_filters * 2 ** (level - 1), f"contract{level}", padding, batch_norm, level_dropout
        )
        skips.append(skip)

    # Bottom of the U: two 3x3 convs, no pooling.
    x = conv_block(x, base_filters * 2 ** (depth - 1), "bottleneck", padding, batch_norm)  # (B, 28, 28, 1024)
    if dropout:
        x = layers.Dropout(dropout, name="bottleneck_dropout")(x)

    # Expansive path: 2x2 up-conv (doubles, halves channels), crop skip and concat, two 3x3 convs.
    #   level 4: up (B, 56, 56, 512)   + skip (B, 64, 64, 512) cropped   -> (B, 56, 56, 1024)   -> (B, 52, 52, 512)
    #   level 3: up (B, 104, 104, 256) + skip (B, 136, 136, 256) cropped -> (B, 104, 104, 512) -> (B, 100, 100, 256)
    #   level 2: up (B, 200, 200, 128) + skip (B, 280, 280, 128) cropped -> (B, 200, 200, 256) -> (B, 196, 196, 128)
    #   level 1: up (B, 392, 392, 64)  + skip (B, 568, 568, 64) cropped  -> (B, 392, 392, 128) -> (B, 388, 388, 64)
    for level in range(depth - 1, 0, -1):
        x = expansive_block(x, skips[level - 1], base_filters * 2 ** (level - 1), f"expand{level}", padding, batch_norm,
                            upconv_init)

    x = layers.Conv2D(n_classes, 1, kernel_initializer="he_normal", name="output_conv")(x)  # (B, 388, 388, 2)
    # float32 softmax even under a mixed-precision policy: probabilities stay exact.
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)  # (B, 388, 388, 2)
    return keras.Model(inputs, outputs, name=name)
