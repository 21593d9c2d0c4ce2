"""Run-level evaluation: test mode on snapshots, forgetting monitor, figures, Table 1 tools."""

import dataclasses
import json
import os

import numpy as np
import pytest

from mergan_tf import configs, snapshots
from mergan_tf.evaluation import classifiers, monitor, plots, protocol, table1
from mergan_tf.run_dir import prepare_run_dir
from mergan_tf.trainer import Trainer


@pytest.fixture(scope="module")
def evaluator_dir(mnist_data, tmp_path_factory):
    """A quickly trained MLP evaluator (one epoch on 4,000 images), stored like the real one."""
    directory = str(tmp_path_factory.mktemp("evaluator"))
    x, y = mnist_data.train_images[:4000], mnist_data.train_labels[:4000]
    model = classifiers.fit_classifier(x, y, "mlp", epochs=1, seed=0)
    acc = classifiers.evaluate_classifier(model, mnist_data.test_images, mnist_data.test_labels)
    classifiers.save_classifier(model, directory, {"arch": "mlp", "dataset": "mnist", "test_accuracy": acc})
    return directory


@pytest.fixture(scope="module")
def run_dir(mnist_data, mnist_dir, evaluator_dir, tmp_path_factory):
    """A 2-task SFT run with the forgetting monitor every iteration."""
    out = str(tmp_path_factory.mktemp("run"))
    cfg = configs.preset_config("mnist", "sft")
    cfg = configs.validate(cfg.replace(
        classes=(0, 1), out_dir=out, data=dataclasses.replace(cfg.data, data_dir=mnist_dir),
        train=dataclasses.replace(cfg.train, iters=3),
        output=dataclasses.replace(cfg.output, eval_every=1, evaluator_dir=evaluator_dir,
                                   eval_samples_per_class=32, evaluator_min_accuracy=0.0)))
    prepare_run_dir(cfg)
    Trainer(cfg, mnist_data, monitor=monitor.forgetting_monitor(cfg)).train()
    return out


def test_evaluate_run_writes_json_and_markdown(run_dir, evaluator_dir):
    results = protocol.evaluate_run(run_dir, classifier_dir=evaluator_dir, min_accuracy=0, batches=2)
    assert list(results["tasks"]) == ["2"]  # neither 5 nor 10 exists: the last snapshot
    acc = results["tasks"]["2"]["accuracy"]
    per_class = [acc["per_class"][c] for c in (0, 1)]
    assert all(0 <= a <= 100 for a in per_class)
    assert acc["mean"] == pytest.approx(np.mean(per_class))
    with open(os.path.join(run_dir, "eval.json")) as f:
        on_disk = json.load(f)
    assert on_disk["tasks"]["2"]["accuracy"]["mean"] == pytest.approx(acc["mean"])
    md = open(os.path.join(run_dir, "eval.md")).read()
    assert f"real test accuracy {results['evaluator']['test_accuracy']:.2f}%" in md
    assert "## After task 2" in md


def test_evaluate_run_reverse_accuracy_and_fid(run_dir, evaluator_dir, mnist_data):
    r = protocol.evaluate_run(run_dir, after_tasks=[1, 2], classifier_dir=evaluator_dir,
                              min_accuracy=0, batches=1, reverse_per_class=64, reverse_epochs=1,
                              fid_per_class_n=64, real=mnist_data)
    assert set(r["tasks"]) == {"1", "2"}
    t2 = r["tasks"]["2"]
    assert 0 <= t2["reverse_accuracy"] <= 100
    assert set(t2["fid_evaluator_features"]["per_class"]) == {0, 1}
    assert t2["fid_evaluator_features"]["all"] > 0


def test_choose_after_tasks(run_dir, tmp_path):
    assert protocol.choose_after_tasks(run_dir) == [2]
    assert protocol.choose_after_tasks(run_dir, [1]) == [1]
    with pytest.raises(snapshots.SnapshotError, match=r"task\(s\) \[5\]"):
        protocol.choose_after_tasks(run_dir, [5])
    with pytest.raises(snapshots.SnapshotError, match="no task snapshot"):
        protocol.choose_after_tasks(str(tmp_path))


def test_evaluator_below_the_floor_is_refused(run_dir, evaluator_dir, tmp_path):
    weak = str(tmp_path / "weak")
    model, _ = classifiers.load_classifier(evaluator_dir, min_accuracy=0)
    classifiers.save_classifier(model, weak, {"arch": "mlp", "dataset": "mnist", "test_accuracy": 60.0})
    with pytest.raises(classifiers.EvaluatorError, match="60.00%"):
        protocol.evaluate_run(run_dir, classifier_dir=weak, batches=1)
    with pytest.raises(classifiers.EvaluatorError, match="train_classifier.py"):
        protocol.evaluate_run(run_dir, classifier_dir=str(tmp_path / "none"), batches=1)


def test_forgetting_csv_covers_learned_classes_and_plots(run_dir, tmp_path):
    rows = monitor.read_forgetting_csv(run_dir)
    assert {r["class"] for r in rows if r["task"] == 1} == {0}
    assert {r["class"] for r in rows if r["task"] == 2} == {0, 1}
    assert len([r for r in rows if r["task"] == 2]) == 2 * 3  # every iteration, both classes
    out = plots.plot_forgetting([run_dir, run_dir], str(tmp_path / "f.png"))
    from PIL import Image
    assert Image.open(out).size[0] > Image.open(out).size[1]  # two panels side by side


def test_monitor_accuracy_of_a_perfect_stand_in(evaluator_dir, mnist_data):
    """The monitor's accuracy equals the evaluator's accuracy on the images it is given."""
    model, _ = classifiers.load_classifier(evaluator_dir, min_accuracy=0)
    images = {c: mnist_data.test_images[mnist_data.test_labels == c][:32] for c in (3, 7)}
    mon = monitor.ForgettingMonitor(model, "/nonexistent", samples_per_class=32)
    got = mon.measure(lambda z, labels: images[int(labels[0])].astype(np.float32) / 127.5 - 1, [3, 7])
    for c in (3, 7):
        expected = 100 * np.mean(classifiers.predict_labels(model, images[c]) == c)
        assert got[c] == pytest.approx(expected)


def test_tsne_plot(run_dir, evaluator_dir, mnist_data, tmp_path):
    model, _ = classifiers.load_classifier(evaluator_dir, min_accuracy=0)
    real = mnist_data.test_images[mnist_data.test_labels == 0]
    out = plots.plot_tsne([run_dir], 0, real, model, str(tmp_path / "t.png"), n=40)
    assert os.path.getsize(out) > 1000
    with pytest.raises(ValueError, match="class 5 is not learned"):
        plots.plot_tsne([run_dir], 5, real, model, str(tmp_path / "t.png"), n=40)


def test_table1_helpers(run_dir, tmp_path):
    results = {"sft": {"mean": 20.0, "evaluator": {"arch": "mlp", "test_accuracy": 98.1}},
               "ra": {"mean": 95.5, "evaluator": {"arch": "mlp", "test_accuracy": 98.1}}}
    md = table1.markdown_table(results, "mnist", 5, 300)
    assert "| this run | 20.00 | 95.50 |" in md and "| paper (Table 1) | 19.87 | 98.19 |" in md
    assert table1.result_line(results) == "RESULT sft=20.00,ra=95.50"
    # A finished run with the same training settings is recognised, whatever its outputs.
    saved = snapshots.load_run_config(run_dir)
    assert table1.is_finished(saved.replace(output=configs.OutputConfig()))
    assert not table1.is_finished(saved.replace(seed=saved.seed + 1))
    # A float32 run is not taken for a bf16 one (nor the reverse).
    bf16 = saved.replace(train=dataclasses.replace(saved.train, mixed_precision="bf16"))
    assert not table1.is_finished(bf16)
    assert "bf16 matmuls" in table1.markdown_table(results, "mnist", 5, 300, "bf16")
    assert "matmuls" not in md


def test_table1_method_config_carries_precision():
    cfg = table1.method_config("mnist", "ra", 5, 2000, "runs/x", "data", 0, "bf16", eval_every=100)
    assert (cfg.train.mixed_precision, cfg.train.iters, cfg.classes) == ("bf16", 2000, (0, 1, 2, 3, 4))
    assert cfg.output.eval_every == 100 and cfg.out_dir == os.path.join("runs/x", "ra")
    assert table1.method_config("mnist", "jt", 5, 2000, "r", None).train.mixed_precision == "none"
    with pytest.raises(configs.ConfigError, match="mixed_precision"):
        table1.method_config("mnist", "ra", 5, 10, "r", None, mixed_precision="fp8")
