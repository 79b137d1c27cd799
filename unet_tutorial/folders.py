"""A user's own data: a folder (or glob) of images and one of masks, paired by file name, checked together.

``load_folders("data/images", "data/masks")`` finds the files, pairs each image
with the mask of the same stem (``cell_01.png`` with ``cell_01.png`` or
``cell_01.tif``), reads them (:mod:`.image_files`) and checks what only the set
can tell: every image has a mask and every mask an image, each mask has its
image's size, all images have the same number of channels, and the mask values
are classes 0..K-1. K is read from the masks (the largest class + 1) when not
given, and checked when given. Each error names the files and says what to do.
"""

from __future__ import annotations

import glob
import pathlib
from typing import NamedTuple

import numpy as np

from .image_files import IMAGE_SUFFIXES, MASK_SUFFIXES, read_image, read_mask

__all__ = ["FolderData", "find_files", "pair_files", "paired_names", "load_images", "load_folders"]


class FolderData(NamedTuple):
    """Images and masks read from folders, in the order of their names."""

    names: list[str]  # the file stems, sorted
    images: list[np.ndarray]  # (H, W, C) each, C the same for all
    masks: list[np.ndarray]  # (H, W) int32 class indices 0..n_classes-1
    n_classes: int  # K
    image_files: list[pathlib.Path]
    mask_files: list[pathlib.Path]
    notices: list[str]  # one line each, e.g. that 0/255 masks were read as 0/1


def _listed(names, limit: int = 10) -> str:
    names = sorted(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def find_files(where, suffixes=IMAGE_SUFFIXES, what: str = "images") -> list[pathlib.Path]:
    """The files of ``where`` (a folder, a glob such as ``"data/*.png"``, or one file) ending in ``suffixes``, sorted by name."""
    text = str(where)
    folder = pathlib.Path(text).expanduser()
    if folder.is_dir():
        candidates, described = list(folder.iterdir()), f"folder {folder}"
    elif folder.is_file():
        candidates, described = [folder], f"file {folder}"
    elif glob.has_magic(text):
        candidates, described = [pathlib.Path(p) for p in glob.glob(str(pathlib.Path(text).expanduser()))], f"glob {text!r}"
    else:
        raise FileNotFoundError(f"{what}: {text} is neither a folder nor a glob pattern (e.g. 'data/*.png'); check the path.")
    files = sorted((p for p in candidates if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")),
                   key=lambda p: p.name)
    if not files:
        raise FileNotFoundError(f"{what}: the {described} holds no {'/'.join(suffixes)} files. Point it at the folder "
                                f"that holds the {what} (or a glob that matches them).")
    return files


def _by_stem(files, what: str) -> dict[str, pathlib.Path]:
    result = {}
    for path in files:
        if path.stem in result:
            raise ValueError(f"{what}: {result[path.stem].name} and {path.name} have the same name {path.stem!r}; "
                             "keep one file per name.")
        result[path.stem] = path
    return result


def pair_files(image_files, mask_files) -> list[tuple[str, pathlib.Path, pathlib.Path]]:
    """(stem, image file, mask file) for each name, sorted; an error lists the images without a mask and vice versa."""
    images, masks = _by_stem(image_files, "images"), _by_stem(mask_files, "masks")
    no_mask, no_image = images.keys() - masks.keys(), masks.keys() - images.keys()
    if no_mask or no_image:
        parts = []
        if no_mask:
            parts.append(f"{len(no_mask)} image(s) without a mask: {_listed(images[n].name for n in no_mask)}")
        if no_image:
            parts.append(f"{len(no_image)} mask(s) without an image: {_listed(masks[n].name for n in no_image)}")
        raise ValueError("images and masks are paired by file name (stem), and " + "; ".join(parts) +
                         ". Give each image a mask with the same name (e.g. images/cell_01.png and masks/cell_01.png), "
                         "or move the unpaired files out of the folders.")
    return [(stem, images[stem], masks[stem]) for stem in sorted(images)]


def paired_names(images, masks) -> list[str]:
    """The sorted stems of the image/mask pairs, without reading the files (the order :func:`load_folders` uses)."""
    return [stem for stem, _, _ in pair_files(find_files(images, IMAGE_SUFFIXES, "images"),
                                              find_files(masks, MASK_SUFFIXES, "masks"))]


def _check_channels(images, files) -> None:
    counts = {}
    for image, path in zip(images, files):
        counts.setdefault(image.shape[-1], []).append(path.name)
    if len(counts) > 1:
        found = "; ".join(f"{channels} channel(s): {_listed(names, 5)}" for channels, names in sorted(counts.items()))
        raise ValueError(f"the images have different numbers of channels ({found}). A network takes one number of "
                         "channels: convert them all to grey or all to RGB.")


def load_images(where) -> tuple[list[str], list[np.ndarray], list[pathlib.Path]]:
    """(stems, images (H, W, C), files) of a folder or glob of images, all with the same number of channels."""
    files = find_files(where, IMAGE_SUFFIXES, "images")
    _by_stem(files, "images")
    images = [read_image(path) for path in files]
    _check_channels(images, files)
    return [path.stem for path in files], images, files


def load_folders(images, masks, n_classes: int | None = None) -> FolderData:
    """Read and check paired image and mask files (see the module docstring).

    Args:
        images, masks: a folder or a glob of image files (PNG, TIFF, JPEG) and of
            mask files (PNG, TIFF: index, palette or 0/255 masks).
        n_classes: K; ``None`` (or 0) reads it from the masks (largest class + 1).

    Raises:
        FileNotFoundError: no files found. ValueError: unpaired files, a file
        that cannot be read, sizes, channels or mask values that do not fit.
    """
    if n_classes is not None and n_classes != 0 and n_classes < 2:
        raise ValueError(f"n_classes must be at least 2 (background and one class), got {n_classes}.")
    pairs = pair_files(find_files(images, IMAGE_SUFFIXES, "images"), find_files(masks, MASK_SUFFIXES, "masks"))
    names, image_files, mask_files = [p[0] for p in pairs], [p[1] for p in pairs], [p[2] for p in pairs]
    pictures = [read_image(path) for path in image_files]
    _check_channels(pictures, image_files)
    labels, binary = [], []
    for picture, image_file, mask_file in zip(pictures, image_files, mask_files):
        mask, kind = read_mask(mask_file)
        if mask.shape != picture.shape[:2]:
            raise ValueError(f"{mask_file}: the mask is {mask.shape[0]}x{mask.shape[1]} (height x width) but its image "
                             f"{image_file.name} is {picture.shape[0]}x{picture.shape[1]}; a mask must have its "
                             "image's size. Export the mask again at the image's size (never resize class indices "
                             "with smoothing).")
        if kind == "binary":
            binary.append(mask_file.name)
        labels.append(mask)
    largest = max(int(mask.max()) for mask in labels)
    if n_classes:
        for mask, mask_file in zip(labels, mask_files):
            if mask.min() < 0 or mask.max() >= n_classes:
                found = np.unique(mask)
                outside = found[(found < 0) | (found >= n_classes)]
                raise ValueError(f"{mask_file}: holds values {_listed(map(str, outside.tolist()))} outside the classes "
                                 f"0..{n_classes - 1} (n_classes={n_classes}). Give the right --n-classes, or map "
                                 "these values to class indices 0..K-1.")
    else:
        smallest = min(int(mask.min()) for mask in labels)
        if smallest < 0:
            bad = next(f for f, m in zip(mask_files, labels) if m.min() < 0)
            raise ValueError(f"{bad}: holds negative values; classes are 0..K-1.")
        if largest == 0:
            raise ValueError(f"every mask in {masks} holds only class 0 (background): there is nothing to learn. "
                             "Check that the masks hold class indices 1..K-1 for the objects.")
        n_classes = largest + 1
    notices = []
    if binary:
        notices.append(f"note: {len(binary)} mask(s) hold only 0 and 255 ({_listed(binary, 3)}); 255 is read as class 1.")
    return FolderData(names, pictures, labels, int(n_classes), image_files, mask_files, notices)

