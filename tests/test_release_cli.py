"""The release-compatibility commands in fresh processes: a release-format GAN checkpoint
made here is imported (scripts/import_release.py), sampled from its export
(scripts/sample.py) and scored with a release-format MNIST evaluator
(scripts/evaluate.py --evaluator release:PREFIX). Three processes: about 15 s each on a
loaded 2-core machine, most of it importing TensorFlow."""

import json
import os
import subprocess
import sys

import numpy as np

import release_reference as ref
from release_checkpoints import file_digests, random_arrays, save_release_checkpoint
from test_release_evaluators import MNIST_LAYERS, release_weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{script} {args}:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def test_import_sample_and_evaluate_in_fresh_processes(tmp_path):
    arrays = random_arrays(ref.gan32_shapes(4, 1), seed=6, scale=0.5)
    gan = save_release_checkpoint(str(tmp_path / "model" / "WGAN_GP.model1-4000"), arrays)
    evaluator = save_release_checkpoint(str(tmp_path / "pretrain" / "mnist.model-10197"),
                                        release_weights(MNIST_LAYERS, seed=7))
    before = file_digests(gan)
    out = str(tmp_path / "run")
    stdout = run("import_release.py", "--checkpoint", gan, "--dataset", "mnist", "--method", "ra",
                 "--out_dir", out)
    assert f"imported {gan} as task 2" in stdout and file_digests(gan) == before
    samples = str(tmp_path / "samples.npz")
    run("sample.py", "--saved_model", os.path.join(out, "export", "task_02"), "--n", "8",
        "--seed", "1", "--out", samples + "," + str(tmp_path / "grid.png"))
    with np.load(samples) as f:
        images, labels, z = f["images"], f["labels"], f["z"]
    assert sorted(set(labels)) == [0, 1] and os.path.exists(tmp_path / "grid.png")
    p = {k: v.astype(np.float64) for k, v in arrays.items()}
    for c in (0, 1):  # sample.py draws each class as its own batch, as the release
        expected = ref.gan32_generator(p, z[labels == c].astype(np.float64), labels[labels == c], 4, 1)
        expected = np.round((expected.reshape(-1, 32, 32, 1) + 1) * 127.5)
        assert np.abs(images[labels == c].astype(int) - expected).max() <= 1
    stdout = run("evaluate.py", "--run_dir", out, "--evaluator", "release:" + evaluator,
                 "--batches", "2")
    assert "release evaluator" in stdout and evaluator in stdout
    with open(os.path.join(out, "eval.json")) as f:
        result = json.load(f)
    assert result["evaluator"]["kind"] == "release" and set(result["tasks"]) == {"2"}
