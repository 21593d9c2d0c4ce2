"""Flags -> configuration, and the command line's dry run and errors."""

import json
import os
import re
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


TUNABLE = {  # flag -> (value, its config field)
    "learning_rate": (2e-4, "train.learning_rate"), "beta1": (0.5, "train.beta1"),
    "beta2": (0.99, "train.beta2"), "gp_weight": (5.0, "train.gp_weight"),
    "critic_iters": (3, "train.critic_iters"), "z_dim": (64, "model.z_dim"),
    "deconv": ("subpixel", "model.deconv"), "kernels": ("tf", "model.kernels"),
    "acgan_scale_g": (0.5, "train.acgan_scale_g"),
    "dgr_solver_lr": (3e-4, "method.dgr_solver_lr"),
    "eval_samples": (32, "output.eval_samples_per_class"),
}


def field(cfg, dotted):
    for name in dotted.split("."):
        cfg = getattr(cfg, name)
    return cfg


def test_every_tunable_flag_sets_its_field_and_only_it():
    base = resolve()
    for flag, (value, dotted) in TUNABLE.items():
        cfg = resolve(**{flag: value})
        assert field(cfg, dotted) == value != field(base, dotted), flag
        changed = {k for k, v in cfg.to_dict().items() if v != base.to_dict()[k]}
        assert changed == {dotted.split(".")[0]}, (flag, changed)
    # --acgan_scale sets both AC weights; --acgan_scale_g then the generator's alone
    both = resolve(acgan_scale=0.0, acgan_scale_g=2.0).train
    assert (both.acgan_scale, both.acgan_scale_g) == (0.0, 2.0)
    assert resolve(acgan_scale=0.0).train.acgan_scale_g == 0.0


@pytest.mark.parametrize("overrides,message", [
    (dict(learning_rate=0.0), r"--learning_rate must be a finite number in \(0, inf\), got 0.0"),
    (dict(learning_rate=float("nan")), "--learning_rate must be a finite number"),
    (dict(beta1=1.5), r"--beta1 must be a finite number in \[0, 1\], got 1.5"),
    (dict(beta2=-0.1), "--beta2 must be a finite number"),
    (dict(gp_weight=float("inf")), "--gp_weight must be a finite number"),
    (dict(z_dim=0), "--z_dim must be at least 1, got 0"),
    (dict(critic_iters=0), "--critic_iters must be at least 1"),
    (dict(eval_samples=0), "--eval_samples must be at least 1, got 0"),
    (dict(dgr_solver_lr=-1.0), "--dgr_solver_lr must be a finite number"),
])
def test_tunable_flags_are_validated(overrides, message):
    with pytest.raises(configs.ConfigError, match=message):
        resolve(**overrides)


def test_tunable_flags_that_contradict_a_saved_run_are_refused_on_resume():
    saved = resolve(learning_rate=2e-4)
    flags = types.SimpleNamespace(out_dir="RUN", learning_rate=1e-4)
    with pytest.raises(configs.ConfigError, match="--learning_rate 0.0001 contradicts the run in "
                                                  "RUN, which was started with "
                                                  "train.learning_rate = 0.0002"):
        cli.check_resume_flags(flags, saved)
    cli.check_resume_flags(types.SimpleNamespace(out_dir="RUN", learning_rate=2e-4), saved)


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


def test_train_help_groups_every_run_flag_with_its_preset_defaults():
    defined = subprocess.run(
        [sys.executable, "-c", "from absl import flags; from mergan_tf import cli; "
         "cli.define_flags(); print(' '.join(f.name for f in "
         "flags.FLAGS.get_flags_for_module('mergan_tf.cli')))"],
        capture_output=True, text=True, timeout=300, check=True).stdout.split()
    grouped = [name for _, names in cli.FLAG_GROUPS for name in names]
    assert sorted(grouped) == sorted(defined) and len(set(grouped)) == len(grouped)
    proc = run_script("--help")
    text = proc.stdout
    positions = [text.index(f"\n{group}:\n") for group, _ in cli.FLAG_GROUPS]
    assert positions == sorted(positions), "groups out of order"
    for (group, names), start, end in zip(cli.FLAG_GROUPS, positions, positions[1:] + [len(text)]):
        section = text[start:end]
        for name in names:
            assert re.search(rf"^  --(\[no\])?{name}: ", section, re.M), (group, name)
    flat = " ".join(text.split())  # (help lines are wrapped)
    assert ("--iters: Outer iterations per task (preset: 4001 MNIST, 8001 SVHN). (default: 4001 "
            "(svhn, cifar10: 8001; lsun: 20001); with --method jt: 40001 (svhn, cifar10, lsun: "
            "80001))") in flat
    assert "(default: 0.001 (svhn, cifar10: 0.01))" in flat  # --ra_factor
    assert "--model_dim: Width DIM of the models" in flat and "(default: 32 (lsun: 64))" in flat
    assert "(default: 0..9 (lsun: 0..3))" in flat  # --classes
    assert "Try --helpfull" in text and text.count("--iters: ") == 1  # no second listing


def test_preset_defaults_follow_the_presets():
    for dataset in configs.PRESETS:
        cfg = configs.preset_config(dataset, "sft")
        assert f"{cfg.train.iters}" in cli.preset_defaults("iters")
        assert f"{cfg.model.dim}" in cli.preset_defaults("model_dim")
    assert cli.preset_defaults("batch_size") == "64"
