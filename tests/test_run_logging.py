"""What a run tells its user while it trains: the configuration in TensorBoard (HParams and
a text summary, also after a resume), a rate and ETA measured after tracing, and a summary
line at the end of every task."""

import glob
import json
import os
import re

import pytest
import tensorflow as tf
from tensorboard.plugins.hparams import plugin_data_pb2

from mergan_tf import configs, snapshots, trainer
from mergan_tf.trainer import Progress


class FakeClock:
    """Seconds that pass only when a test says so."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def run_task(progress, clock, durations, first=0):
    """Ticks `progress` for iterations first, first + 1, ... lasting `durations` seconds."""
    for k, seconds in enumerate(durations):
        clock.now += seconds
        progress.tick(first + k)


# ------------------------------------------------------------------ rate and ETA

def test_eta_uses_the_steady_rate_after_tracing():
    clock = FakeClock()
    progress = Progress(0, 10, (0,), iters=100, clock=clock, warmup=10)
    # Iterations 0 and 1 trace their steps (30 s and 20 s), then 0.5 s each.
    run_task(progress, clock, [30.0, 20.0] + [0.5] * 8)
    assert progress.eta() == float("inf")  # the warm-up is not over: no steady rate yet
    run_task(progress, clock, [0.5] * 21, first=10)  # up to iteration 30
    assert progress.steady_rate() == pytest.approx(2.0)
    assert progress.rate() == pytest.approx(2.0)
    # The warm-up took 54 s where 10 steady iterations take 5 s: 49 s of tracing.
    assert progress.tracing_seconds() == pytest.approx(49.0)
    remaining = (100 - 31) + 9 * 100
    assert progress.eta() == pytest.approx(remaining / 2.0 + 9 * 49.0)
    # Since the task started, 31 iterations took 64.5 s: that rate would inflate the ETA.
    assert remaining / (31 / 64.5) > 1.5 * progress.eta()


def test_rate_before_the_warm_up_ends_counts_from_the_task_start():
    clock = FakeClock()
    progress = Progress(2, 3, (2,), iters=50, clock=clock, warmup=10)
    run_task(progress, clock, [4.0, 1.0, 1.0])
    assert progress.steady_rate() is None
    assert progress.rate() == pytest.approx(3 / 6.0)


def test_resumed_task_measures_from_where_it_continues():
    clock = FakeClock()
    progress = Progress(1, 2, (1,), iters=1000, clock=clock, warmup=5)
    run_task(progress, clock, [10.0] + [0.25] * 24, first=600)  # resumed at iteration 600
    assert progress.steady_rate() == pytest.approx(4.0)
    assert progress.eta() == pytest.approx((1000 - 624 - 1) / 4.0)  # last task: no re-trace


def test_task_summary_names_time_rate_losses_and_accuracy():
    clock = FakeClock()
    progress = Progress(1, 10, (1,), iters=20, clock=clock, warmup=10)
    run_task(progress, clock, [30.0] + [0.5] * 19)
    values = {"loss/critic/total": -1.23456, "loss/gen/total": 0.5, "acc/critic/ac_real": 0.75}
    line = progress.summary(values, {0: 98.4375, 1: 90.625})
    assert line.startswith("task 2/10 (class 1) done: 20 iterations in 0m39s")
    assert "2.00 it/s after 0m29s of tracing" in line
    assert "D -1.2346" in line and "G 0.5000" in line and "AC acc 0.7500" in line
    assert "accuracy 0: 98.4%, 1: 90.6% (mean 94.5%)" in line
    assert "accuracy" not in progress.summary(values)


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


def test_train_log_holds_the_progress_lines_and_task_summaries(tiny_ra_run):
    _, run_dir = tiny_ra_run
    with open(os.path.join(run_dir, "train.log"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert lines, "train.log is empty"
    assert all(re.match(r"[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{3} \d+ \w+\.py:\d+\] ", line)
               for line in lines), lines[:3]  # absl's format, one record per line
    assert re.search(r"\] new session of .*: ra on mnist \(.*\), 2 tasks x 3 iterations$",
                     lines[0]), lines[0]
    for task in ("task 1/2 (class 0)", "task 2/2 (class 1)"):
        assert any(f"{task} iter " in line and " it/s" in line for line in lines), task
        assert sum(f"{task} done: 3 iterations in " in line for line in lines) == 1, task


def test_resumed_runs_write_their_hparams_again(tiny_ra_run, mnist_data, monkeypatch):
    trained, run_dir = tiny_ra_run
    cfg = snapshots.load_run_config(run_dir)
    trainer.Trainer(cfg, mnist_data).train(resume=True)  # finished: nothing left to train
    lines = []
    monkeypatch.setattr(trainer.logging, "info", lambda fmt, *args: lines.append(fmt % args))
    trainer.Trainer(cfg, mnist_data).train(start_from_task=1)  # task 2 again
    sessions = session_hparams(tensorboard_records(run_dir))
    assert len(sessions) == 3  # the first run, the resume, the restart of task 2
    assert all(h == next(iter(sessions.values())) for h in sessions.values())
    (summary,) = [line for line in lines if " done: " in line]
    assert summary.startswith("task 2/2 (class 1) done: 3 iterations in ")
    assert "final D " in summary and " G " in summary


# ------------------------------------------------------------------ bf16 without native support

def test_cpu_flags_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n")
    assert snapshots.cpu_flags(str(cpuinfo)) == {"fpu", "sse2", "avx", "avx2", "fma"}
    (tmp_path / "arm").write_text("processor\t: 0\nFeatures\t: fp asimd\n")
    assert snapshots.cpu_flags(str(tmp_path / "arm")) is None  # no x86 flags line
    assert snapshots.cpu_flags(str(tmp_path / "missing")) is None


def test_bf16_warning_only_for_emulated_bf16():
    avx2 = {"avx", "avx2"}
    message = snapshots.bf16_warning("bf16", avx2, has_gpu=False)
    assert message and "--mixed_precision none" in message and "avx512_bf16" in message
    assert snapshots.bf16_warning("none", avx2, has_gpu=False) is None
    assert snapshots.bf16_warning("bf16", avx2 | {"avx512_bf16"}, has_gpu=False) is None
    assert snapshots.bf16_warning("bf16", avx2 | {"amx_bf16"}, has_gpu=False) is None
    assert snapshots.bf16_warning("bf16", avx2, has_gpu=True) is None
    assert snapshots.bf16_warning("bf16", None, has_gpu=False) is None  # flags unknown


def test_training_warns_in_train_log_when_bf16_is_emulated(tiny_ra_run, mnist_data, monkeypatch):
    _, run_dir = tiny_ra_run
    asked = []

    def warning(precision, flags, has_gpu):
        asked.append(precision)
        return "bf16 emulated here (test)"
    monkeypatch.setattr(snapshots, "bf16_warning", warning)
    trainer.Trainer(snapshots.load_run_config(run_dir), mnist_data).train(resume=True)
    assert asked == ["none"]  # the run's own precision is what is checked
    with open(os.path.join(run_dir, "train.log"), encoding="utf-8") as f:
        warned = [line for line in f if line.endswith("] bf16 emulated here (test)\n")]
    assert len(warned) == 1 and warned[0].startswith("W"), warned
