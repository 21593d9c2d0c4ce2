"""JT, the joint-training baseline: one task over every class of the sequence."""

import dataclasses
import os

import numpy as np

from mergan_tf import configs, snapshots
from mergan_tf.run_dir import prepare_run_dir
from mergan_tf.trainer import Trainer


def jt_trainer(mnist_data, out_dir, iters=2):
    cfg = configs.preset_config("mnist", "jt")
    assert cfg.train.iters == 40001  # the release's joint schedule
    cfg = configs.validate(cfg.replace(
        classes=(0, 1, 2), out_dir=str(out_dir),
        model=dataclasses.replace(cfg.model, dim=8),
        train=dataclasses.replace(cfg.train, iters=iters)))
    prepare_run_dir(cfg)
    return Trainer(cfg, mnist_data)


def test_jt_is_one_task_with_every_class(mnist_data, tmp_path):
    trainer = jt_trainer(mnist_data, tmp_path)
    assert trainer.tasks == [(0, 1, 2)]
    task = trainer.start_task(0)
    reals, labels = next(task.batches)
    assert set(np.unique(labels.numpy())) == {0, 1, 2}  # real batches mix the classes
    seen = set()
    for _ in range(5):
        _, fake_labels = trainer.steps.fake_batch(trainer.tasks[0])
        seen |= set(np.unique(fake_labels.numpy()))
    assert seen == {0, 1, 2}  # fake labels cover every learned class
    trainer.log.close()


def test_jt_end_to_end_writes_one_snapshot_after_all_classes(mnist_data, tmp_path):
    trainer = jt_trainer(mnist_data, tmp_path)
    trainer.train()
    assert snapshots.list_snapshots(str(tmp_path)) == [3]
    info = snapshots.read_snapshot_info(str(tmp_path), 3)
    assert info["classes"] == [0, 1, 2] and info["method"] == "jt"
    names = set(os.listdir(tmp_path / "samples"))
    assert {f"Task_3_Iter_1_{c}.png" for c in (0, 1, 2)} <= names
    assert "samples_groundtruth_0_1_2.png" in names
    assert int(trainer.g_opt.iterations.numpy()) == 1
