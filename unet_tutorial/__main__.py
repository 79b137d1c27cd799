"""Command line: ``python -m unet_tutorial {fetch,train,evaluate,predict,bench,reproduce}``.

Each sub-command lives in the module that does the work; this file only wires
them together. A sub-command ``NAME`` has its options in one module
(``add_NAME_arguments(parser)``, which imports no Keras) and its work in
another (``run_NAME(args) -> int``). Only the modules of the sub-command that
runs are imported, so ``--help`` and ``fetch`` start in well under a second.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# sub-command -> (module with its options, module that runs it, one-line help)
SUBCOMMANDS = {
    "fetch": ("unet_tutorial.datasets", "unet_tutorial.datasets", "download a dataset (or check a local mirror)"),
    "train": ("unet_tutorial.config_cli", "unet_tutorial.train",
              "train a U-Net from a preset config, on a dataset or your own folders of images and masks"),
    "evaluate": ("unet_tutorial.evaluate", "unet_tutorial.evaluate",
                 "score a model with the paper's metrics (Tables 1 and 2)"),
    "predict": ("unet_tutorial.evaluate", "unet_tutorial.evaluate",
                "predict probability maps with overlap-tile (a dataset to .npz/.tif, or your own images to PNGs)"),
    "bench": ("unet_tutorial.bench", "unet_tutorial.bench", "measure training, inference and input-pipeline speed"),
    "reproduce": ("unet_tutorial.reproduce_plan", "unet_tutorial.reproduce",
                  "chapter 7's run: train, evaluate and bench within a wall-time budget (GPU, or a CPU stand-in)"),
}


def _command_in(argv: list[str]) -> str | None:
    """The sub-command that ``argv`` names (its first word that is not an option), if any."""
    word = next((word for word in argv if not word.startswith("-")), None)
    return word if word in SUBCOMMANDS else None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; the options of ``command`` (all sub-commands' when None) are filled in."""
    parser = argparse.ArgumentParser(
        prog="python -m unet_tutorial",
        description="U-Net (Ronneberger et al., 2015) in Keras 3: data, training, evaluation.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (options_module, _, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if command in (None, name):
            getattr(importlib.import_module(options_module), f"add_{name}_arguments")(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_in(argv)
    args = build_parser(command or "").parse_args(argv)
    module = importlib.import_module(SUBCOMMANDS[args.command][1])
    return int(getattr(module, f"run_{args.command}")(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
