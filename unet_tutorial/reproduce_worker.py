"""The child process of one ``reproduce`` step: the package's command line (or the bench), JAX only.

``python -m unet_tutorial.reproduce_worker SCALE COMMANDS_JSON`` runs each
command of the step in turn: an argv list goes to ``python -m unet_tutorial``'s
``main`` (``train``, ``predict``, ``evaluate``, each given ``--data-dir`` with
the packed data, which the loaders read themselves); a dict is the bench's
variants. ``import tensorflow`` fails here, as on the device machine, which has
none: the run proves that the JAX path needs no TensorFlow.

Started by ``reproduce_steps.run_step``; not meant to be run by hand.
"""

from __future__ import annotations

import json
import os
import pathlib
import shlex
import sys
import tempfile
import time


class _NoTensorFlow:
    """Import hook: ``import tensorflow`` fails, as on the device machine (proves the JAX-only path)."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (the device run is JAX-only)", name=name)
        return None


def _use_compilation_cache(scale: str) -> None:
    """A JAX compilation cache shared by the steps.

    Building a Keras model on JAX compiles one small program per weight shape
    (the initializers), which costs seconds in every new process; later steps
    also reuse the training step of the same shapes.
    """
    try:
        import jax  # noqa: PLC0415

        jax.config.update("jax_compilation_cache_dir", os.environ.get("UNET_DEVICE_JAX_CACHE") or
                          os.path.join(tempfile.gettempdir(), f"unet-jax-cache-{scale}"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    except Exception as error:  # a JAX without these options: compile again
        print(f"note: no persistent compilation cache ({error})")


def bench_variants(spec: dict) -> None:
    """``bench.bench`` for each (dtype policy, jit_compile); one JSON line per variant as soon as it is done.

    The same measurement as ``python -m unet_tutorial bench --preset P --batch-size B
    --input-size T --dtype-policy D --jit-compile J --steps S --warmup W``, except that
    the input pipeline (the same for every variant, on the CPU) is timed on 3 batches for the
    first variant and on 1 for the others: at 572x572 with elastic deformation each batch of 8
    takes about a second of CPU time, which the GPU's budget is better spent on.
    """
    from .bench import bench  # noqa: PLC0415

    out = pathlib.Path(spec["out"])
    for index, (dtype_policy, jit_compile) in enumerate(spec["variants"]):
        command = (f"python -m unet_tutorial bench --preset {spec['preset']} --batch-size {spec['batch_size']} "
                   f"--input-size {spec['input_size']} --dtype-policy {dtype_policy} --jit-compile {jit_compile} "
                   f"--steps {spec['steps']} --warmup {spec['warmup']}")
        print(f"$ {command}", flush=True)
        started = time.perf_counter()
        try:
            result = bench(spec["preset"], batch_size=spec["batch_size"], input_size=spec["input_size"],
                           dtype_policy=dtype_policy, jit_compile=jit_compile, steps=spec["steps"],
                           warmup=spec["warmup"], pipeline_batches=3 if index == 0 else 1)
            row = {**result.as_dict(), "pipeline_batches_timed": 3 if index == 0 else 1}
            print(result.format(), flush=True)
        except Exception as error:  # record and go on with the next variant
            row = {"dtype_policy": dtype_policy, "jit_compile": jit_compile, "error": f"{type(error).__name__}: {error}"}
            print(f"error: {row['error']}", flush=True)
        row.update(command=command, wall_s=round(time.perf_counter() - started, 2))
        with open(out, "a", encoding="utf-8") as file:  # appended line by line: a cut-short bench keeps its rows
            file.write(json.dumps(row) + "\n")


def main(argv: list[str]) -> int:
    scale, commands = argv[0], json.loads(argv[1])
    sys.meta_path.insert(0, _NoTensorFlow())
    os.environ["KERAS_BACKEND"] = "jax"
    _use_compilation_cache(scale)
    from .__main__ import main as package_main  # noqa: PLC0415

    for command in commands:
        if isinstance(command, dict):
            bench_variants(command)
            continue
        print(f"$ python -m unet_tutorial {shlex.join(command)}", flush=True)
        status = package_main(command)
        if status:
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
