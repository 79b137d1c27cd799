"""Data-parallel training (``distribution="data-parallel"``) on 4 virtual CPU devices, on JAX and TensorFlow.

The device count must be fixed before the backend starts, so each backend runs
in its own process (:data:`SCRIPT`): JAX with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``, TensorFlow with four
logical CPU devices (``tf.config.set_logical_device_configuration``). One
process per backend runs every training the tests below look at (a few seconds
each) and reports as JSON:

* a one-device run and a 4-device run of the same config (same global batch,
  same seed): their losses, held-out scores and wall times;
* where the 4-device run put things: the devices of the model's variables, and
  for every training step the slice of the global batch each device got;
* the saved ``model.keras`` loaded outside the distribution (one device), and its
  predictions next to the distributed model's;
* a 4-device run stopped after epoch 1 and resumed (on 4 devices, and on one);
* a second model (with batch normalisation) on 1 and 4 devices in the same process;
* the errors for settings that cannot work.

Besides: the train command with ``--distribution data-parallel``, and two JAX
processes on loopback (two "hosts" with 2 virtual devices each) that train as
one 4-device mesh.

A virtual-device run checks the mechanics (what goes where, the same maths); it
measures no speed-up: the 4 "devices" share this machine's CPU cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from unet_tutorial import distribute
from unet_tutorial.train import TrainConfig

DEVICES = 4
# The tiny run: 2 levels, 4 channels, 44 -> 28 tiles, a global batch of 4 (one tile
# per device), 2 epochs of 4 steps. No dropout (cpu-tiny), so every step is
# deterministic on both backends; no elastic deformation (for speed).
TINY = dict(
    dataset="circles", depth=2, base_filters=4, tile_size=44, batch_size=4, steps_per_epoch=4, epochs=2,
    elastic=False,
)
# Measured on this 2-core CPU (Keras 3.15.1, JAX 0.10.2, TensorFlow 2.21): the
# per-epoch losses of 1 and 4 devices differ by at most 6e-8 (one float32 ulp
# at 0.85) on both backends, 3e-7 with batch normalisation on JAX. The tolerance
# allows a few more ulp of reordering in the all-reduce, far below the 0.01-0.03
# changes of the loss from epoch to epoch.
LOSS_ATOL = 1e-6
# Softmax outputs of the 1- and 4-device models (measured: at most 2.1e-7 apart).
PREDICTION_ATOL = 1e-6

SCRIPT = textwrap.dedent(
    """
    import json, os, shutil, sys, time
    backend, out_dir, devices, tiny = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
    if backend == "tensorflow":
        import tensorflow as tf  # logical devices first, before anything else touches TensorFlow
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    import numpy as np
    import keras
    from unet_tutorial import distribute
    from unet_tutorial import train as training
    from unet_tutorial.pipeline import SegmentationDataset
    assert keras.backend.backend() == backend, keras.backend.backend()

    report = {"backend": backend}

    # -- record what the engine does (only during the 4-device run) -------------
    recording = {"on": False, "steps": [], "dataset": None, "model": None}
    build = training._build_and_compile
    def keep_model(*args, **kwargs):
        recording["model"] = build(*args, **kwargs)
        return recording["model"]
    training._build_and_compile = keep_model
    load = training._load_checkpoint
    def keep_loaded(*args, **kwargs):
        recording["model"] = load(*args, **kwargs)
        return recording["model"]
    training._load_checkpoint = keep_loaded
    shard = distribute.Placement.shard
    def keep_dataset(self, dataset):
        recording["dataset"] = dataset
        return shard(self, dataset)
    distribute.Placement.shard = keep_dataset

    if backend == "jax":
        from keras.src.backend.jax import trainer as jax_trainer
        distribute_data = jax_trainer._distribute_data
        def record_shards(data, layouts=None):
            result = distribute_data(data, layouts)
            if recording["on"] and len(data) == 3:  # a training batch (x, y, w)
                x = result[0]
                recording["steps"].append([
                    (str(s.device), int(s.index[0].start or 0), np.asarray(s.data)) for s in x.addressable_shards
                ])
            return result
        jax_trainer._distribute_data = record_shards
    else:
        from keras.src.backend.tensorflow.trainer import TensorFlowTrainer
        train_step = TensorFlowTrainer.train_step
        records = []
        def remember(replica, x):
            if recording["on"]:
                records.append((int(replica), np.array(x)))
            return np.int32(0)
        def recording_train_step(self, data):
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            tf.numpy_function(remember, [replica, data[0]], tf.int32, stateful=True)
            return train_step(self, data)
        TensorFlowTrainer.train_step = recording_train_step

    def variable_devices(model):
        value = model.trainable_variables[0].value
        if backend == "jax":
            return sorted(str(d) for d in value.sharding.device_set)
        if isinstance(value, tf.distribute.DistributedValues):
            return sorted(v.device for v in value.values)
        return [value.device]

    def config(name, **overrides):
        return training.TrainConfig.preset("cpu-tiny", **{**tiny, "output_dir": f"{out_dir}/{name}", **overrides})

    def timed(cfg, **kwargs):
        started = time.perf_counter()
        history = training.train(cfg, verbose=0, **kwargs)
        return {key: value for key, value in history.items() if key != "initial_metrics"}, time.perf_counter() - started

    # -- errors -------------------------------------------------------------------
    report["errors"] = {}
    for name, overrides in {"batch": {"batch_size": 6}, "mesh": {"num_devices": 2 * devices}}.items():
        try:
            training.train(config("error", distribution="data-parallel", **overrides), verbose=0)
            report["errors"][name] = None
        except ValueError as error:
            report["errors"][name] = str(error)

    # -- one device, then 4 devices, same config ------------------------------------
    report["one"], report["one_seconds"] = timed(config("one"))
    report["one_variable_devices"] = variable_devices(recording["model"])
    recording["on"] = True
    report["four"], report["four_seconds"] = timed(config("four", distribution="data-parallel"))
    recording["on"] = False
    model = recording["model"]
    report["four_variable_devices"] = variable_devices(model)
    report["state_devices"] = json.load(open(f"{out_dir}/four/state.json"))["devices"]

    # What each device got, next to the global batches the pipeline can make. (Keras
    # fit shuffles the batch order, and its first look at a batch advances the
    # pipeline's epoch, so look among the batches of epochs 0..epochs.)
    dataset = recording["dataset"]
    expected = []
    for epoch in range(tiny["epochs"] + 1):
        for index in range(tiny["steps_per_epoch"]):
            copy = SegmentationDataset.__new__(SegmentationDataset)
            copy.__dict__.update(dataset.__dict__)
            copy.epoch = epoch
            expected.append(copy[index][0])
    if backend == "tensorflow":  # steps run one after another; the replicas of a step in any order
        recording["steps"] = [records[k : k + devices] for k in range(0, len(records), devices)]
    steps = []
    for step in recording["steps"]:
        if backend == "jax":
            rows = {start: (device, data) for device, start, data in step}
        else:
            rows = {replica * (tiny["batch_size"] // devices): (f"replica{replica}", data) for replica, data in step}
        together = np.concatenate([rows[start][1] for start in sorted(rows)])
        steps.append({
            "devices": [rows[start][0] for start in sorted(rows)],
            "rows": [len(rows[start][1]) for start in sorted(rows)],
            # which of the pipeline's global batches (epoch * steps + index) the slices make up, in device order
            # (-1: none of them)
            "global_batch": next((k for k, batch in enumerate(expected) if np.array_equal(together, batch)), -1),
            "distinct_tiles": len({rows[start][1].tobytes() for start in rows}),
        })
    report["steps"] = steps

    # -- the saved model on one device, next to the distributed model -----------------
    x = np.random.default_rng(1).random((devices, tiny["tile_size"], tiny["tile_size"], 1), dtype=np.float32)
    placement = distribute.placement("data-parallel", tiny["batch_size"])
    with placement.fit_scope():
        distributed = model.predict(x, batch_size=devices, verbose=0)
    loaded = keras.saving.load_model(f"{out_dir}/four/model.keras")
    report["loaded_variable_devices"] = variable_devices(loaded)
    one_device = loaded.predict(x, batch_size=1, verbose=0)
    reference = keras.saving.load_model(f"{out_dir}/one/model.keras").predict(x, batch_size=1, verbose=0)
    report["prediction_std"] = float(one_device.std())
    report["loaded_vs_distributed"] = float(np.abs(one_device - distributed).max())
    report["loaded_vs_one_device_run"] = float(np.abs(one_device - reference).max())

    # -- stop after epoch 1, resume (on 4 devices, and on one) -------------------------
    training.train(config("stopped", distribution="data-parallel", epochs=1), verbose=0)
    shutil.copytree(f"{out_dir}/stopped", f"{out_dir}/stopped-copy")
    report["resumed"], _ = timed(config("stopped", distribution="data-parallel"), resume=True)
    report["resumed_variable_devices"] = variable_devices(recording["model"])
    report["resumed_one_device"], _ = timed(config("stopped-copy"), resume=True)
    report["resumed_one_device_variable_devices"] = variable_devices(recording["model"])

    # -- another model in the same process: batch normalisation (more variables) ------
    short = dict(batch_norm=True, validation_folds=1, epochs=1, steps_per_epoch=2)
    report["bn_one"], _ = timed(config("bn-one", **short))
    report["bn_four"], _ = timed(config("bn-four", **short, distribution="data-parallel"))

    print("REPORT" + json.dumps(report))
    """
)


def _run(backend, tmp_path):
    script = tmp_path / "distribution_check.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    if backend == "jax":
        env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={DEVICES}", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, str(script), backend, str(tmp_path), str(DEVICES), json.dumps(TINY)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    line = [line for line in result.stdout.splitlines() if line.startswith("REPORT")][-1]
    return json.loads(line[len("REPORT") :])


_REPORTS: dict[str, dict] = {}


def _report(backend, tmp_path_factory):
    """The script's report for ``backend``, run once per test session."""
    if backend == "jax":
        pytest.importorskip("jax")
    if backend not in _REPORTS:
        report = _run(backend, tmp_path_factory.mktemp(f"distribution-{backend}"))
        one, four = report["one"]["loss"], report["four"]["loss"]
        print(
            f"\n{backend}: 1 device {report['one_seconds']:.1f} s, {DEVICES} devices {report['four_seconds']:.1f} s; "
            f"max |loss difference| {np.abs(np.subtract(one, four)).max():.2e}"
        )
        _REPORTS[backend] = report
    return _REPORTS[backend]


@pytest.fixture(scope="module", params=["jax", "tensorflow"])
def report(request, tmp_path_factory):
    return _report(request.param, tmp_path_factory)


# ----------------------------------------------------------------------------- the same maths


@pytest.mark.slow
def test_four_devices_follow_the_one_device_run(report):
    """Same global batch and seed: the same loss trajectory and held-out scores, to float round-off."""
    one, four = report["one"], report["four"]
    assert four["epoch"] == one["epoch"] == [1, 2]
    assert abs(one["loss"][1] - one["loss"][0]) > 100 * LOSS_ATOL  # the loss moves: agreement means something
    np.testing.assert_allclose(four["loss"], one["loss"], rtol=0, atol=LOSS_ATOL)
    np.testing.assert_allclose(four["val_cross_entropy"], one["val_cross_entropy"], rtol=0, atol=LOSS_ATOL)
    assert four["val_pixel_error"] == pytest.approx(one["val_pixel_error"], abs=1e-6)


@pytest.mark.slow
def test_the_four_device_run_really_uses_four_devices(report):
    """Variables on all 4 devices (the one-device run: on one), recorded in state.json."""
    assert len(report["one_variable_devices"]) == 1
    assert len(set(report["four_variable_devices"])) == DEVICES
    assert len(report["state_devices"]) == DEVICES


@pytest.mark.slow
def test_each_device_gets_its_own_slice_of_every_global_batch(report):
    """Every step: 4 devices, one tile each, all different, together exactly the pipeline's global batch.

    Device k holds rows k*B/N .. (k+1)*B/N - 1 of one of the pipeline's global
    batches. Keras on JAX first looks at one batch to build the optimizer, hence
    one more record there.
    """
    steps = report["steps"]
    n_steps = TINY["epochs"] * TINY["steps_per_epoch"]
    assert len(steps) in (n_steps, n_steps + 1)
    batches = [step["global_batch"] for step in steps]
    assert min(batches) >= 0  # each step's slices, in device order, are exactly a global batch of the pipeline
    assert len(set(batches[-n_steps:])) == n_steps  # a different global batch every step
    for step in steps:
        assert len(set(step["devices"])) == DEVICES
        assert step["rows"] == [TINY["batch_size"] // DEVICES] * DEVICES
        assert step["distinct_tiles"] == DEVICES  # no two devices see the same tile


# ----------------------------------------------------------------------------- saving and resuming


@pytest.mark.slow
def test_the_saved_model_loads_and_predicts_on_one_device(report):
    assert len(report["loaded_variable_devices"]) == 1
    assert report["prediction_std"] > 1e-3  # not a trivially uniform output
    assert report["loaded_vs_distributed"] <= PREDICTION_ATOL
    assert report["loaded_vs_one_device_run"] <= PREDICTION_ATOL


@pytest.mark.slow
def test_a_stopped_data_parallel_run_resumes_as_if_never_stopped(report):
    """Stopped after epoch 1, resumed on 4 devices (and on one): the losses of the uninterrupted run."""
    assert len(set(report["resumed_variable_devices"])) == DEVICES  # the checkpoint went back onto 4 devices
    assert len(report["resumed_one_device_variable_devices"]) == 1
    for resumed in (report["resumed"], report["resumed_one_device"]):
        assert resumed["epoch"] == [1, 2]
        np.testing.assert_allclose(resumed["loss"], report["four"]["loss"], rtol=0, atol=LOSS_ATOL)


@pytest.mark.slow
def test_batch_normalisation_on_four_devices(report):
    """JAX normalises over the global batch (the one-device maths); TensorFlow per replica (documented).

    Also: a second model in the same process trains (TensorFlow needs one
    MirroredStrategy per device set for that, see distribute._mirrored_strategy).
    """
    one, four = report["bn_one"]["loss"], report["bn_four"]["loss"]
    assert len(four) == 1 and np.all(np.isfinite(four))
    if report["backend"] == "jax":
        np.testing.assert_allclose(four, one, rtol=0, atol=LOSS_ATOL)
    else:  # each replica's own statistics of its single tile: 1 and 4 devices agree only statistically
        assert np.abs(np.subtract(four, one)).max() > 1e-3


# ----------------------------------------------------------------------------- bad settings


@pytest.mark.slow
def test_devices_that_cannot_share_the_batch_are_a_clear_error(report):
    message = report["errors"]["batch"]
    assert message is not None and message.startswith(f"batch_size=6 is not divisible by the {DEVICES} devices found (")
    assert f"set batch_size to a multiple of {DEVICES} (e.g. 8)" in message


@pytest.mark.slow
def test_more_devices_than_present_is_a_clear_error(report):
    message = report["errors"]["mesh"]
    assert message is not None
    assert f"num_devices={2 * DEVICES} asks for more devices than the {DEVICES} found (" in message
    assert f"set num_devices to at most {DEVICES}, or to 0" in message


def test_choose_devices_splits_only_what_divides():
    found = [f"gpu:{i}" for i in range(8)]
    assert distribute.choose_devices(found, 16) == tuple(found)
    assert distribute.choose_devices(found, 6, num_devices=2) == ("gpu:0", "gpu:1")
    with pytest.raises(ValueError, match=r"batch_size=6 is not divisible by the 4 devices requested \(num_devices=4\)"):
        distribute.choose_devices(found, 6, num_devices=4)
    with pytest.raises(ValueError, match=r"num_devices=9 asks for more devices than the 8 found \(gpu:0, .*gpu:7\)"):
        distribute.choose_devices(found, 8, num_devices=9)


def test_a_backend_without_a_data_parallel_engine_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(distribute.keras.backend, "backend", lambda: "torch")
    expected = "active Keras backend is 'torch'. Set KERAS_BACKEND=jax or KERAS_BACKEND=tensorflow"
    with pytest.raises(ValueError, match=expected):
        distribute.placement("data-parallel", batch_size=4)
    assert distribute.placement("none").distributed is False  # one device works everywhere


def test_config_accepts_data_parallel_and_rejects_what_cannot_work():
    assert TrainConfig(distribution="data-parallel", num_devices=2).distribution == "data-parallel"
    expected = r"distribution must be one of \('none', 'data-parallel'\), got 'model-parallel'"
    with pytest.raises(ValueError, match=expected):
        TrainConfig(distribution="model-parallel")
    with pytest.raises(ValueError, match="num_devices must be >= 0"):
        TrainConfig(distribution="data-parallel", num_devices=-1)
    with pytest.raises(ValueError, match="num_devices=2 needs distribution='data-parallel'"):
        TrainConfig(num_devices=2)


def test_several_hosts_on_tensorflow_are_refused_with_the_way_out(monkeypatch):
    """MultiWorkerMirroredStrategy fails in Keras 3's fit (keras-team/keras#20585): say so before starting."""
    monkeypatch.setattr(distribute.keras.backend, "backend", lambda: "tensorflow")
    cluster = {"cluster": {"worker": ["host-a:2222", "host-b:2222"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    with pytest.raises(ValueError, match=r"TF_CONFIG lists 2 workers.*keras-team/keras#20585.*KERAS_BACKEND=jax"):
        distribute.placement("data-parallel", batch_size=4)
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not a valid cluster description"):
        distribute.placement("data-parallel", batch_size=4)


# ----------------------------------------------------------------------------- the command line and several hosts

_ENV_JAX = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.mark.slow
def test_the_train_command_takes_distribution_and_num_devices(tmp_path):
    from unet_tutorial.train import add_train_arguments, config_from_args
    import argparse

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    args = parser.parse_args(["--preset", "cpu-tiny", "--distribution", "data-parallel", "--num-devices", "2"])
    config = config_from_args(args)
    assert (config.distribution, config.num_devices) == ("data-parallel", 2)

    pytest.importorskip("jax")
    env = {**os.environ, **_ENV_JAX, "XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES}"}
    command = [
        sys.executable, "-m", "unet_tutorial", "train", "--preset", "cpu-tiny", "--dataset", "circles",
        "--depth", "2", "--base-filters", "4", "--tile-size", "44", "--batch-size", "6",
        "--distribution", "data-parallel", "--output", str(tmp_path / "cli"), "--quiet",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    expected = f"error: batch_size=6 is not divisible by the {DEVICES} devices found (cpu:0, cpu:1, cpu:2, cpu:3)"
    assert expected in result.stderr


HOST_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax
    from unet_tutorial import train as training
    tiny, out_dir = json.loads(sys.argv[1]), sys.argv[2]
    config = training.TrainConfig.preset("cpu-tiny", **tiny, distribution="data-parallel", output_dir=out_dir)
    history = training.train(config, verbose=0)
    print("RESULT" + json.dumps({
        "process": jax.process_index(), "processes": jax.process_count(), "devices": len(jax.devices()),
        "local_devices": len(jax.local_devices()), "loss": history["loss"],
    }))
    """
)


@pytest.mark.slow
def test_two_hosts_with_two_devices_each_follow_the_one_device_run(tmp_path, tmp_path_factory):
    """Two processes (hosts) on loopback, 2 virtual devices each: one 4-device mesh, the one-device losses.

    Each process feeds only its half of every global batch; if both fed the
    same half, the loss would differ from the one-device run's.
    """
    import socket

    reference = _report("jax", tmp_path_factory)["one"]["loss"]
    with socket.socket() as free:
        free.bind(("localhost", 0))
        port = free.getsockname()[1]
    script = tmp_path / "host.py"
    script.write_text(HOST_SCRIPT)
    processes = []
    for index in range(2):
        env = {
            **os.environ, **_ENV_JAX, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
            "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"localhost:{port}", "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
            "KERAS_DISTRIBUTION_PROCESS_ID": str(index),
        }
        processes.append(subprocess.Popen(
            [sys.executable, str(script), json.dumps(TINY), str(tmp_path / "run")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    results = []
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=400)
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            raise
        assert process.returncode == 0, stderr[-4000:]
        results.append(json.loads([line for line in stdout.splitlines() if line.startswith("RESULT")][-1][6:]))
    assert sorted(result["process"] for result in results) == [0, 1]
    for result in results:
        assert (result["processes"], result["devices"], result["local_devices"]) == (2, DEVICES, 2)
        np.testing.assert_allclose(result["loss"], reference, rtol=0, atol=LOSS_ATOL)
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert len(state["devices"]) == DEVICES and state["epoch"] == TINY["epochs"]
    saved = sorted(path.name for path in (tmp_path / "run").glob("*.keras"))
    assert saved == ["checkpoint-epoch0002.keras", "model.keras"]  # written once, by the chief
