"""How the command line and a run's ``state.json`` fill a :class:`config.TrainConfig`.

``train``'s options are one ``--field value`` per TrainConfig field, read with
the field's type (``parse_bool`` for true/false); ``reproduce`` reads its
``FIELD=VALUE`` overrides the same way (:func:`config_from_overrides`); a resumed
run takes its config from ``state.json`` (:func:`read_state`). Like
:mod:`.config`, this module imports neither Keras nor TensorFlow, so
``python -m unet_tutorial train --help`` starts fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import typing

from .config import FOLDERS_DATASET, PRESETS, TrainConfig

__all__ = ["read_state", "parse_bool", "add_config_arguments", "add_train_arguments", "config_from_args",
           "config_from_overrides"]


# ----------------------------------------------------------------------------- the saved state of a run


def read_state(output_dir) -> dict:
    """``state.json`` of a run (written by ``train`` after every epoch); a clear error when missing or corrupt."""
    output_dir = pathlib.Path(output_dir)
    path = output_dir / "state.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"cannot resume: no checkpoint in {output_dir} ({path.name} not found). Start the run "
            "without --resume, or point --output at the folder of the interrupted run."
        )
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        checkpoint = output_dir / state["checkpoint"]
        int(state["epoch"])
        dict(state["config"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"cannot resume: {path} is corrupt ({error}). Delete the folder to start afresh.") from error
    if not checkpoint.is_file():
        raise FileNotFoundError(f"cannot resume: {path} names {checkpoint.name}, which is missing from {output_dir}.")
    return state


# ----------------------------------------------------------------------------- command line


def parse_bool(text: str) -> bool:
    """``true/false``, ``yes/no``, ``on/off``, ``1/0`` (any case), as the command line writes booleans."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _field_type(kind):
    return parse_bool if kind is bool else kind


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--field value`` option per TrainConfig field (``--output`` for ``output_dir``)."""
    group = parser.add_argument_group("config fields (override the preset)")
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        kind = hints[field.name]
        flags = [f"--{field.name.replace('_', '-')}"] + (["--output"] if field.name == "output_dir" else [])
        group.add_argument(
            *flags, dest=field.name, default=argparse.SUPPRESS, metavar=kind.__name__.upper(),
            type=_field_type(kind), help=f"default {field.default!r}",
        )


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """``--preset NAME``, ``--resume``, ``--data-dir``, ``--output`` and one ``--field value`` per TrainConfig field."""
    parser.allow_abbrev = False  # --learning would otherwise silently mean --learning-rate
    parser.epilog = ("Your own data: --images DIR_OR_GLOB --masks DIR_OR_GLOB [--n-classes K] trains on image files "
                     "(PNG, TIFF, JPEG; grey or RGB) and masks of the same file names (PNG, TIFF: class indices "
                     "0..K-1, palette PNGs or 0/255), e.g. --preset cpu-tiny --images data/images --masks data/masks.")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="start from a named preset (default: paper)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    parser.add_argument("--data-dir", default=None, help="folder laid out like ../shared/data (default: datasets.data_dir())")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    add_config_arguments(parser)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig that ``--preset`` and the ``--field value`` options describe.

    With ``--resume`` and no ``--preset``, the saved run's config from
    ``state.json`` in ``--output``, with the given fields replaced.
    """
    names = {field.name for field in dataclasses.fields(TrainConfig)}
    overrides = {name: value for name, value in vars(args).items() if name in names}
    if overrides.get("images") and "dataset" not in overrides:
        overrides["dataset"] = FOLDERS_DATASET  # --images DIR --masks DIR: your own data
    if getattr(args, "resume", False) and getattr(args, "preset", None) is None:
        output_dir = pathlib.Path(overrides.get("output_dir", PRESETS["paper"].output_dir))
        saved = read_state(output_dir)["config"]
        return TrainConfig(**{**saved, **overrides})
    return TrainConfig.preset(getattr(args, "preset", None) or "paper", **overrides)


def config_from_overrides(preset: str, items=(), *, reserved=()) -> tuple[TrainConfig, dict]:
    """(config, overrides) from ``["learning_rate=0.02", "elastic=false", ...]``, read as ``train``'s options are.

    ``reserved`` names fields the caller sets itself and that ``items`` may not
    change. Raises ValueError naming the item when a field is unknown, reserved
    or its value cannot be read.
    """
    hints = typing.get_type_hints(TrainConfig)
    overrides = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise ValueError(f"takes FIELD=VALUE, got {item!r}.")
        if key not in hints:
            fields = ", ".join(field.name for field in dataclasses.fields(TrainConfig))
            raise ValueError(f"unknown TrainConfig field {key!r} in {item!r}; fields: {fields}.")
        if key in reserved:
            raise ValueError(f"{key} is set by the run itself and cannot be changed ({item!r}).")
        kind = hints[key]
        try:  # the same reading as train's --field value options
            overrides[key] = _field_type(kind)(text)
        except (ValueError, argparse.ArgumentTypeError) as error:
            raise ValueError(f"cannot read {text!r} as {kind.__name__} for {key} ({error}).") from None
    return TrainConfig.preset(preset, **overrides), overrides
