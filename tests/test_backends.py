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
    mode, model_path, out_path = sys.argv[1:4]
    x = np.random.default_rng(7).random((2, 92, 92, 1), dtype=np.float32)
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


def _run(backend, *args, tmp_path):
    script = tmp_path / "backend_check.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, str(script), *map(str, args)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == backend
    return np.load(args[2])


@pytest.mark.slow
@pytest.mark.parametrize("first,second", [("tensorflow", "jax"), ("jax", "tensorflow")])
def test_weights_agree_across_backends(tmp_path, first, second):
    pytest.importorskip("jax")
    model_path = tmp_path / f"from_{first}.keras"
    out_first = _run(first, "create", model_path, tmp_path / "a.npy", tmp_path=tmp_path)
    out_second = _run(second, "load", model_path, tmp_path / "b.npy", tmp_path=tmp_path)
    assert out_first.shape == (2, 52, 52, 2)
    # Probabilities are not trivially uniform, so agreement means something.
    assert out_first.std() > 1e-3
    np.testing.assert_allclose(out_second, out_first, rtol=1e-4, atol=1e-5)
