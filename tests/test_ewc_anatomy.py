"""evaluation/ewc_anatomy.py: per group of generator weights, the movement over a task, the
Fisher's share and the EWC penalty, on tiny EWC and SFT runs."""

import numpy as np
import pytest
import tensorflow as tf
from tiny_run import train_two_tasks

from mergan_tf import losses, snapshots
from mergan_tf.evaluation import ewc_anatomy as ea


def test_top_fraction_by_hand():
    # Largest first 4, 7, 9, 10: 90% of 10 is reached by the third of four entries.
    assert ea._top_fraction(np.array([1.0, 4.0, 2.0, 3.0]), 0.9) == 75.0
    assert ea._top_fraction(np.array([0.0, 10.0, 0.0, 0.0]), 0.9) == 25.0
    assert ea._top_fraction(np.zeros(3), 0.9) is None


@pytest.fixture(scope="module")
def ewc_run(mnist_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ewc_anatomy")
    train_two_tasks("ewc", mnist_data, run_dir)
    return str(run_dir)


def test_ewc_anatomy_of_task_2(ewc_run):
    a = ea.task_anatomy(ewc_run)
    assert (a.task, a.method, a.earlier_classes, a.new_classes) == (2, "ewc", [0], [1])
    cfg = snapshots.load_run_config(ewc_run)
    assert a.ewc_lambda == cfg.method.ewc_lambda
    shared, earlier, new = (a.groups[g] for g in ea.GROUPS)
    # Task 2 trains class 1 only: class 0's batch-norm rows get no gradient and stay put,
    # and the Fisher (of class-0 samples, after task 1) is zero on class 1's rows.
    assert earlier.moved == 0.0 and earlier.size == new.size > 0
    assert new.moved > 0 and new.fisher_share == 0.0 and new.penalty == 0.0
    assert shared.moved > 0 and shared.fisher_share > 0
    assert shared.fisher_share + earlier.fisher_share == pytest.approx(100.0)
    # The groups' penalties add up to losses.ewc_penalty over the whole generator, and the
    # shared group's movement is that of the non-batch-norm weights.
    before, _ = snapshots.load_generator(ewc_run, 1)
    after, _ = snapshots.load_generator(ewc_run, 2)
    fisher = [tf.Variable(tf.zeros_like(v)) for v in before.trainable_variables]
    anchor = [tf.Variable(tf.zeros_like(v)) for v in before.trainable_variables]
    snapshots.restore_into(ewc_run, 1, ewc_fisher=fisher, ewc_anchor=anchor)
    want = float(losses.ewc_penalty(after.trainable_variables, anchor, fisher, a.ewc_lambda))
    assert sum(g.penalty for g in a.groups.values()) == pytest.approx(want, rel=1e-4)
    pairs = [(w.numpy(), b.numpy()) for w, b in zip(after.trainable_variables,
                                                    before.trainable_variables)
             if not w.path.endswith(("gamma", "beta"))]
    moved = np.sqrt(sum(np.sum((w - b) ** 2) for w, b in pairs) / sum(np.sum(b ** 2) for _, b in pairs))
    assert shared.moved == pytest.approx(moved, rel=1e-5)
    table = ea.format_table([a])
    assert table.count("\n") == 2 and f"{shared.moved:.3f}" in table


def test_sft_run_gets_the_movement_alone_and_task_1_is_refused(mnist_data, tmp_path, ewc_run):
    train_two_tasks("sft", mnist_data, tmp_path)
    a = ea.task_anatomy(str(tmp_path), 2)
    assert a.ewc_lambda is None and a.groups[ea.SHARED].moved > 0
    assert all(g.fisher_share is None and g.penalty is None for g in a.groups.values())
    assert "| - |" in ea.format_table([a])
    with pytest.raises(ValueError, match="snapshots after tasks 0 and 1"):
        ea.task_anatomy(ewc_run, 1)
