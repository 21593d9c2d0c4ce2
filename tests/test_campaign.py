"""The Table 1 campaign: planned runs, shared first task, states, resume, status."""

import csv
import dataclasses
import os
import shutil

import numpy as np
import pytest

from mergan_tf import configs, snapshots
from mergan_tf.evaluation import table1


def test_joint_iterations_follow_the_release():
    assert table1.joint_iterations("mnist", 10, 4001) == 40001  # joint.py
    assert table1.joint_iterations("mnist", 5, 4001) == 20005
    assert table1.joint_iterations("mnist", 5, 500) == 2500
    assert table1.joint_iterations("svhn", 10, 8001) == 80001


def test_planned_runs_of_a_ten_task_table(tmp_path):
    runs = table1.planned_runs("mnist", ["jt", "sft", "ewc"], 10, 4001, str(tmp_path), None,
                               mixed_precision="bf16", eval_every=200, checkpoint_every=500)
    assert list(runs) == ["jt_5", "jt", "sft", "ewc"]
    assert runs["jt_5"].classes == (0, 1, 2, 3, 4) and runs["jt_5"].train.iters == 20005
    assert runs["jt"].classes == tuple(range(10)) and runs["jt"].train.iters == 40001
    assert runs["sft"].train.iters == 4001 and runs["sft"].out_dir == str(tmp_path / "sft")
    assert all(c.output.eval_every == 200 and c.output.checkpoint_every == 500 and
               c.train.mixed_precision == "bf16" for c in runs.values())
    assert table1.table_columns(10) == [5, 10] and table1.table_columns(3) == [3]
    with pytest.raises(configs.ConfigError, match="unknown method"):
        table1.planned_runs("mnist", ["ewk"], 5, 10, str(tmp_path), None)


def tiny(method, root, tasks=2, **output):
    cfg = table1.method_config("mnist", method, tasks, 3, str(root), None, seed=4, **output)
    return configs.validate(cfg.replace(
        deterministic=True, model=dataclasses.replace(cfg.model, dim=8),
        output=dataclasses.replace(cfg.output, sample_every=100, log_every=1)))


def generator_weights(run_dir, task):
    generator, _ = snapshots.load_generator(run_dir, task)
    return [w.numpy() for w in generator.weights]


def test_forked_run_equals_a_run_trained_from_scratch(tmp_path, mnist_data):
    """RA continued from SFT's task-1 snapshot ends bit-identical to RA trained alone:
    task 1 is the same training for both (op determinism, same seed)."""
    base = tiny("sft", tmp_path / "campaign")
    assert table1.train_run(base, mnist_data) > 0
    forked = tiny("ra", tmp_path / "campaign")
    table1.train_run(forked, mnist_data, base_dir=base.out_dir)
    alone = tiny("ra", tmp_path / "alone")
    table1.train_run(alone, mnist_data)
    for task in (1, 2):
        for a, b in zip(generator_weights(forked.out_dir, task), generator_weights(alone.out_dir, task)):
            np.testing.assert_array_equal(a, b)
    # The fork carries the base's task-1 outputs and logged rows, then its own.
    with open(os.path.join(forked.out_dir, "scalars.csv")) as f:
        rows = list(csv.DictReader(f))
    assert {r["task"] for r in rows} == {"1", "2"}
    assert sorted(set(os.listdir(os.path.join(forked.out_dir, "samples")))) == \
        sorted(set(os.listdir(os.path.join(alone.out_dir, "samples"))))
    assert os.path.isdir(os.path.join(forked.out_dir, "export", "task_01"))
    assert table1.run_state(forked).kind == "finished"
    assert table1.train_run(forked, mnist_data, base_dir=base.out_dir) == 0.0  # reused


def test_ewc_fork_computes_its_own_fisher(tmp_path, mnist_data):
    base = tiny("sft", tmp_path)
    table1.train_run(base, mnist_data)
    ewc = table1.with_method(tiny("ewc", tmp_path), ewc_samples=16)
    trainer = table1.fork_first_task(base.out_dir, ewc, mnist_data)
    assert sum(float(np.abs(f.numpy()).sum()) for f in trainer.method.fisher) > 0
    for a, b in zip(trainer.method.anchor, trainer.generator.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    info = snapshots.read_snapshot_info(ewc.out_dir, 1)
    assert info["method"] == "ewc" and info["global_step"] == 3
    trainer.train(start_from_task=1)
    assert table1.run_state(ewc).kind == "finished"
    # JT and DGR train task 1 differently: no fork.
    with pytest.raises(table1.CampaignError, match="shared only"):
        table1.fork_first_task(base.out_dir, tiny("dgr", tmp_path), mnist_data)


def test_partial_run_resumes_and_status_reports_it(tmp_path, mnist_data):
    cfg = tiny("sft", tmp_path, checkpoint_every=1)
    table1.train_run(cfg, mnist_data)
    # As if stopped during task 2: its snapshot gone, its checkpoints kept.
    shutil.rmtree(os.path.join(cfg.out_dir, "snapshots", "task_02"))
    state = table1.run_state(cfg)
    assert (state.kind, state.task, state.iteration) == ("partial", 2, 2)
    assert table1.remaining_iterations(cfg, state) == 0
    assert table1.remaining_iterations(cfg, table1.RunState("partial", 2, 0)) == 2
    assert table1.remaining_iterations(cfg, table1.RunState("new")) == 6
    jt = tiny("jt", tmp_path)
    status = table1.status_table({"sft": cfg, "jt": jt})
    assert "| sft | partial | 2/2 | 2 |" in status and "| jt | new |" in status
    table1.train_run(cfg, mnist_data)
    assert table1.run_state(cfg).kind == "finished"
    # Another seed in the same directory is refused, naming the difference.
    with pytest.raises(table1.CampaignError, match="seed: 4 != 5"):
        table1.run_state(cfg.replace(seed=5))
    # Not so the fields that do not change what SFT trains: another method's setting (EWC's
    # lambda, whose default changed during the campaign) and how the same function is
    # computed (--kernels). EWC's lambda does change an EWC run.
    other = cfg.replace(method=dataclasses.replace(cfg.method, ewc_lambda=cfg.method.ewc_lambda * 10),
                        model=dataclasses.replace(cfg.model, kernels="tf"))
    assert table1.run_state(other).kind == "finished" and table1.is_finished(other)
    ewc = tiny("ewc", tmp_path)
    os.makedirs(ewc.out_dir)
    with open(os.path.join(ewc.out_dir, "config.json"), "w") as f:
        import json
        json.dump(ewc.to_dict(), f)
    with pytest.raises(table1.CampaignError, match="method.ewc_lambda"):
        table1.run_state(ewc.replace(method=dataclasses.replace(ewc.method, ewc_lambda=1.0)))


def test_ewc_sweep_runs_and_table(tmp_path):
    runs = table1.ewc_sweep_runs("mnist", 3, 1000, str(tmp_path), None, [1e2, 1e9],
                                 mixed_precision="bf16", checkpoint_every=500)
    assert list(runs) == ["sft", "ewc_1e+02", "ewc_1e+09"]
    assert [runs[n].method.ewc_lambda for n in ("ewc_1e+02", "ewc_1e+09")] == [1e2, 1e9]
    assert all(c.classes == (0, 1, 2) and c.train.iters == 1000 and
               c.output.checkpoint_every == 500 for c in runs.values())
    ev = {"arch": "mlp", "test_accuracy": 98.0}
    results = {"sft": {"mean": 100 / 3, "per_class": {"0": 0.0, "1": 0.0, "2": 100.0}, "evaluator": ev},
               "ewc_1e+02": {"mean": 80.0, "per_class": {0: 70.0, 1: 80.0, 2: 90.0}, "evaluator": ev}}
    text = table1.sweep_table(results, runs, 3, 1000)
    assert "| sft | - | 33.33 | 0.00 | 0.00 | 100.00 | 100.00 | 0.00 |" in text
    assert "| ewc_1e+02 | 1e+02 | 80.00 | 70.00 | 80.00 | 90.00 | 90.00 | 75.00 |" in text
    assert text.count("\n|") == 4  # header, rule, two rows


def test_collect_results_of_a_finished_campaign(tmp_path, mnist_data):
    base = tiny("sft", tmp_path / "runs")
    table1.train_run(base, mnist_data)
    jt = tiny("jt", tmp_path / "runs")
    table1.train_run(jt, mnist_data)
    runs = {"jt": jt, "sft": base}
    acc = {"mean": 50.0, "per_class": {0: 40.0, 1: 60.0}, "evaluator": {"arch": "mlp", "test_accuracy": 98.0}}
    results = {2: {"jt": acc, "sft": dict(acc, mean=10.0)}}
    out = tmp_path / "results"
    written = table1.collect_run(base, str(out / "sft"))
    names = sorted(os.listdir(out / "sft"))
    # Not evaluated and no --eval_every: no eval.* nor forgetting.csv to copy.
    assert names == ["config.json", "export_task_02", "figure3.png", "mosaic.png"]
    assert all(os.path.exists(p) for p in written)
    assert os.path.exists(out / "sft" / "export_task_02" / "saved_model.pb")
    # No training state is copied.
    assert not any(n in ("checkpoints", "snapshots") for n in names)
    assert table1.training_seconds(base.out_dir) > 0
    readme = table1.results_readme(results, runs, "mnist", 2, 3, "bf16", "abc1234", ["cmd"])
    assert "| 2, this run | 50.00 | 10.00 |" in readme and "abc1234" in readme
    assert "| jt | jt |" in readme and "| sft | sft |" in readme and "bf16 matmuls" in readme
    assert "evaluated at commit `abc1234`" in readme and "## Notes" not in readme
    noted = table1.results_readme(results, runs, "mnist", 2, 3, "bf16", "abc1234", ["cmd"],
                                  "SFT trained at tag `x`.\n")
    assert noted.startswith(readme.rstrip("\n")) and noted.endswith("## Notes\n\nSFT trained at tag `x`.\n")


def test_training_seconds_leaves_out_pauses(tmp_path):
    import tensorflow as tf
    writer = tf.summary.create_file_writer(str(tmp_path / "tensorboard"))
    with writer.as_default():
        for step in range(3):
            tf.summary.scalar("x", 1.0, step=step)
    writer.close()
    times = [0.0, 5.0, 5.0 + table1.PAUSE_SECONDS + 1]  # the third event after a stop
    events = list(tf.compat.v1.train.summary_iterator(
        str(next((tmp_path / "tensorboard").glob("events*")))))
    logged = [e for e in events if e.summary.value]
    for e, t in zip(logged, times):
        e.wall_time = t
    import unittest.mock as mock
    with mock.patch.object(tf.compat.v1.train, "summary_iterator", lambda path: iter(logged)):
        assert table1.training_seconds(str(tmp_path)) == 5.0


def test_runs_to_train_selects_planned_runs_by_name(tmp_path):
    runs = table1.planned_runs("mnist", ["jt", "sft"], 10, 4001, str(tmp_path), None)
    assert list(table1.runs_to_train(runs, None)) == ["jt_5", "jt", "sft"]
    assert list(table1.runs_to_train(runs, [])) == ["jt_5", "jt", "sft"]
    assert list(table1.runs_to_train(runs, ["jt"])) == ["jt"]
    assert list(table1.runs_to_train(runs, ["sft", "jt_5"])) == ["jt_5", "sft"]
    with pytest.raises(configs.ConfigError, match=r"--runs jt_3: not a run of this campaign; "
                                                  r"its runs are jt_5, jt, sft"):
        table1.runs_to_train(runs, ["jt", "jt_3"])
