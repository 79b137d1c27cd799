"""Command line: ``python -m unet_tutorial {fetch,train,evaluate,predict,bench}``.

Each sub-command lives in the module that does the work; this file only wires
them together. A module ``M`` that provides sub-command ``NAME`` defines
``add_NAME_arguments(parser)`` and ``run_NAME(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# sub-command -> (module that implements it, one-line help)
SUBCOMMANDS = {
    "fetch": ("unet_tutorial.datasets", "download a dataset (or check a local mirror)"),
    "train": ("unet_tutorial.train", "train a U-Net from a preset config"),
    "evaluate": ("unet_tutorial.evaluate", "score a model with the paper's metrics (Tables 1 and 2)"),
    "predict": ("unet_tutorial.evaluate", "predict probability maps with overlap-tile"),
    "bench": ("unet_tutorial.bench", "measure training, inference and input-pipeline speed"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m unet_tutorial",
        description="U-Net (Ronneberger et al., 2015) in Keras 3: data, training, evaluation.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(module_name)
        getattr(module, f"add_{name}_arguments")(sub)
        sub.set_defaults(_module=module_name, _command=name)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module = importlib.import_module(args._module)
    return int(getattr(module, f"run_{args._command}")(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
