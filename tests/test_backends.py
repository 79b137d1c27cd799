"""The same weights give the same outputs on TensorFlow and on JAX (CPU).

The lent GPU machine has JAX and no TensorFlow, so this keeps the GPU path
honest: a model saved as .keras on one backend loads and predicts alike on the
other. Each backend runs in its own process (Keras picks its backend at import).
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np, keras
    from unet_tutorial import build_unet
    x = np.random.default_rng(7).random((2, 92, 92, 1), dtype=np.float32)
    # arguments: pairs of (create|load, model path, output path), done in order
    for mode, model_path, out_path in zip(*[iter(sys.argv[1:])] * 3):
        if mode == "create":
            keras.utils.set_random_seed(3)
            model = build_unet((None, None, 1), base_filters=8, depth=3)
            model.save(model_path)
        else:
            model = keras.saving.load_model(model_path)
        np.save(out_path, np.asarray(model(x, training=False)))
    print(keras.backend.backend())
    """
)


def _run(backend, *steps, tmp_path):
    """Run (mode, model path, output path) steps in one process of ``backend``; return the outputs."""
    script = tmp_path / "backend_check.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    arguments = [str(value) for step in steps for value in step]
    result = subprocess.run([sys.executable, str(script), *arguments], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == backend
    return [np.load(out_path) for _, _, out_path in steps]


@pytest.mark.slow
def test_weights_agree_across_backends(tmp_path):
    """A model made on TensorFlow predicts alike on JAX, and one made on JAX alike on TensorFlow.

    Three processes: TensorFlow makes model A; JAX loads A and makes model B;
    TensorFlow loads B (each backend start costs seconds, so no more than needed).
    """
    pytest.importorskip("jax")
    from_tf, from_jax = tmp_path / "from_tensorflow.keras", tmp_path / "from_jax.keras"
    [a_on_tf] = _run("tensorflow", ("create", from_tf, tmp_path / "a_tf.npy"), tmp_path=tmp_path)
    a_on_jax, b_on_jax = _run("jax", ("load", from_tf, tmp_path / "a_jax.npy"),
                              ("create", from_jax, tmp_path / "b_jax.npy"), tmp_path=tmp_path)
    [b_on_tf] = _run("tensorflow", ("load", from_jax, tmp_path / "b_tf.npy"), tmp_path=tmp_path)
    for made, loaded in ((a_on_tf, a_on_jax), (b_on_jax, b_on_tf)):
        assert made.shape == (2, 52, 52, 2)
        assert made.std() > 1e-3  # probabilities are not trivially uniform, so agreement means something
        np.testing.assert_allclose(loaded, made, rtol=1e-4, atol=1e-5)
