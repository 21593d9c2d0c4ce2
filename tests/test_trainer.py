"""End-to-end: tiny runs of every method on the real MNIST subset (2 tasks, 3 iterations)."""

import csv
import dataclasses
import glob
import os

import numpy as np
import pytest

from mergan_tf import configs, snapshots
from mergan_tf.run_dir import prepare_run_dir
from mergan_tf.tasks import should_sample
from mergan_tf.trainer import Trainer

ITERS = 3


def tiny_config(method, out_dir, **train):
    cfg = configs.preset_config("mnist", method)
    return configs.validate(cfg.replace(
        classes=(0, 1), out_dir=str(out_dir),
        train=dataclasses.replace(cfg.train, iters=ITERS, **train),
        output=dataclasses.replace(cfg.output, sample_every=2, checkpoint_every=2, log_every=1)))


def read_scalars(run_dir):
    with open(os.path.join(run_dir, "scalars.csv")) as f:
        return list(csv.DictReader(f))


def weights(model):
    """Weights by path within the model (the model's own name stripped)."""
    return {v.path.split("/", 1)[1]: v.numpy().copy() for v in model.weights}


@pytest.fixture(scope="module", params=["sft", "ra", "jtr"])
def finished_run(request, mnist_data, tmp_path_factory):
    """Trains one method for 2 tasks; records the replay generator when task 2 starts."""
    run_dir = tmp_path_factory.mktemp(request.param)
    cfg = tiny_config(request.param, run_dir)
    prepare_run_dir(cfg)
    trainer = Trainer(cfg, mnist_data)
    seen = {}
    original = trainer.method.before_task

    def recording_before_task(tr, task_index):
        original(tr, task_index)
        seen[task_index] = weights(tr.replay_generator)

    trainer.method.before_task = recording_before_task
    trainer.train()
    return request.param, str(run_dir), trainer, seen


def test_outputs_exist(finished_run):
    _, run_dir, trainer, _ = finished_run
    for name in ("config.json", "fixed_noise.npy", "scalars.csv"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    assert np.load(os.path.join(run_dir, "fixed_noise.npy")).shape == (100, 128)
    assert snapshots.list_snapshots(run_dir) == [1, 2]
    samples = os.path.join(run_dir, "samples")
    for cls in (0, 1):
        assert os.path.exists(os.path.join(samples, f"samples_groundtruth_{cls}.png"))
    # Release schedule with sample_every=2 over iterations 0..2: 0, 1, 2; task 2 has both classes.
    expected = {f"Task_1_Iter_{i}_0.png" for i in (0, 1, 2)}
    expected |= {f"Task_2_Iter_{i}_{c}.png" for i in (0, 1, 2) for c in (0, 1)}
    assert expected <= set(os.listdir(samples))
    assert glob.glob(os.path.join(run_dir, "tensorboard", "events.out.tfevents.*"))
    assert os.listdir(os.path.join(run_dir, "checkpoints", "task_02"))
    for task in (1, 2):  # training exports every finished task as a SavedModel sampler
        assert os.path.exists(os.path.join(run_dir, "export", f"task_{task:02d}", "saved_model.pb"))
    keys = {row["key"] for row in read_scalars(run_dir)}
    assert {"loss/critic/wasserstein", "loss/critic/gp", "loss/critic/ac_real", "loss/gen/wasserstein",
            "loss/gen/ac_fake", "loss/gen/total", "loss/critic/total", "perf/iters_per_sec"} <= keys


def test_grid_png_is_a_10x10_grid_of_32px_digits(finished_run):
    from PIL import Image
    _, run_dir, _, _ = finished_run
    img = Image.open(os.path.join(run_dir, "samples", "Task_2_Iter_2_1.png"))
    assert img.size == (320, 320)


def test_replay_generator_is_frozen_and_equals_the_task1_snapshot(finished_run):
    method, run_dir, trainer, seen = finished_run
    if method == "sft":
        pytest.skip("SFT has no replay generator")
    before, after = seen[1], weights(trainer.replay_generator)
    snap, _ = snapshots.load_generator(run_dir, 1)
    snap_weights, current = weights(snap), weights(trainer.generator)
    assert before.keys() == after.keys() == snap_weights.keys() and len(before) == 14
    for name in before:
        assert np.array_equal(before[name], after[name]), name
        assert np.array_equal(before[name], snap_weights[name]), name
    # ...and the trained generator did move away from it during task 2.
    assert any(not np.array_equal(snap_weights[k], current[k]) for k in current)


def test_method_terms_zero_on_task1_nonzero_on_task2(finished_run):
    method, run_dir, _, _ = finished_run
    rows = read_scalars(run_dir)
    terms = {"ra": ["loss/gen/replay_alignment"], "jtr": ["loss/gen/jtr", "loss/critic/jtr"],
             "sft": []}[method]
    replay_keys = {r["key"] for r in rows if "replay" in r["key"] or "jtr" in r["key"]}
    assert replay_keys == set(terms)
    for key in terms:
        by_task = {1: [], 2: []}
        for r in rows:
            if r["key"] == key:
                by_task[int(r["task"])].append(float(r["value"]))
        assert by_task[1] and all(v == 0.0 for v in by_task[1]), key
        assert by_task[2] and all(v != 0.0 for v in by_task[2]), key


def test_optimizers_are_fresh_at_every_task(finished_run):
    _, _, trainer, _ = finished_run
    # Task 2 alone: ITERS-1 generator updates and 5*ITERS critic updates (not cumulative).
    assert int(trainer.g_opt.iterations.numpy()) == ITERS - 1
    assert int(trainer.d_opt.iterations.numpy()) == 5 * ITERS
    assert int(trainer.global_step.numpy()) == 2 * ITERS


def test_sample_schedule_matches_the_release():
    hits = [i for i in range(1001) if should_sample(i, 200)]
    assert hits == [0, 1, 2, 4, 8, 16, 32, 64, 128, 200, 256, 400, 512, 600, 800, 1000]


def test_existing_run_directory_is_not_overwritten(tmp_path):
    cfg = tiny_config("sft", tmp_path)
    prepare_run_dir(cfg)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileExistsError, match="--overwrite") as e:
        prepare_run_dir(cfg)
    assert "pass --resume to continue it" in str(e.value)
    assert (tmp_path / "config.json").read_text() == "{}"
