"""Flags -> configuration, and the command line's dry run and errors."""

import json
import os
import subprocess
import sys
import types

import pytest

from mergan_tf import cli, configs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAG_DEFAULTS = dict(dataset="mnist", method="sft", iters=None, tasks=None, classes=None,
                     ra_factor=None, data_dir=None, data_source="auto", out_dir=None, seed=0,
                     sample_every=None, checkpoint_every=None, log_every=None, batch_size=None,
                     model_dim=None, acgan_scale=None, eval_every=None,
                     evaluator_dir=None, min_evaluator_accuracy=None, ewc_lambda=None,
                     ewc_samples=None, ewc_accumulate=None, export=None)


def test_resume_needs_an_existing_run(tmp_path):
    proc = run_script("--resume", "--out_dir", str(tmp_path / "nothing"))
    assert proc.returncode != 0 and "cannot resume" in proc.stderr and "config.json" in proc.stderr


def resolve(**overrides):
    return cli.config_from_flags(types.SimpleNamespace(**{**FLAG_DEFAULTS, **overrides}))


def test_presets_reproduce_the_release():
    mnist = resolve(dataset="mnist", method="ra")
    assert (mnist.train.iters, mnist.method.ra_factor, mnist.model.channels) == (4001, 1e-3, 1)
    svhn = resolve(dataset="svhn", method="ra")
    assert (svhn.train.iters, svhn.method.ra_factor, svhn.model.channels) == (8001, 1e-2, 3)
    assert mnist.classes == tuple(range(10))
    t = mnist.train
    assert (t.batch_size, t.critic_iters, t.gp_weight, t.learning_rate, t.beta1, t.beta2) == (
        64, 5, 10.0, 1e-4, 0.0, 0.9)
    assert (mnist.output.sample_every, mnist.output.checkpoint_every) == (200, 4000)


def test_overrides():
    cfg = resolve(tasks=3, classes=["3", "1", "4", "5"], iters=7, ra_factor=0.5, sample_every=3)
    assert cfg.classes == (3, 1, 4)
    assert (cfg.train.iters, cfg.method.ra_factor, cfg.output.sample_every) == (7, 0.5, 3)


@pytest.mark.parametrize("overrides,message", [
    (dict(iters=0), "--iters must be at least 1"),
    (dict(tasks=0), "--tasks must be at least 1"),
    (dict(tasks=11), "exceeds the 10 tasks"),
    (dict(classes=["1", "1"]), "repeats a class"),
    (dict(classes=["12"]), "outside the dataset's labels"),
    (dict(classes=["a"]), "comma-separated integers"),
    (dict(dataset="imagenet"), "unknown dataset"),
    (dict(sample_every=0), "--sample_every"),
])
def test_invalid_values_get_clear_errors(overrides, message):
    with pytest.raises(configs.ConfigError, match=message):
        resolve(**overrides)


def test_config_json_round_trip():
    cfg = resolve(method="jtr", tasks=2)
    assert configs.RunConfig.from_dict(json.loads(cfg.to_json())) == cfg


def run_script(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "run_sequential.py"), *args],
                          capture_output=True, text=True, timeout=120)


def test_dry_run_prints_the_resolved_config(tmp_path):
    out = tmp_path / "run"
    proc = run_script("--dataset", "svhn", "--method", "ra", "--tasks", "2", "--dry_run",
                      "--out_dir", str(out))
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert cfg["classes"] == [0, 1] and cfg["method"]["ra_factor"] == 0.01
    assert not out.exists()


def test_bad_flag_value_is_a_usage_error():
    proc = run_script("--dataset", "mnist", "--iters", "-3", "--dry_run")
    assert proc.returncode != 0
    assert "--iters must be at least 1" in proc.stderr
    proc = run_script("--method", "magic", "--dry_run")
    assert proc.returncode != 0 and "magic" in proc.stderr
