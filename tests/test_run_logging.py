"""What a run tells its user while it trains: the configuration in TensorBoard (HParams and
a text summary, also after a resume)."""

import glob
import json
import os

import pytest
import tensorflow as tf
from tensorboard.plugins.hparams import plugin_data_pb2

from mergan_tf import configs, snapshots, trainer


# ------------------------------------------------------------------ TensorBoard

def tensorboard_records(run_dir):
    """[(event file, plugin name, tag, value)] of the run's TensorBoard events."""
    records = []
    for path in sorted(glob.glob(os.path.join(run_dir, "tensorboard", "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                records.append((path, value.metadata.plugin_data.plugin_name, value.tag, value))
    return records


def session_hparams(records):
    """{event file: {name: value}} of every HParams session start."""
    sessions = {}
    for path, plugin, _, value in records:
        if plugin != "hparams":
            continue
        data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
        if data.HasField("session_start_info"):
            hparams = data.session_start_info.hparams
            sessions[path] = {k: getattr(hparams[k], hparams[k].WhichOneof("kind")) for k in hparams}
    return sessions


def test_run_hparams_are_the_config_scalars():
    cfg = configs.validate(configs.preset_config("svhn", "ewc"))
    hparams = trainer.run_hparams(cfg)
    assert hparams["method.name"] == "ewc" and hparams["data.dataset"] == "svhn"
    assert hparams["method.ewc_lambda"] == cfg.method.ewc_lambda
    assert hparams["tasks"] == 10 and hparams["classes"] == "0,1,2,3,4,5,6,7,8,9"
    assert hparams["model.dim"] == cfg.model.dim and hparams["train.batch_size"] == 64
    assert hparams["train.mixed_precision"] == "none" and hparams["seed"] == 0
    assert "data.data_dir" not in hparams  # None: not an HParam value
    assert all(isinstance(v, (bool, int, float, str)) for v in hparams.values())


@pytest.fixture(scope="module")
def tiny_ra_run(mnist_data, tmp_path_factory):
    from tiny_run import train_two_tasks
    run_dir = tmp_path_factory.mktemp("tb_ra")
    trained, _ = train_two_tasks("ra", mnist_data, run_dir)
    return trained, str(run_dir)


def test_hparams_and_config_text_in_the_event_file(tiny_ra_run):
    trained, run_dir = tiny_ra_run
    records = tensorboard_records(run_dir)
    (hparams,) = session_hparams(records).values()
    assert hparams["method.name"] == "ra" and hparams["data.dataset"] == "mnist"
    assert hparams["method.ra_factor"] == pytest.approx(trained.cfg.method.ra_factor)
    assert hparams["train.mixed_precision"] == "none"
    assert hparams["model.dim"] == 16 and hparams["train.iters"] == 3 and hparams["tasks"] == 2
    assert any(p == "hparams" and tag == "_hparams_/experiment" for _, p, tag, _ in records)
    (text,) = [v for _, p, tag, v in records if p == "text" and tag == "config"]
    body = tf.make_ndarray(text.tensor).item().decode()
    assert body.startswith("```json\n")
    with open(os.path.join(run_dir, "config.json")) as f:
        assert json.loads(body[len("```json\n"):-len("\n```")]) == json.load(f)


def test_resumed_runs_write_their_hparams_again(tiny_ra_run, mnist_data):
    trained, run_dir = tiny_ra_run
    cfg = snapshots.load_run_config(run_dir)
    trainer.Trainer(cfg, mnist_data).train(resume=True)  # finished: nothing left to train
    trainer.Trainer(cfg, mnist_data).train(start_from_task=1)  # task 2 again
    sessions = session_hparams(tensorboard_records(run_dir))
    assert len(sessions) == 3  # the first run, the resume, the restart of task 2
    assert all(h == next(iter(sessions.values())) for h in sessions.values())
