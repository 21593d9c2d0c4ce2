"""--strategy: a mirrored run on two logical CPUs equals the one-device run; two local
workers on loopback train under MultiWorkerMirroredStrategy; the chief alone writes.

TensorFlow must see two logical CPU devices before it initialises them, so the mirrored
checks run in a subprocess (`tests/strategy_run.py`), as do the two workers.
"""

import csv
import dataclasses
import json
import os
import socket
import subprocess
import sys
import types

import numpy as np
import pytest

from mergan_tf import cli, configs, distribute

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Tolerances of the mirrored run against the one-device run (see test_mirrored_*): the
# same mathematics in float32, summed in another order.
SCALAR_REL, SCALAR_ABS = 1e-3, 1e-5
WEIGHT_ABS = 2e-5


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _strategy_run(tmp_path_factory, mnist_dir, *args):
    """The helper's results (see tests/strategy_run.py) for METHOD OPTIMIZER [PRECISION]."""
    tmp = tmp_path_factory.mktemp("mirrored")
    out = tmp / "results.npz"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "strategy_run.py"), str(out),
                           str(tmp / "runs"), mnist_dir, *args],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, _tail(proc.stderr)
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory, mnist_dir):
    """The helper's results: unit checks on two replicas, then RA trained for 2 tasks x 3
    iterations with plain gradient steps, on one device and mirrored on two CPUs."""
    return _strategy_run(tmp_path_factory, mnist_dir, "ra", "sgd")


def test_batch_norm_pools_the_statistics_of_every_replica(mirrored):
    # 8 rows split 4 + 4 (in 2 groups: rows 0-1 and 4-5 on replica 0, 2-3 and 6-7 on 1).
    for groups in (1, 2):
        shards = mirrored[f"units|bn{groups}_shards"]
        for kind in ("", "grad_"):
            replicas = mirrored[f"units|bn{groups}_{kind}replicas"]
            if groups == 1:
                joined = np.concatenate(replicas)
            else:
                joined = np.concatenate([replicas[0][:2], replicas[1][:2], replicas[0][2:], replicas[1][2:]])
            # Values and input gradients (through the all-reduced moments) of one device.
            np.testing.assert_allclose(joined, mirrored[f"units|bn{groups}_{kind}one"], atol=1e-5)
        # ...which a replica normalising its own shard would not give.
        local = shards[0][:2] if groups == 2 else shards[0]
        local = (local - local.mean(axis=(0, 1, 2))) / np.sqrt(local.var(axis=(0, 1, 2)) + 1e-5)
        assert not np.allclose(local, mirrored[f"units|bn{groups}_replicas"][0][:len(local)], atol=1e-2)


def test_each_replica_draws_its_own_noise(mirrored):
    noise = mirrored["units|noise"]
    assert noise.shape == (2, 4) and not np.allclose(noise[0], noise[1])


def test_real_batches_are_split_along_the_batch_axis(mirrored):
    # [K=2, B=6] -> replica 0 gets columns 0-2 of both batches, replica 1 columns 3-5.
    shards = mirrored["units|real_shards"]
    np.testing.assert_array_equal(shards, [[[0, 1, 2], [6, 7, 8]], [[3, 4, 5], [9, 10, 11]]])


def test_mirrored_training_matches_one_device(mirrored):
    """RA, 2 tasks x 3 iterations (replay alignment is non-zero at the last one), plain
    gradient steps (lr 1e-3), the same noise on both runs (the global draw, sliced).

    Tolerance: scalars rel 1e-3 (abs 1e-5), weights abs 2e-5. The mathematics is the same:
    batch-norm moments over the global batch, per-replica means averaged, gradients
    averaged. Only float32 summation order differs (two 32-row partial sums and an
    all-reduce instead of one 64-row sum), ~1e-7 relative per reduction; over 16 updates
    the weights differ by at most ~4e-6 and the losses by ~1e-4 relative (the gradient
    penalty, a difference of near-equal terms, is the most sensitive). Plain gradient steps
    are proportional to the gradient, so a wrong loss scale (e.g. summed instead of
    averaged replica gradients) moves the weights by ~1e-3, far outside the tolerance;
    Adam would hide it, being invariant to the gradient's scale.
    """
    scalars = {k[len("none|scalar|"):]: v for k, v in mirrored.items() if k.startswith("none|scalar|")}
    other = {k[len("mirrored|scalar|"):]: v for k, v in mirrored.items() if k.startswith("mirrored|scalar|")}
    assert scalars.keys() == other.keys() and len(scalars) > 40
    for key, value in scalars.items():
        assert float(other[key]) == pytest.approx(float(value), rel=SCALAR_REL, abs=SCALAR_ABS), key
    assert float(scalars["6|loss/gen/replay_alignment"]) > 1e-4  # the replay term is exercised
    weights = [k[len("none|weight|"):] for k in mirrored if k.startswith("none|weight|")]
    assert len(weights) == 14 + 10
    moved = 0.0
    for name in weights:
        np.testing.assert_allclose(mirrored[f"mirrored|weight|{name}"], mirrored[f"none|weight|{name}"],
                                   rtol=0, atol=WEIGHT_ABS, err_msg=name)
        moved = max(moved, float(np.abs(mirrored[f"none|weight|{name}"] - mirrored[f"none|init|{name}"]).max()))
    assert moved > 50 * WEIGHT_ABS  # training moved the weights far more than the tolerance


def test_mirrored_bf16_training_matches_one_device(tmp_path_factory, mnist_dir, mirrored):
    """--mixed_precision bf16 under the strategy: the same RA run as above in bf16, mirrored
    against one device.

    Tolerance: scalars rel 5e-2 (abs 1e-3), weights abs 1e-3 (measured: 9e-3 and 1.1e-4).
    The mathematics is the same as one device's, but a replica's convolutions run on 32
    rows instead of 64, so oneDNN may sum in another order; a float32 difference of 1e-7
    can then round a bf16 activation to its neighbour, up to 2^-7 (0.8%) away, and 16
    updates carry that on. The gradient's scale under the strategy is checked in float32
    above; here the weights move 50x the tolerance (measured 5.4e-2).

    Both bf16 runs follow the float32 runs above (same weights, data and noise): every
    weight within 15% of how far it moved (+1e-4), measured 7%. With two logical devices
    the bias gradients of the fast kernels, summed in bf16, were 40% off on the critic's
    conv2/conv3 (one device: fused, summed in float32); `layers.bias_add` sums in float32.
    """
    results = _strategy_run(tmp_path_factory, mnist_dir, "ra", "sgd", "bf16")
    scalars = {k[len("none|scalar|"):]: v for k, v in results.items() if k.startswith("none|scalar|")}
    other = {k[len("mirrored|scalar|"):]: v for k, v in results.items() if k.startswith("mirrored|scalar|")}
    assert scalars.keys() == other.keys() and len(scalars) > 40
    for key, value in scalars.items():
        assert float(other[key]) == pytest.approx(float(value), rel=5e-2, abs=1e-3), key
    assert float(scalars["6|loss/gen/replay_alignment"]) > 1e-4
    weights = [k[len("none|weight|"):] for k in results if k.startswith("none|weight|")]
    assert len(weights) == 14 + 10
    moved, from_float32 = 0.0, 0.0
    for name in weights:
        np.testing.assert_allclose(results[f"mirrored|weight|{name}"], results[f"none|weight|{name}"],
                                   rtol=0, atol=1e-3, err_msg=name)
        moved = max(moved, float(np.abs(results[f"none|weight|{name}"] - results[f"none|init|{name}"]).max()))
        from_float32 = max(from_float32, float(np.abs(
            results[f"none|weight|{name}"] - mirrored[f"none|weight|{name}"]).max()))
        moved_float32 = float(np.abs(mirrored[f"none|weight|{name}"] - mirrored[f"none|init|{name}"]).max())
        for run in ("none", "mirrored"):
            error = float(np.abs(results[f"{run}|weight|{name}"] - mirrored[f"{run}|weight|{name}"]).max())
            assert error <= 0.15 * (moved_float32 + 1e-4), (run, name, error, moved_float32)
    assert moved > 20 * 1e-3
    assert from_float32 > 1e-5, "the run trained in float32: --mixed_precision bf16 was not applied"


# ------------------------------------------------------------------ configuration
def test_strategy_is_validated_with_a_clear_error():
    cfg = configs.preset_config("mnist", "ra")
    assert cfg.train.strategy == "none"
    with pytest.raises(configs.ConfigError, match="unknown --strategy 'tpu'.*mirrored"):
        configs.validate(cfg.replace(train=dataclasses.replace(cfg.train, strategy="tpu")))
    for method in ("dgr", "ewc"):
        other = configs.preset_config("mnist", method)
        with pytest.raises(configs.ConfigError, match=f"does not support --method {method}"):
            configs.validate(other.replace(train=dataclasses.replace(other.train, strategy="mirrored")))
    with pytest.raises(configs.ConfigError, match="unknown --strategy"):
        distribute.get_strategy("tpu")


def test_strategy_flag_sets_the_config():
    from test_cli import FLAG_DEFAULTS  # tests/ is on sys.path under pytest
    f = types.SimpleNamespace(**{**FLAG_DEFAULTS, "strategy": "mirrored"})
    assert cli.config_from_flags(f).train.strategy == "mirrored"
    assert cli.config_from_flags(types.SimpleNamespace(**FLAG_DEFAULTS)).train.strategy == "none"


def test_batch_shares():
    two = types.SimpleNamespace(num_replicas_in_sync=2)
    assert distribute.replica_batch_size(64, two) == 32
    with pytest.raises(configs.ConfigError, match="--batch_size 63 .* 2 replicas"):
        distribute.replica_batch_size(63, two)
    # Replays of a previous class (release: 64 // t): 21 -> 11 per replica (22 in all).
    assert [distribute.replica_share(n, two) for n in (64, 32, 21, 1)] == [32, 16, 11, 1]


def test_one_device_is_the_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.is_chief(distribute.get_strategy("none"))
    with pytest.raises(configs.ConfigError, match="TF_CONFIG"):
        distribute.get_strategy("multi_worker")


# ------------------------------------------------------------------ two workers
def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_multi_worker_on_loopback(mnist_dir, tmp_path):
    """Two worker processes (one CPU replica each, the batch of 64 split 32 + 32) train RA
    for 2 tasks x 2 iterations (2 critic updates each); the chief (worker 0) writes the run, worker 1 nothing."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    run_dir, worker_tmp = tmp_path / "run", tmp_path / "worker_tmp"
    worker_tmp.mkdir()
    args = [sys.executable, os.path.join(ROOT, "scripts", "run_sequential.py"), "--dataset", "mnist",
            "--data_dir", mnist_dir, "--method", "ra", "--tasks", "2", "--iters", "2",
            "--critic_iters", "2", "--model_dim", "8", "--strategy", "multi_worker", "--out_dir", str(run_dir), "--noexport",
            "--sample_every", "100", "--checkpoint_every", "1"]
    procs, logs = [], [tmp_path / f"worker_{i}.log" for i in range(2)]
    for index in range(2):
        env = dict(os.environ, TMPDIR=str(worker_tmp), TF_CPP_MIN_LOG_LEVEL="2",
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        with open(logs[index], "w") as log:  # a file, not a pipe: a full pipe would block a worker
            procs.append(subprocess.Popen(args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
    try:
        for p in procs:
            p.wait(timeout=600)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, _tail(log.read_text())
    # The chief's run: snapshots, checkpoints, grids, scalars, config (with the strategy).
    assert sorted(os.listdir(run_dir / "snapshots")) == ["task_01", "task_02"]
    assert (run_dir / "snapshots" / "task_02" / "snapshot.json").exists()
    assert os.listdir(run_dir / "checkpoints" / "task_02")
    assert (run_dir / "samples" / "Task_2_Iter_1_0.png").exists()
    assert json.loads((run_dir / "config.json").read_text())["train"]["strategy"] == "multi_worker"
    with open(run_dir / "scalars.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["global_step"] for r in rows} == {"1", "2", "3", "4"}
    assert len([r for r in rows if r["key"] == "loss/critic/total"]) == 4  # one writer, no duplicates
    # Worker 1 wrote only into its temporary directory, removed when it exited.
    assert os.listdir(worker_tmp) == []
    assert sorted(os.listdir(tmp_path)) == ["run", "worker_0.log", "worker_1.log", "worker_tmp"]
