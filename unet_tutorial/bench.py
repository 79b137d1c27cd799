"""How fast is it? Training, inference and input-pipeline throughput (``python -m unet_tutorial bench``).

Three figures, each measured on its own so that the slowest shows which part
limits training:

* training images/s: ``model.train_on_batch`` on a fixed batch already on the
  device (the network alone, forward + backward + SGD update);
* inference images/s: ``model.predict_on_batch`` on the same batch;
* pipeline images/s: ``SegmentationDataset`` preparing batches (tile cutting,
  augmentation, with the config's ``AugmentConfig``) on synthetic images, per
  worker with the fast warp (OpenCV, single-threaded: one core) and with the
  reference warp (scipy), side by side in one run, and with ``workers``
  threads (what ``PyDataset`` workers do: call ``dataset[i]`` in parallel);
* on-device augmentation: ``augment_device.DeviceAugment`` on a batch already on
  the device, compiled as Keras compiles a step (``predict_on_batch``), as a
  fraction of the network's train step.

The report names the bound: the network's train images/s against the
pipeline's images/s with the given workers.

Both network figures exclude warm-up steps (tracing/compilation) and read the
clock only after the step's results are back on the host: ``train_on_batch`` and
``predict_on_batch`` return numpy values, which waits for the device (a GPU
runs asynchronously; without that wait the clock would stop too early).

FLOPs are counted from the convolution layers, ``2 * k * k * c_in * c_out * h * w``
per convolution (h, w: its output size; for the 2x2 up-convolutions: its input
size), i.e. multiply-adds counted as 2. Pooling, activations, softmax and loss
are left out (a few per cent). Training is counted as 3x the forward pass
(forward, gradients w.r.t. activations and w.r.t. weights).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import sys
import time

import numpy as np

from . import shapes
from .config import PRESETS, TrainConfig
from .files import write_json_atomic

__all__ = ["BenchResult", "conv_flops", "bench", "add_bench_arguments", "run_bench"]

DTYPE_POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


@dataclasses.dataclass(frozen=True)
class BenchResult:
    """Throughput of one configuration on one backend and device."""

    preset: str  # config name (or "custom")
    backend: str  # keras backend
    device: str  # device description
    input_size: int  # input tile T
    output_size: int  # output tile t
    batch_size: int  # images per step
    dtype_policy: str  # "float32", "mixed_float16", "mixed_bfloat16"
    jit_compile: str  # "auto", "true", "false"
    parameters: int  # trainable parameters
    steps: int  # timed steps (after warm-up)
    forward_gflops_per_image: float  # convolution FLOPs of one forward pass, 1e9
    train_images_per_s: float
    inference_images_per_s: float
    pipeline_images_per_s: float  # one worker (one core), the default (fast) warp
    train_tflops_per_s: float  # achieved: 3 x forward FLOPs x train images/s
    inference_tflops_per_s: float  # achieved: forward FLOPs x inference images/s
    pipeline_reference_images_per_s: float = 0.0  # one worker, the reference (scipy) warp, same run
    pipeline_workers: int = 1  # workers of the last figure
    pipeline_images_per_s_workers: float = 0.0  # with pipeline_workers threads
    pipeline_batches: int = 0  # batches timed per pipeline figure
    elastic: bool = True  # whether the measured augmentation had the elastic deformation
    device_augment_images_per_s: float = 0.0  # augment_device on the device, compiled; 0 = not measured
    device_augment_fraction: float = 0.0  # its time as a fraction of one train step

    @property
    def pipeline_speedup(self) -> float:
        """Per worker: the fast warp's samples/s over the reference's (goal: 10x and more)."""
        return self.pipeline_images_per_s / self.pipeline_reference_images_per_s if self.pipeline_reference_images_per_s else 0.0

    @property
    def limit(self) -> str:
        """What bounds training with ``pipeline_workers`` workers: "input pipeline" or "network"."""
        rate = self.pipeline_images_per_s_workers or self.pipeline_images_per_s
        return "input pipeline" if rate < self.train_images_per_s else "network"

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "pipeline_speedup": self.pipeline_speedup, "limit": self.limit}

    def format(self) -> str:
        warp = "" if self.elastic else " (no elastic deformation in this config)"
        cores_needed = self.train_images_per_s / self.pipeline_images_per_s if self.pipeline_images_per_s else 0.0
        lines = [
            f"  pipeline:   {self.pipeline_images_per_s:10.2f} images/s per worker, fast warp (OpenCV, 1 core){warp}",
            f"              {self.pipeline_reference_images_per_s:10.2f} images/s per worker, reference warp (scipy): "
            f"new/old = {self.pipeline_speedup:.1f}x",
            f"              {self.pipeline_images_per_s_workers:10.2f} images/s with {self.pipeline_workers} worker(s); "
            f"16 cores at the per-worker rate: ~{16 * self.pipeline_images_per_s:.0f} images/s; feeding this "
            f"network needs ~{cores_needed:.1f} workers",
        ]
        if self.device_augment_images_per_s:
            lines.append(f"  on-device augmentation: {self.device_augment_images_per_s:10.2f} images/s = "
                         f"{100 * self.device_augment_fraction:.1f}% of a train step")
        lines.append(f"  bound: training is limited by the {self.limit} ({self.pipeline_workers} worker(s))")
        return "\n".join(
            [
                f"U-Net bench: preset {self.preset}, {self.input_size}x{self.input_size} -> "
                f"{self.output_size}x{self.output_size}, batch {self.batch_size}, {self.dtype_policy}, "
                f"jit_compile={self.jit_compile}",
                f"  backend {self.backend} on {self.device}; {self.parameters:,} parameters; "
                f"{self.forward_gflops_per_image:.2f} GFLOP per image forward",
                f"  training:   {self.train_images_per_s:10.2f} images/s  ({self.train_tflops_per_s:.4f} TFLOP/s)",
                f"  inference:  {self.inference_images_per_s:10.2f} images/s  ({self.inference_tflops_per_s:.4f} TFLOP/s)",
                *lines,
                f"  timed steps: {self.steps} after warm-up; {self.pipeline_batches} pipeline batches per figure "
                "(a shared machine is noisy: compare figures of one run)",
            ]
        )


def conv_flops(model) -> int:
    """Forward-pass FLOPs of one image in the model's convolutions (model built with a fixed input size)."""
    import keras  # noqa: PLC0415 (the command line's options load without Keras)

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            height, width = layer.input.shape[1:3]  # every input pixel spreads a k x k x c_out patch
        elif isinstance(layer, keras.layers.Conv2D):
            height, width = layer.output.shape[1:3]
        else:
            continue
        if height is None or width is None:
            raise ValueError(f"conv_flops needs a model with a fixed input size; layer {layer.name} has size None.")
        total += 2 * int(np.prod(layer.kernel.shape)) * int(height) * int(width)
    return total


def _device_description() -> str:
    import keras  # noqa: PLC0415

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return f"{device.platform}:{getattr(device, 'device_kind', device)} (x{len(jax.devices())})"
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return f"GPU:{details.get('device_name', gpus[0].name)} (x{len(gpus)})"
    import os
    import platform

    return f"CPU:{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def _timed(step, steps: int, warmup: int) -> float:
    """Seconds for ``steps`` calls of ``step`` after ``warmup`` untimed calls (each call waits for its result)."""
    for _ in range(warmup):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - started


def bench(
    config: TrainConfig | str = "cpu-tiny",
    *,
    batch_size: int | None = None,
    input_size: int | None = None,
    dtype_policy: str | None = None,
    jit_compile: str | None = None,
    steps: int = 10,
    warmup: int = 2,
    pipeline_batches: int | None = None,
    workers: int | None = None,
    device_augment: bool = True,
    seed: int = 0,
) -> BenchResult:
    """Measure training, inference and input-pipeline throughput of a config on the active backend.

    Args:
        config: a :class:`TrainConfig` or a preset name ("paper", "colab", "cpu-tiny").
        batch_size, input_size: override the config's batch size and tile size.
        dtype_policy: "float32", "mixed_float16" or "mixed_bfloat16" (default:
            the config's ``mixed_precision``).
        jit_compile: "auto", "true" or "false" (default: the config's).
        steps, warmup: timed and untimed (compilation) steps per measurement.
        pipeline_batches: batches timed per pipeline figure (default: ``steps``).
        workers: worker threads of the last pipeline figure (default: the config's).
        device_augment: also time ``augment_device.DeviceAugment`` on the device.

    Returns:
        :class:`BenchResult`; ``print(result.format())`` for a readable table.
    """
    import keras  # noqa: PLC0415

    from .losses import WeightedCrossEntropy  # noqa: PLC0415
    from .model import build_unet  # noqa: PLC0415
    from .pipeline import SegmentationDataset, synthetic_cells  # noqa: PLC0415

    name = config if isinstance(config, str) else "custom"
    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"unknown preset {config!r}; choose one of {sorted(PRESETS)}.")
        config = PRESETS[config]
    batch_size = int(batch_size or config.batch_size)
    input_size = int(input_size or config.tile_size)
    if dtype_policy is None:
        dtype_policy = "float32" if config.mixed_precision == "none" else config.mixed_precision
    if dtype_policy not in DTYPE_POLICIES:
        raise ValueError(f"dtype_policy must be one of {DTYPE_POLICIES}, got {dtype_policy!r}.")
    jit_compile = config.jit_compile if jit_compile is None else str(jit_compile).lower()
    if jit_compile not in ("auto", "true", "false"):
        raise ValueError(f"jit_compile must be 'auto', 'true' or 'false', got {jit_compile!r}.")
    if steps < 1 or warmup < 0 or batch_size < 1:
        raise ValueError(f"need steps >= 1, warmup >= 0 and batch_size >= 1; got {steps}, {warmup}, {batch_size}.")
    pipeline_batches = int(pipeline_batches or steps)
    workers = int(workers or config.workers)
    if pipeline_batches < 1 or workers < 1:
        raise ValueError(f"need pipeline_batches >= 1 and workers >= 1; got {pipeline_batches}, {workers}.")
    try:
        output_size = shapes.output_size(input_size, depth=config.depth, padding=config.padding)
    except ValueError as error:
        raise ValueError(f"input_size={input_size} is not a valid input size: {error}") from error

    # The network, with a fixed input size so that every layer's size is known.
    keras.utils.set_random_seed(seed)
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype_policy)
    try:
        model = build_unet(
            input_shape=(input_size, input_size, 1), base_filters=config.base_filters, depth=config.depth,
            padding=config.padding, dropout=config.dropout, batch_norm=config.batch_norm,
        )
    finally:
        keras.config.set_dtype_policy(previous_policy)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=1e-6, momentum=config.momentum),
        loss=WeightedCrossEntropy(),
        jit_compile={"auto": "auto", "true": True, "false": False}[jit_compile],
    )

    # One batch, moved to the device once: the network figures exclude data transfer.
    rng = np.random.default_rng(seed)
    x = keras.ops.convert_to_tensor(rng.random((batch_size, input_size, input_size, 1), dtype=np.float32))
    y = keras.ops.convert_to_tensor(rng.integers(0, 2, (batch_size, output_size, output_size), dtype=np.int32))
    w = keras.ops.convert_to_tensor(np.ones((batch_size, output_size, output_size), np.float32))
    train_seconds = _timed(lambda: model.train_on_batch(x, y, sample_weight=w), steps, warmup)
    inference_seconds = _timed(lambda: model.predict_on_batch(x), steps, warmup)

    # The augmentation on the device, compiled, on a batch already there (T x T labels and weights).
    device_rate = 0.0
    if device_augment:
        device_rate = steps * batch_size / _device_augment_seconds(config, x, steps, warmup, seed)

    # The input pipeline alone, with the config's augmentation, on 512x512 images:
    # per worker with the fast and the reference warp, then with `workers` threads.
    size = max(512, output_size)
    images, instances = synthetic_cells(n_images=4, size=size, n_cells=40, seed=seed)
    tiles = dataclasses.replace(config.tiles, tile_size=input_size)
    dataset = SegmentationDataset(
        images, (instances > 0).astype(np.uint8), instances=instances, tiles=tiles,
        augmentation=config.augmentation, batch_size=batch_size, tiles_per_epoch=batch_size * (pipeline_batches + 1),
        seed=seed,
    )
    fast = dataclasses.replace(config.augmentation, method="opencv")
    reference = dataclasses.replace(config.augmentation, method="scipy")
    pipeline_rate, reference_rate = _side_by_side_rates(dataset, fast, reference)
    workers_rate = _pipeline_rate(dataset, fast, workers)

    flops = conv_flops(model)
    train_rate = steps * batch_size / train_seconds
    inference_rate = steps * batch_size / inference_seconds
    return BenchResult(
        preset=name, backend=keras.backend.backend(), device=_device_description(), input_size=input_size,
        output_size=output_size, batch_size=batch_size, dtype_policy=dtype_policy, jit_compile=jit_compile,
        parameters=int(sum(np.prod(v.shape) for v in model.trainable_weights)), steps=steps,
        forward_gflops_per_image=flops / 1e9, train_images_per_s=train_rate, inference_images_per_s=inference_rate,
        pipeline_images_per_s=pipeline_rate,
        train_tflops_per_s=3 * flops * train_rate / 1e12, inference_tflops_per_s=flops * inference_rate / 1e12,
        pipeline_reference_images_per_s=reference_rate, pipeline_workers=workers,
        pipeline_images_per_s_workers=workers_rate, pipeline_batches=pipeline_batches,
        elastic=config.augmentation.enabled and config.augmentation.elastic,
        device_augment_images_per_s=device_rate, device_augment_fraction=train_rate / device_rate if device_rate else 0.0,
    )


@contextlib.contextmanager
def _opencv_threads(count: int):
    """OpenCV's own thread pool set to ``count`` threads for a while (1: a worker uses one core)."""
    import cv2  # noqa: PLC0415

    previous = cv2.getNumThreads()
    cv2.setNumThreads(count)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def _side_by_side_rates(dataset, first, second) -> tuple[float, float]:
    """Images/s of ``dataset`` with two augmentations, one worker, batch by batch in turn (the same load on both)."""
    seconds = [0.0, 0.0]
    with _opencv_threads(1):
        for augmentation in (first, second):  # warm-up
            dataset.augmentation = augmentation
            dataset[0]
        for index in range(1, len(dataset)):
            for k, augmentation in enumerate((first, second)):
                dataset.augmentation = augmentation
                started = time.perf_counter()
                dataset[index]
                seconds[k] += time.perf_counter() - started
    images = (len(dataset) - 1) * dataset.batch_size
    return images / seconds[0], images / seconds[1]


def _pipeline_rate(dataset, augmentation, workers: int) -> float:
    """Images/s of ``dataset`` with ``augmentation``, its batches made by ``workers`` threads (batch 0: warm-up).

    ``PyDataset`` workers do the same: threads that call ``dataset[i]``; the
    batch of an index depends only on (seed, epoch, index), not on the worker.
    """
    dataset.augmentation = augmentation
    with _opencv_threads(1):
        dataset[0]
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(dataset.__getitem__, range(1, len(dataset))))
        seconds = time.perf_counter() - started
    return (len(dataset) - 1) * dataset.batch_size / seconds


def _device_augment_seconds(config: TrainConfig, x, steps: int, warmup: int, seed: int) -> float:
    """Seconds for ``steps`` compiled ``DeviceAugment`` calls on the batch ``x`` (and its labels and weights)."""
    import keras  # noqa: PLC0415

    from .augment_device import DeviceAugment  # noqa: PLC0415

    batch, size = x.shape[0], x.shape[1]
    inputs = [keras.Input((size, size, 1)), keras.Input((size, size), dtype="int32"), keras.Input((size, size))]
    model = keras.Model(inputs, DeviceAugment(config.augmentation, seed=seed)(inputs))
    labels = keras.ops.zeros((batch, size, size), "int32")
    weights = keras.ops.ones((batch, size, size))
    return _timed(lambda: model.predict_on_batch([x, labels, weights]), steps, warmup)


# ----------------------------------------------------------------------------- command line


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.allow_abbrev = False
    parser.add_argument("--preset", default="cpu-tiny", choices=sorted(PRESETS), help="config to measure (default cpu-tiny)")
    parser.add_argument("--batch-size", type=int, default=None, help="images per step (default: the preset's)")
    parser.add_argument("--input-size", type=int, default=None, help="input tile size (default: the preset's)")
    parser.add_argument("--dtype-policy", choices=DTYPE_POLICIES, default=None, help="default: the preset's")
    parser.add_argument("--jit-compile", choices=("auto", "true", "false"), default=None, help="XLA (default: the preset's)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per figure (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--pipeline-batches", type=int, default=None, help="batches per pipeline figure (default: --steps)")
    parser.add_argument("--workers", type=int, default=None, help="worker threads of the pipeline (default: the preset's)")
    parser.add_argument("--no-device-augment", action="store_true", help="skip timing the on-device augmentation")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")


def run_bench(args: argparse.Namespace) -> int:
    try:
        result = bench(
            args.preset, batch_size=args.batch_size, input_size=args.input_size, dtype_policy=args.dtype_policy,
            jit_compile=args.jit_compile, steps=args.steps, warmup=args.warmup,
            pipeline_batches=args.pipeline_batches, workers=args.workers, device_augment=not args.no_device_augment,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(result.format())
    if args.json:
        write_json_atomic(args.json, result.as_dict())
    return 0
