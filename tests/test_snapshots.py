"""mergan_tf.snapshots on its own: write, list, restore, and the errors of a missing or
mismatched snapshot."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from mergan_tf import configs, snapshots
from mergan_tf.models import factory


def tiny_run_config(out_dir, dim=4):
    cfg = configs.preset_config("mnist", "ra")
    return configs.validate(cfg.replace(out_dir=str(out_dir),
                                        model=dataclasses.replace(cfg.model, dim=dim)))


def built_generator(cfg):
    generator, _ = factory.build_models(cfg)
    generator(tf.zeros([2, cfg.model.z_dim]), tf.zeros([2], tf.int32))
    return generator


def test_write_list_restore_round_trip(tmp_path):
    run = str(tmp_path)
    assert snapshots.list_snapshots(run) == []
    step = tf.Variable(7, dtype=tf.int64)
    info = {"task": 2, "classes": [0, 1], "method": "ra"}
    path = snapshots.write_snapshot(run, 2, {"step": step}, info)
    assert path == snapshots.snapshot_dir(run, 2) == os.path.join(run, "snapshots", "task_02")
    assert sorted(os.listdir(os.path.join(run, "snapshots"))) == ["task_02"]  # no .tmp left
    snapshots.write_snapshot(run, 1, {"step": tf.Variable(3, dtype=tf.int64)},
                             {"task": 1, "classes": [0]})
    os.makedirs(os.path.join(run, "snapshots", "task_03"))  # incomplete: no snapshot.json
    assert snapshots.list_snapshots(run) == [1, 2]
    restored = tf.Variable(0, dtype=tf.int64)
    assert snapshots.restore_into(run, 2, step=restored) == info
    assert int(restored.numpy()) == 7
    assert snapshots.read_snapshot_info(run, 2) == info
    # Writing again replaces the snapshot whole.
    snapshots.write_snapshot(run, 2, {"step": tf.Variable(9, dtype=tf.int64)},
                             {"task": 2, "classes": [0, 1]})
    snapshots.restore_into(run, 2, step=restored)
    assert int(restored.numpy()) == 9 and snapshots.read_snapshot_info(run, 2) == {"task": 2, "classes": [0, 1]}


def test_generator_round_trip_through_the_run_config(tmp_path):
    cfg = tiny_run_config(tmp_path)
    with open(tmp_path / "config.json", "w") as f:
        f.write(cfg.to_json())
    assert snapshots.load_run_config(str(tmp_path)) == cfg
    generator = built_generator(cfg)
    snapshots.write_snapshot(str(tmp_path), 1, {"generator": generator},
                             {"task": 1, "classes": [0], "dataset": "mnist"})
    loaded, info = snapshots.load_generator(str(tmp_path), 1)
    assert info == {"task": 1, "classes": [0], "dataset": "mnist"}
    z, labels = tf.random.stateless_normal([4, cfg.model.z_dim], [1, 2]), tf.constant([0, 0, 1, 1])
    np.testing.assert_array_equal(loaded(z, labels, num_groups=2).numpy(),
                                  generator(z, labels, num_groups=2).numpy())


def test_missing_snapshot_names_what_exists(tmp_path):
    run = str(tmp_path)
    snapshots.write_snapshot(run, 1, {"step": tf.Variable(1)}, {"task": 1, "classes": [0]})
    with pytest.raises(snapshots.SnapshotError,
                       match=r"no snapshot after task 3 .* present: \[1\]"):
        snapshots.restore_into(run, 3, step=tf.Variable(0))
    with pytest.raises(snapshots.SnapshotError, match="numbered from 1"):
        snapshots.read_snapshot_info(run, 0)
    with pytest.raises(snapshots.SnapshotError, match="config.json is missing"):
        snapshots.load_run_config(run)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(snapshots.SnapshotError, match="cannot read the run configuration"):
        snapshots.load_run_config(run)


def test_snapshot_of_another_model_size_does_not_fit(tmp_path):
    cfg = tiny_run_config(tmp_path, dim=4)
    (tmp_path / "config.json").write_text(cfg.to_json())
    snapshots.write_snapshot(str(tmp_path), 1, {"generator": built_generator(cfg)},
                             {"task": 1, "classes": [0]})
    wider = built_generator(tiny_run_config(tmp_path, dim=8))
    with pytest.raises(snapshots.SnapshotError, match="does not fit the model.*model_dim 4"):
        snapshots.restore_into(str(tmp_path), 1, generator=wider)
    other = json.loads(cfg.to_json())
    other["data"]["dataset"] = "fashion_mnist"
    (tmp_path / "config.json").write_text(json.dumps(other))
    snapshots.write_snapshot(str(tmp_path), 1, {"generator": built_generator(cfg)},
                             {"task": 1, "classes": [0], "dataset": "mnist"})
    with pytest.raises(snapshots.SnapshotError, match="trained on 'mnist'"):
        snapshots.load_generator(str(tmp_path), 1)
