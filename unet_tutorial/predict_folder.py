"""Predict a folder of images and write what a user looks at: class masks, colours, probabilities, overlays.

For each image ``NAME`` (any size, by overlap-tile: ``tiling.predict_tiled``)
:func:`predict_folder` writes, atomically (``files.write_atomic``):

* ``NAME_mask.png``: the most probable class of each pixel, as index values
  0..K-1 (uint8). Most viewers show it nearly black (values 0, 1, 2 out of 255):
  the colours are in the next file;
* ``NAME_colour.png``: the same mask in colour (class 0 black, then :func:`class_colours`);
* ``NAME_probabilities.tif``: the probabilities, float32, one page per class (K, H, W);
* ``NAME_overlay.png``: the coloured classes over the image (class 0 left clear).
"""

from __future__ import annotations

import pathlib

import numpy as np

from .image_files import write_png, write_tiff

__all__ = ["OUTPUT_KINDS", "class_colours", "colour_mask", "overlay", "prediction_tile_size", "predict_folder"]

OUTPUT_KINDS = ("mask.png", "colour.png", "probabilities.tif", "overlay.png")  # NAME_<kind> per image
LARGEST_TILE = 572  # the paper's tile: larger images are cut into tiles of about this size


def class_colours(n_classes: int) -> np.ndarray:
    """(K, 3) uint8 colours: class 0 black, the others matplotlib's ``tab10`` (``tab20`` beyond 10 classes)."""
    from matplotlib import colormaps

    table = colormaps["tab10" if n_classes <= 11 else "tab20"].colors
    colours = [(0.0, 0.0, 0.0)] + [table[(c - 1) % len(table)] for c in range(1, n_classes)]
    return np.round(np.asarray(colours) * 255).astype(np.uint8)


def colour_mask(mask, n_classes: int) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8 colours."""
    return class_colours(n_classes)[np.asarray(mask)]


def overlay(image, mask, n_classes: int, opacity: float = 0.45) -> np.ndarray:
    """(H, W, 3) uint8: the class colours blended over the image where the class is not 0."""
    from .tiling import as_float_image

    picture = as_float_image(image)
    picture = np.repeat(picture, 3, axis=-1) if picture.shape[-1] == 1 else picture[..., :3]
    colours = colour_mask(mask, n_classes) / 255.0
    alpha = np.where(np.asarray(mask)[..., None] > 0, opacity, 0.0)
    return np.round(255 * ((1 - alpha) * picture + alpha * colours)).astype(np.uint8)


def prediction_tile_size(model, image_shape) -> int:
    """The input tile for an image: one tile covering it, or tiles of about the paper's 572 for larger images."""
    from .config import TileConfig
    from .shapes import nearest_valid_input
    from .tiling import _unet_depth_and_padding

    if model.input_shape[1] is not None:  # a model built for one tile size
        return int(model.input_shape[1])
    depth, padding = _unet_depth_and_padding(model)
    whole = TileConfig.whole_image(image_shape, depth, padding).tile_size
    return min(whole, nearest_valid_input(LARGEST_TILE, depth, padding)[1])


def predict_folder(model, images, output, *, tile_size: int | None = None, tta: bool = False, batch_size: int = 4,
                   progress: bool = False) -> list[dict[str, pathlib.Path]]:
    """Predict every image of ``images`` (a folder or glob) and write the four files per image into ``output``.

    All images are read and checked before anything is written (``folders.load_images``),
    so a bad file stops the run without leaving some of the outputs behind.

    Returns:
        For each image, ``{kind: path}`` of the files written (kinds: :data:`OUTPUT_KINDS`).
    """
    from .folders import load_images
    from .tiling import predict_tiled

    names, pictures, files = load_images(images)
    channels = model.input_shape[-1]
    if pictures[0].shape[-1] != channels:
        raise ValueError(f"the model takes {channels} channel(s) but {files[0]} has {pictures[0].shape[-1]}; "
                         "give images like those it was trained on (grey or RGB).")
    output = pathlib.Path(output)
    n_classes = int(model.output_shape[-1])
    written = []
    steps = zip(names, pictures)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(list(steps), desc="predicting", unit="image")
    for name, picture in steps:
        tile = tile_size or prediction_tile_size(model, picture.shape)
        probabilities = predict_tiled(model, picture, tile_size=tile, batch_size=batch_size, tta=tta)
        mask = probabilities.argmax(-1).astype(np.uint8)
        paths = {kind: output / f"{name}_{kind}" for kind in OUTPUT_KINDS}
        write_png(paths["mask.png"], mask)
        write_png(paths["colour.png"], colour_mask(mask, n_classes))
        write_tiff(paths["probabilities.tif"], np.moveaxis(probabilities, -1, 0))
        write_png(paths["overlay.png"], overlay(picture, mask, n_classes))
        written.append(paths)
    return written
