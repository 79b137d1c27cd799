"""Data-parallel training on several devices, with Keras' own engines (``TrainConfig.distribution``).

Data parallelism: every device holds a full copy of the U-Net; each step the
global batch of ``TrainConfig.batch_size`` tiles is cut into equal slices, one
per device; each device computes the gradient of its slice, the gradients are
averaged across the devices (an all-reduce), and every copy takes the same step.
The training step is not home-made: this module picks the engine of the active
Keras backend and checks the settings (and, for several hosts on JAX, hands each
process its rows of the batch):

* JAX: ``keras.distribution.DataParallel`` over the devices of
  ``keras.distribution.list_devices()`` (all GPUs, or all CPU devices when there
  is no GPU). Model variables are
  replicated on a 1-D device mesh with the axis ``"batch"``; while ``fit`` runs,
  Keras shards every batch along its first axis over that mesh and XLA inserts
  the all-reduce of the gradients. Several hosts: start one process per host with
  ``KERAS_DISTRIBUTION_JOB_ADDRESSES``, ``KERAS_DISTRIBUTION_NUM_PROCESSES`` and
  ``KERAS_DISTRIBUTION_PROCESS_ID`` set; :func:`placement` then calls
  ``keras.distribution.initialize()`` and the mesh spans the devices of all hosts.
* TensorFlow: ``tf.distribute.MirroredStrategy`` over all logical GPUs (or all
  logical CPUs when there is no GPU) of this host. Variables built under
  ``strategy.scope()`` are ``MirroredVariable``s (one copy per device); ``fit``
  turns the ``PyDataset`` into a ``tf.data`` pipeline and
  ``strategy.experimental_distribute_dataset`` splits each batch into one slice
  per replica. Several hosts would need ``tf.distribute.MultiWorkerMirroredStrategy``
  (a ``TF_CONFIG`` listing the workers), but Keras 3's ``fit`` fails with it
  (keras-team/keras#20585, still so in Keras 3.15.1 with TensorFlow 2.21: its
  first look at a batch cannot reduce the per-worker values), so
  :func:`placement` refuses it; train across hosts on the JAX backend.

The same maths on 1 or N devices: ``batch_size`` is the GLOBAL batch. The loss
is the mean over all pixels of the global batch whatever the device count (JAX
computes it on one global array; TensorFlow divides each replica's mean by the
number of replicas before the gradients are summed), so neither the learning
rate nor the logged loss depends on the device count, and a run on 4 devices
follows the run on 1 to float round-off (``tests/test_distribution.py``
measures it). Nothing is scaled for you: to get more tiles per second from N
devices, raise ``batch_size`` yourself (e.g. 4 tiles per device); that changes
the maths exactly as a larger batch on one device would, and a larger learning
rate may then help (the linear scaling rule, Goyal et al. 2017, "Accurate,
Large Minibatch SGD"). Two exceptions on TensorFlow: dropout masks are drawn
per replica, and batch normalisation (``batch_norm=True``, not in the paper)
uses each replica's own statistics; with either, 1 and N devices agree only
statistically. On JAX both act on the global batch.

Not used: ``keras.distribution.ModelParallel`` with a ``LayoutMap`` (sharding the
weights themselves). The paper's U-Net has 31 million parameters (124 MB in
float32), which fit on any GPU; its memory goes to the activations of large
tiles, which data parallelism already splits. Sharding the kernels would only add
communication.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os

import keras

__all__ = ["DISTRIBUTIONS", "Placement", "placement", "choose_devices", "gpu_available"]

DISTRIBUTIONS = ("none", "data-parallel")
BACKENDS = ("jax", "tensorflow")  # the backends with a data-parallel engine in Keras 3
# Read by keras.distribution.initialize() on every host of a multi-host JAX run.
_HOST_VARIABLES = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_PROCESS_ID",
)


def gpu_available() -> bool:
    """True when the active Keras backend sees at least one GPU.

    The chapters train paper-sized networks only then (on Colab: Runtime ->
    Change runtime type -> GPU); on a CPU they print what they would run.
    """
    if keras.backend.backend() == "jax":
        import jax  # noqa: PLC0415

        return jax.default_backend() == "gpu"
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # noqa: PLC0415

        return bool(tf.config.list_physical_devices("GPU"))
    return False


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a training run puts its model and its batches (made by :func:`placement`).

    ``train`` builds (or loads) the model in :meth:`model_scope`, calls ``fit``
    in :meth:`fit_scope`, and scores held-out images on one device in
    :meth:`one_device_scope`.
    """

    distribution: str  # "none" or "data-parallel"
    backend: str  # keras.backend.backend()
    devices: tuple[str, ...]  # the devices each global batch is split over (all hosts)
    engine: object = None  # keras.distribution.DataParallel (JAX), a tf.distribute strategy (TF), or None
    process_index: int = 0  # this host's process (several hosts), else 0
    process_count: int = 1  # processes (hosts) taking part

    @property
    def distributed(self) -> bool:
        return self.engine is not None

    @property
    def is_chief(self) -> bool:
        """The process that writes checkpoints and history (the only one on a single host)."""
        return self.process_index == 0

    def model_scope(self):
        """Build, load and compile the model in here: its variables go onto every device."""
        if self.engine is None:
            return contextlib.nullcontext()
        return self.engine.scope()  # JAX: replicated on the mesh; TF: MirroredVariables

    def fit_scope(self):
        """Call ``model.fit`` in here."""
        if self.engine is not None and self.backend == "jax":
            # Keras on JAX reads the current distribution while fit runs: to
            # compile the step for the mesh and to shard each batch.
            return self.engine.scope()
        # TensorFlow: the model remembers the strategy it was built under, and
        # fit must stay outside strategy.scope(), or predictions made inside fit
        # (the held-out score) would run on every replica.
        return contextlib.nullcontext()

    def one_device_scope(self):
        """Plain one-device work inside a distributed ``fit`` (e.g. scoring a copy of the model)."""
        if self.engine is not None and self.backend == "jax":
            return _without_distribution()
        return contextlib.nullcontext()

    def shard(self, dataset):
        """The part of every global batch that this process feeds (all of it on a single host).

        JAX on several hosts: each process hands Keras only its own rows of
        the global batch (``jax.make_array_from_process_local_data`` assembles
        the global array). On one host, Keras splits each batch over the devices.
        """
        if self.backend == "jax" and self.process_count > 1:
            return _HostSlice(dataset, self.process_index, self.process_count)
        return dataset


@contextlib.contextmanager
def _without_distribution():
    current = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(current)


class _HostSlice(keras.utils.PyDataset):
    """Rows ``[k * B/P, (k + 1) * B/P)`` of every global batch of B tiles, for process k of P.

    Every process prepares the whole global batch (so all agree on it, with the
    pipeline's per-batch seeding) and keeps its rows: simple and exact, at the
    price of some CPU time on each host.
    """

    def __init__(self, dataset, process_index, process_count):
        super().__init__(
            workers=dataset.workers, use_multiprocessing=dataset.use_multiprocessing,
            max_queue_size=dataset.max_queue_size,
        )
        self.dataset, self.process_index, self.process_count = dataset, process_index, process_count

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        batch = self.dataset[index]  # (x, y, w), or ((x, y, w),) for on-device augmentation
        rows = len(keras.tree.flatten(batch)[0]) // self.process_count
        start = self.process_index * rows
        return keras.tree.map_structure(lambda part: part[start : start + rows], batch)

    def on_epoch_end(self):
        self.dataset.on_epoch_end()


def choose_devices(found, batch_size: int, num_devices: int = 0) -> tuple[str, ...]:
    """The devices to split the global batch over: the first ``num_devices`` of ``found`` (0: all).

    Raises:
        ValueError: more devices requested than found, or a global batch that
            the devices cannot share equally.
    """
    found = tuple(str(device) for device in found)
    listed = ", ".join(found)
    if num_devices > len(found):
        raise ValueError(
            f"num_devices={num_devices} asks for more devices than the {len(found)} found ({listed}); "
            f"set num_devices to at most {len(found)}, or to 0 to use all of them."
        )
    devices = found[: num_devices or len(found)]
    n = len(devices)
    if batch_size % n:
        which = "found" if num_devices == 0 else f"requested (num_devices={num_devices})"
        raise ValueError(
            f"batch_size={batch_size} is not divisible by the {n} devices {which} ({', '.join(devices)}); "
            f"set batch_size to a multiple of {n} (e.g. {n * math.ceil(batch_size / n)}): the global batch "
            f"is split into equal slices, one per device."
        )
    return devices


def placement(distribution: str = "none", batch_size: int = 1, num_devices: int = 0) -> Placement:
    """The :class:`Placement` of a run on the active Keras backend.

    Args:
        distribution: ``"none"`` (one device, the backend's default) or
            ``"data-parallel"`` (all devices the backend sees, or the first
            ``num_devices``).
        batch_size: the global batch, split equally across the devices.
        num_devices: how many devices to use (0: all).

    Raises:
        ValueError: an unknown distribution, a backend without a data-parallel
            engine, a mesh larger than the devices present, or a batch that the
            devices cannot share equally. Each message says what was found and
            what to set.
    """
    backend = keras.backend.backend()
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}.")
    if distribution == "none":
        return Placement("none", backend, ())
    if backend not in BACKENDS:
        raise ValueError(
            f"distribution='data-parallel' needs the JAX backend (keras.distribution.DataParallel) or the "
            f"TensorFlow backend (tf.distribute.MirroredStrategy), but the active Keras backend is {backend!r}. "
            "Set KERAS_BACKEND=jax or KERAS_BACKEND=tensorflow before Python starts, or use distribution='none'."
        )
    if backend == "jax":
        return _jax_placement(batch_size, num_devices)
    return _tensorflow_placement(batch_size, num_devices)


def _jax_placement(batch_size, num_devices):
    import jax  # noqa: PLC0415 (only on the JAX backend)

    if any(os.environ.get(name) for name in _HOST_VARIABLES) and not jax.distributed.is_initialized():
        # Several hosts: connect the processes before JAX lists its devices.
        try:
            keras.distribution.initialize()
        except RuntimeError as error:
            raise ValueError(
                f"cannot join the other hosts ({error}). keras.distribution.initialize() must run before "
                "anything else uses JAX: start training in a fresh process (python -m unet_tutorial train ...)."
            ) from error
    process_count, process_index = jax.process_count(), jax.process_index()
    # Devices ordered by host, so that host k's devices hold rows k*B/P.. of each batch (see _HostSlice).
    found = sorted(jax.devices(), key=lambda device: (device.process_index, device.id))
    if process_count > 1 and num_devices not in (0, len(found)):
        raise ValueError(
            f"num_devices={num_devices} with {process_count} hosts: data-parallel training across hosts uses "
            f"all {len(found)} devices of all hosts; set num_devices to 0."
        )
    devices = choose_devices([f"{device.platform}:{device.id}" for device in found], batch_size, num_devices)
    # auto_shard_dataset=False: Keras would shard only tf.data datasets across
    # hosts; this package shards its PyDataset itself (Placement.shard).
    engine = keras.distribution.DataParallel(devices=list(devices), auto_shard_dataset=False)
    return Placement("data-parallel", "jax", devices, engine, process_index, process_count)


def _tensorflow_placement(batch_size, num_devices):
    workers = _tf_config_workers()
    if workers > 1:
        raise ValueError(
            f"TF_CONFIG lists {workers} workers, but training across hosts on TensorFlow needs "
            f"MultiWorkerMirroredStrategy, which Keras {keras.__version__}'s fit does not support "
            "(keras-team/keras#20585). Train across hosts with KERAS_BACKEND=jax (set "
            "KERAS_DISTRIBUTION_JOB_ADDRESSES, KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID "
            "on every host), or unset TF_CONFIG to train on the devices of this host."
        )
    import tensorflow as tf  # noqa: PLC0415 (only on the TensorFlow backend)

    found = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    devices = choose_devices([device.name for device in found], batch_size, num_devices)
    return Placement("data-parallel", "tensorflow", devices, _mirrored_strategy(devices))


@functools.cache
def _mirrored_strategy(devices: tuple[str, ...]):
    """One ``MirroredStrategy`` per set of devices and process.

    Two strategies over the same devices number their all-reduces alike; a
    second run in the same process whose model has other variable sizes then
    fails ("Shape mismatch in the collective instance", seen with TensorFlow 2.21).
    """
    import tensorflow as tf  # noqa: PLC0415

    # Its "INFO:tensorflow:Using MirroredStrategy with devices ..." line is chatter, not a result.
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("WARNING")
    try:
        return tf.distribute.MirroredStrategy(devices=list(devices))
    finally:
        logger.setLevel(level)


def _tf_config_workers() -> int:
    """Number of workers in the ``TF_CONFIG`` cluster (1 without one)."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return 1
    try:
        cluster = json.loads(text)["cluster"]
        return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"TF_CONFIG is not a valid cluster description ({error}): {text[:200]}") from error
