"""Reproduction of the paper's Table 1: train each method, evaluate, compare with the paper.

Runs live in `<out_root>/<method>`; a run that already finished with the same settings is
evaluated again without retraining.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import json
import os
import shutil
import time
from typing import Optional, Sequence

import tensorflow as tf

from mergan_tf import configs, export, identity, runlock, snapshots
from mergan_tf.data import ImageData
from mergan_tf.evaluation import protocol
from mergan_tf.run_dir import (CHECKPOINTS, CONFIG, EVAL_JSON, EVAL_MD, FIXED_NOISE, FORGETTING, SAMPLES,
                               SCALARS, TENSORBOARD, prepare_run_dir, task_dir, write_text)
from mergan_tf.trainer import Trainer

# Table 1 of the paper: mean accuracy (%) over learned classes after 5 and 10 tasks.
PAPER_TABLE1 = {
    ("mnist", 5): {"jt": 97.66, "sft": 19.87, "ewc": 70.62, "dgr": 90.39, "jtr": 97.93, "ra": 98.19},
    ("mnist", 10): {"jt": 96.92, "sft": 10.06, "ewc": 77.03, "dgr": 85.40, "jtr": 97.00, "ra": 97.01},
    ("svhn", 5): {"jt": 85.30, "sft": 19.35, "ewc": 39.84, "dgr": 61.29, "jtr": 80.90, "ra": 76.05},
    ("svhn", 10): {"jt": 84.82, "sft": 10.10, "ewc": 33.02, "dgr": 47.28, "jtr": 66.50, "ra": 66.78},
}
COLUMN_ORDER = ("jt", "sft", "ewc", "dgr", "jtr", "ra")


# Methods whose first task is the same training (no replay, no penalty yet, same seed): a
# campaign trains it once and the others continue from its snapshot (`fork_first_task`).
SHARE_FIRST_TASK = ("sft", "ra", "jtr", "ewc")
# Cost of an outer iteration relative to SFT's with 9 learned classes (bf16 timings of
# docs/README: RA 1.13x, JTR 1.81x, DGR ~2.3x, EWC ~1.05x), for ETAs of runs not started.
RELATIVE_COST = {"sft": 1.0, "jt": 1.0, "ra": 1.13, "jtr": 1.81, "ewc": 1.05, "dgr": 2.3}


class CampaignError(RuntimeError):
    """A campaign run directory holds something other than the planned run."""


def joint_iterations(dataset: str, tasks: int, iters: int) -> int:
    """JT's iterations: the release's joint schedule scaled to the classes it learns at the
    release's per-task count (MNIST: 40,001 for ten classes, 20,005 for five), else
    `tasks * iters`."""
    p = configs.PRESETS[dataset]
    if iters == p.iters_per_task and tasks == len(p.classes):
        return p.joint_iters
    return tasks * iters


def method_config(dataset: str, method: str, tasks: int, iters: int, out_root: str,
                  data_dir: Optional[str], seed: int = 0, mixed_precision: str = "none",
                  run_name: Optional[str] = None, **output) -> configs.RunConfig:
    """The run of one method over the first `tasks` classes; JT trains its single joint
    task for `joint_iterations(...)`. `mixed_precision` is "none" (float32, the release)
    or "bf16" (see TrainConfig). The run lives in `<out_root>/<run_name or method>`."""
    cfg = configs.preset_config(dataset, method)
    return configs.validate(cfg.replace(
        classes=cfg.classes[:tasks], seed=seed,
        out_dir=os.path.join(out_root, run_name or method),
        data=dataclasses.replace(cfg.data, data_dir=data_dir),
        train=dataclasses.replace(
            cfg.train, iters=joint_iterations(dataset, tasks, iters) if method == "jt" else iters,
            mixed_precision=mixed_precision),
        output=dataclasses.replace(cfg.output, **output)))


def table_columns(tasks: int) -> list[int]:
    """The "after task" columns of a table over `tasks` tasks: the release's 5 and 10
    where reached, and always the last."""
    columns = [t for t in protocol.RELEASE_AFTER_TASKS if t < tasks]
    return columns + [tasks]


def planned_runs(dataset: str, methods: Sequence[str], tasks: int, iters: int, out_root: str,
                 data_dir: Optional[str], seed: int = 0, mixed_precision: str = "none",
                 **output) -> dict[str, configs.RunConfig]:
    """{run name: config} of a campaign. A sequential run is evaluated after every column;
    JT, trained on all classes at once, has one run per column (`jt` for the last, `jt_5`
    for five classes of a ten-task table)."""
    runs = {}
    for method in methods:
        if method not in configs.METHODS:
            raise configs.ConfigError(f"unknown method {method!r}; choose among {configs.METHODS}")
        columns = table_columns(tasks) if method == "jt" else [tasks]
        for t in columns:
            name = method if t == tasks else f"{method}_{t}"
            runs[name] = method_config(dataset, method, t, iters, out_root, data_dir, seed,
                                       mixed_precision, run_name=name, **output)
    return runs


def runs_to_train(runs: dict[str, configs.RunConfig],
                  names: Optional[Sequence[str]]) -> dict[str, configs.RunConfig]:
    """The planned runs named in `names` (all of them when None or empty), in plan order:
    so two processes can train JT's two runs (`jt_5`, `jt`) side by side."""
    if not names:
        return dict(runs)
    unknown = [n for n in names if n not in runs]
    if unknown:
        raise configs.ConfigError(
            f"--runs {','.join(unknown)}: not a run of this campaign; its runs are "
            f"{', '.join(runs)} (add the method to --methods)")
    return {n: c for n, c in runs.items() if n in names}


def _training_settings(cfg: configs.RunConfig) -> configs.RunConfig:
    """The part of a configuration that determines the trained weights."""
    return cfg.replace(data=dataclasses.replace(cfg.data, resolved_source=None),
                       output=configs.OutputConfig(), out_dir="")


def _differences(a: configs.RunConfig, b: configs.RunConfig) -> list[str]:
    """The training settings that differ between two configurations, as "field: a != b"
    (not the fields that do not change what the method trains, `configs.unused_fields`)."""
    da, db = _training_settings(a).to_dict(), _training_settings(b).to_dict()
    skip = set(configs.unused_fields(b.method.name))
    out = []
    for section, value in da.items():
        if isinstance(value, dict):
            out += [f"{section}.{k}: {v!r} != {db[section].get(k)!r}"
                    for k, v in value.items()
                    if v != db[section].get(k) and f"{section}.{k}" not in skip]
        elif value != db[section]:
            out.append(f"{section}: {value!r} != {db[section]!r}")
    return out


def saved_config(cfg: configs.RunConfig) -> Optional[configs.RunConfig]:
    path = os.path.join(cfg.out_dir, CONFIG)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return configs.RunConfig.from_dict(json.load(f))


def is_finished(cfg: configs.RunConfig) -> bool:
    """The run directory holds a finished run that trained exactly as `cfg` would.

    Output settings (grid/checkpoint/log frequency, run directory) do not change the
    trained weights and are not compared.
    """
    saved = saved_config(cfg)
    return (saved is not None and not _differences(saved, cfg)
            and len(cfg.classes) in snapshots.list_snapshots(cfg.out_dir))


@dataclasses.dataclass(frozen=True)
class RunState:
    """Where a campaign run stands: "new", "partial" or "finished"; for a partial run the
    task (1-based) being trained and the last checkpointed iteration of it (-1: none)."""

    kind: str
    task: int = 0
    iteration: int = -1
    iters_per_sec: Optional[float] = None


def run_state(cfg: configs.RunConfig) -> RunState:
    """The state of `cfg`'s run directory.

    Raises:
      CampaignError: the directory holds a run with other training settings.
    """
    saved = saved_config(cfg)
    if saved is None:
        return RunState("new")
    diff = _differences(saved, cfg)
    if diff:
        raise CampaignError(
            f"{cfg.out_dir} holds a run with other training settings ({'; '.join(diff)}); "
            f"use another --out_root, or move that run away")
    done = snapshots.list_snapshots(cfg.out_dir)
    rate = _last_rate(cfg.out_dir)
    if len(cfg.classes) in done:
        return RunState("finished", len(cfg.classes), cfg.train.iters - 1, rate)
    task = (done[-1] if done else 0) + 1
    latest = tf.train.latest_checkpoint(task_dir(cfg.out_dir, CHECKPOINTS, task))
    iteration = int(latest.rsplit("-", 1)[1]) if latest else -1
    return RunState("partial", task, iteration, rate)


def _last_rate(run_dir: str) -> Optional[float]:
    """The latest logged outer-iteration rate of a run (perf/iters_per_sec), if any."""
    path = os.path.join(run_dir, SCALARS)
    if not os.path.exists(path):
        return None
    rate = None
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if len(row) == 5 and row[3] == "perf/iters_per_sec" and int(row[2]) >= 100:
                rate = float(row[4])  # from iteration 100 on: past the first task's tracing
    return rate


def remaining_iterations(cfg: configs.RunConfig, state: RunState) -> int:
    """Outer iterations still to train (the checkpointed iteration is done)."""
    if state.kind == "finished":
        return 0
    tasks = 1 if cfg.method.name == "jt" else len(cfg.classes)
    if state.kind == "new":
        return tasks * cfg.train.iters
    done_tasks = state.task - 1 if cfg.method.name != "jt" else 0
    return (tasks - done_tasks) * cfg.train.iters - (state.iteration + 1)


def status_table(runs: dict[str, configs.RunConfig]) -> str:
    """A Markdown table of every planned run: state, progress, rate and time left. Runs
    not started are estimated from the measured rates of the others (RELATIVE_COST)."""
    states = {name: run_state(cfg) for name, cfg in runs.items()}
    sft_rates = [s.iters_per_sec * RELATIVE_COST[runs[n].method.name]
                 for n, s in states.items() if s.iters_per_sec]
    base = sorted(sft_rates)[len(sft_rates) // 2] if sft_rates else None
    lines = ["| run | state | task | last checkpoint | it/s | iterations left | time left |",
             "|---|---|---|---|---|---|---|"]
    total = 0.0
    for name, cfg in runs.items():
        s = states[name]
        left = remaining_iterations(cfg, s)
        rate = s.iters_per_sec or (base / RELATIVE_COST[cfg.method.name] if base else None)
        seconds = left / rate if rate else float("nan")
        total += seconds if left else 0.0
        where = f"{s.task}/{len(cfg.classes) if cfg.method.name != 'jt' else 1}" if s.kind == "partial" else ""
        lines.append(f"| {name} | {s.kind} | {where} | {s.iteration if s.kind == 'partial' else ''} | "
                     f"{f'{s.iters_per_sec:.2f}' if s.iters_per_sec else ('~' if rate else '?')} | {left} | "
                     f"{_hours(seconds) if left else '-'} |")
    lines.append(f"\nTime left, one run at a time: {_hours(total)} (rates as last measured; "
                 "'~' estimated from the other runs).")
    return "\n".join(lines)


def _hours(seconds: float) -> str:
    return "?" if seconds != seconds else f"{seconds / 3600:.1f} h"


def _copy_first_task_outputs(base_dir: str, run_dir: str, first_class: int, last_step: int) -> None:
    """The base run's outputs of task 1 (grids, noise, logged rows up to `last_step`)."""
    shutil.copy2(os.path.join(base_dir, FIXED_NOISE), os.path.join(run_dir, FIXED_NOISE))
    samples = os.path.join(base_dir, SAMPLES)
    os.makedirs(os.path.join(run_dir, SAMPLES), exist_ok=True)
    for name in os.listdir(samples) if os.path.isdir(samples) else []:
        if name.startswith("Task_1_") or name == f"samples_groundtruth_{first_class}.png":
            shutil.copy2(os.path.join(samples, name), os.path.join(run_dir, SAMPLES, name))
    for name in (SCALARS, FORGETTING):
        src = os.path.join(base_dir, name)
        if os.path.exists(src):
            with open(src, newline="") as f:
                rows = list(csv.reader(f))
            with open(os.path.join(run_dir, name), "w", newline="") as f:
                csv.writer(f).writerows(rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= last_step])


def fork_first_task(base_dir: str, cfg: configs.RunConfig, data: ImageData, monitor=None) -> Trainer:
    """Starts `cfg`'s run from the snapshot after task 1 of `base_dir`, a run of another
    method of SHARE_FIRST_TASK with the same training settings: task 1 is the same
    training for all of them. Copies the base's task-1 outputs, restores its models, RNG
    and step, runs the method's end-of-task hook (EWC: the Fisher of task 1), writes the
    run's config.json and own task-1 snapshot (and export), and returns the Trainer to
    continue with `train(start_from_task=1)`. A fork interrupted before its snapshot is a
    run with neither snapshot nor checkpoint, which `train_run` forks again.
    """
    base = snapshots.load_run_config(base_dir)
    if base.method.name not in SHARE_FIRST_TASK or cfg.method.name not in SHARE_FIRST_TASK:
        raise CampaignError(f"task 1 is shared only among {SHARE_FIRST_TASK}")
    diff = _differences(base.replace(method=cfg.method, classes=cfg.classes), cfg)
    if diff or base.classes[0] != cfg.classes[0]:
        raise CampaignError(f"{base_dir} did not train task 1 as {cfg.out_dir} would: "
                            f"{'; '.join(diff) or 'another first class'}")
    info = snapshots.read_snapshot_info(base_dir, 1)
    prepare_run_dir(cfg, overwrite=True)
    with runlock.RunLock(cfg.out_dir):
        _copy_first_task_outputs(base_dir, cfg.out_dir, cfg.classes[0], info["global_step"])
        trainer = Trainer(cfg, data, monitor)
        snapshots.restore_into(base_dir, 1, generator=trainer.generator, critic=trainer.critic,
                               rng=trainer.rng, global_step=trainer.global_step)
        trainer.method.after_task(trainer, 0)
        run_cfg = cfg.replace(data=dataclasses.replace(cfg.data, resolved_source=data.source))
        write_text(os.path.join(cfg.out_dir, CONFIG), run_cfg.to_json())
        identity.record(run_cfg, data)
        trainer.write_snapshot(0, info["iteration"])
        if cfg.output.export and trainer.method.conditional:
            export.export_snapshot(cfg.out_dir, 1, overwrite=True)
    return trainer


def wait_for_snapshot(run_dir: str, task: int, poll_seconds: float = 60.0, log=print) -> None:
    """Blocks until `run_dir` has the snapshot after `task` (a base run still training)."""
    announced = False
    while task not in snapshots.list_snapshots(run_dir):
        if not announced:
            log(f"waiting for the snapshot after task {task} of {run_dir}")
            announced = True
        time.sleep(poll_seconds)


def train_run(cfg: configs.RunConfig, data: ImageData, monitor=None, base_dir: Optional[str] = None,
              log=print) -> float:
    """Trains, resumes or (first task shared) forks the run; returns the seconds spent
    training (0 for a finished run).

    Raises:
      interrupts.TrainingInterrupted: SIGTERM/SIGINT stopped the run after a checkpoint
        (the campaign's next invocation resumes it).
    """
    state = run_state(cfg)
    if state.kind == "finished":
        log(f"{cfg.out_dir}: finished, not retraining")
        return 0.0
    start = time.time()
    run_cfg = cfg.replace(data=dataclasses.replace(cfg.data, resolved_source=data.source))
    fork = base_dir is not None and base_dir != cfg.out_dir
    if fork and state.kind == "partial" and state.task == 1 and state.iteration < 0:
        state = RunState("new")  # a fork interrupted before its task-1 snapshot: fork again
    if state.kind == "partial":
        log(f"{cfg.out_dir}: resuming task {state.task} after checkpoint {state.iteration}")
        Trainer(run_cfg, data, monitor).train(resume=True)
    elif fork:
        wait_for_snapshot(base_dir, 1, log=log)
        log(f"{cfg.out_dir}: continuing from the task-1 snapshot of {base_dir}")
        fork_first_task(base_dir, cfg, data, monitor).train(start_from_task=1)
    else:
        prepare_run_dir(cfg, overwrite=True)
        Trainer(run_cfg, data, monitor).train()
    return time.time() - start


def train_if_needed(cfg: configs.RunConfig, data: ImageData, log=print) -> float:
    """Trains the run unless it is finished; returns the training seconds (0 if skipped)."""
    return train_run(cfg, data, log=log)


def evaluate(cfg: configs.RunConfig, columns: Sequence[int], batches: int, seed: int,
             classifier_dir: Optional[str]) -> dict:
    """Release test mode after each of `columns` the run has; {column: accuracy dict}."""
    have = [t for t in columns if t in snapshots.list_snapshots(cfg.out_dir)]
    ev = protocol.evaluate_run(cfg.out_dir, after_tasks=have, classifier_dir=classifier_dir,
                               batches=batches, seed=seed)
    return {int(t): dict(ev["tasks"][str(t)]["accuracy"], evaluator=ev["evaluator"]) for t in have}


def ewc_sweep_runs(dataset: str, tasks: int, iters: int, out_root: str, data_dir: Optional[str],
                   lambdas: Sequence[float], seed: int = 0, mixed_precision: str = "none",
                   **output) -> dict[str, configs.RunConfig]:
    """{name: config} of an EWC lambda sweep: the SFT reference run ("sft", which trains
    the shared task 1) and one EWC run per lambda ("ewc_1e+02", ...)."""
    runs = {"sft": method_config(dataset, "sft", tasks, iters, out_root, data_dir, seed,
                                 mixed_precision, **output)}
    for lam in lambdas:
        name = f"ewc_{lam:.0e}"
        runs[name] = with_method(method_config(dataset, "ewc", tasks, iters, out_root, data_dir,
                                               seed, mixed_precision, run_name=name, **output),
                                 ewc_lambda=float(lam))
    return runs


def sweep_table(results: dict[str, dict], runs: dict[str, configs.RunConfig], tasks: int,
                iters: int) -> str:
    """A Markdown table of an EWC sweep: per run its lambda, mean and per-class accuracy,
    the last class (what it learned) and the mean of the earlier ones (what it kept)."""
    classes = next(iter(runs.values())).classes
    evaluator = next(iter(results.values()))["evaluator"] if results else {}
    lines = [f"EWC lambda sweep: {tasks} tasks x {iters} iterations; accuracy (%) after task "
             f"{tasks}; evaluator {evaluator.get('arch')} at "
             f"{evaluator.get('test_accuracy', float('nan')):.2f}% real-test accuracy.", "",
             "| run | lambda | mean | " + " | ".join(f"class {c}" for c in classes) +
             " | last class | earlier classes |", "|" + "---|" * (5 + len(classes))]
    for name, acc in results.items():
        per = [acc["per_class"].get(c, acc["per_class"].get(str(c))) for c in classes]
        lam = "-" if runs[name].method.name != "ewc" else f"{runs[name].method.ewc_lambda:.0e}"
        earlier = sum(per[:-1]) / max(1, len(per) - 1)
        lines.append(f"| {name} | {lam} | {acc['mean']:.2f} | " + " | ".join(f"{p:.2f}" for p in per) +
                     f" | {per[-1]:.2f} | {earlier:.2f} |")
    return "\n".join(lines)


def with_method(cfg: configs.RunConfig, **changes) -> configs.RunConfig:
    """`cfg` with some MethodConfig fields changed (validated)."""
    return configs.validate(cfg.replace(method=dataclasses.replace(cfg.method, **changes)))


def evaluate_campaign(runs: dict[str, configs.RunConfig], tasks: int, batches: int, seed: int,
                      classifier_dir: Optional[str]) -> dict[int, dict]:
    """{column: {method: accuracy}} of the finished runs: a sequential run after every
    column, JT's run of each column (`jt_5` for column 5) after its own last task."""
    results: dict[int, dict] = {t: {} for t in table_columns(tasks)}
    for name, cfg in runs.items():
        if run_state(cfg).kind != "finished":
            continue
        columns = [len(cfg.classes)] if cfg.method.name == "jt" else table_columns(tasks)
        for column, acc in evaluate(cfg, columns, batches, seed, classifier_dir).items():
            results[column][cfg.method.name] = acc
    return results


def campaign_tables(results: dict[int, dict], dataset: str, tasks: int, iters: int,
                    mixed_precision: str = "none") -> str:
    """One `markdown_table` per column of a campaign (columns with no finished run are
    left out)."""
    return "\n\n".join(markdown_table(by_method, dataset, column, iters, mixed_precision)
                        for column, by_method in results.items() if by_method)


# Logged steps further apart than this are a stop (a session ended), not training time.
PAUSE_SECONDS = 300.0


def training_seconds(run_dir: str) -> float:
    """Wall time a run spent training: the sum of the intervals between consecutive
    TensorBoard events, leaving out gaps over PAUSE_SECONDS (the run was stopped and
    resumed later). Scalars are logged every few seconds, so this is close to the time the
    trainer ran, tracing, grids and monitor included."""
    times = []
    for path in sorted(glob.glob(os.path.join(run_dir, TENSORBOARD, "events.out.tfevents.*"))):
        times += [e.wall_time for e in tf.compat.v1.train.summary_iterator(path) if e.summary.value]
    times.sort()
    gaps = [b - a for a, b in zip(times, times[1:])]
    return float(sum(g for g in gaps if g <= PAUSE_SECONDS))


def _copy_tree(src: str, dst: str) -> None:
    """Copies a directory (replacing an older copy) through a temporary name."""
    tmp = f"{dst}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)


def collect_run(cfg: configs.RunConfig, out_dir: str) -> list[str]:
    """A finished run's results in `out_dir`: eval.json, eval.md, forgetting.csv, Figure 3,
    the remembering mosaic and (conditional methods) the SavedModel of its last task.
    Never training checkpoints or snapshots. Returns the paths written."""
    from mergan_tf import figures  # noqa: PLC0415 (matplotlib only where figures are made)
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name in (EVAL_JSON, EVAL_MD, FORGETTING, CONFIG):
        src = os.path.join(cfg.out_dir, name)
        if os.path.exists(src):
            shutil.copy2(src, os.path.join(out_dir, name))
            written.append(os.path.join(out_dir, name))
    made = figures.make_figures([cfg.out_dir], out_dir, gif=False, evolution_class=None)
    for kind in ("figure3", "mosaic"):
        for path in made[kind]:
            final = os.path.join(out_dir, f"{kind}.png")
            os.replace(path, final)
            written.append(final)
    for path in made["remembering"]:
        os.remove(path)  # one run: the mosaic above, titled in the README instead
    last = len(cfg.classes)
    export_src = export.export_dir(cfg.out_dir, last)
    if os.path.isdir(export_src):
        _copy_tree(export_src, os.path.join(out_dir, f"export_task_{last:02d}"))
        written.append(os.path.join(out_dir, f"export_task_{last:02d}"))
    return written


def results_readme(results: dict[int, dict], runs: dict[str, configs.RunConfig], dataset: str,
                   tasks: int, iters: int, mixed_precision: str, commit: str,
                   commands: Sequence[str], notes: str = "") -> str:
    """results/<table>/README.md: the table beside the paper's columns, per-class
    accuracies, wall time per run, the commands, the commit that evaluated the runs, and
    `notes` (Markdown: what the generated parts cannot know, such as the code each run
    trained with; `reproduce_table1.py` reads it from NOTES.md in the results folder)."""
    paper = {t: PAPER_TABLE1.get((dataset, t), {}) for t in results}
    methods = [m for m in COLUMN_ORDER if any(m in r for r in results.values())]
    lines = [f"# Table 1 ({dataset}), {tasks} tasks x {iters} iterations per task", "",
             f"Mean accuracy (%) over the learned classes, release test mode (100 batches of 64 "
             f"samples per class; JT in mixed batches, see `eval.md`), evaluated at commit `{commit}`, "
             f"{'float32' if mixed_precision == 'none' else mixed_precision + ' matmuls'}.", "",
             "| after task | " + " | ".join(m.upper() for m in methods) + " |",
             "|---|" + "---|" * len(methods)]
    for t, by_method in results.items():
        lines.append(f"| {t}, this run | " + " | ".join(
            f"{by_method[m]['mean']:.2f}" if m in by_method else "-" for m in methods) + " |")
        lines.append(f"| {t}, paper | " + " | ".join(
            f"{paper[t][m]:.2f}" if m in paper[t] else "-" for m in methods) + " |")
    ev = next((a["evaluator"] for r in results.values() for a in r.values()), {})
    lines += ["", f"Evaluator: {ev.get('arch')} with {ev.get('test_accuracy', float('nan')):.2f}% "
              "real-test accuracy.", "", "| run | method | wall time of training | folder |",
              "|---|---|---|---|"]
    for name, cfg in runs.items():
        if run_state(cfg).kind == "finished":
            lines.append(f"| {name} | {cfg.method.name} | {training_seconds(cfg.out_dir) / 3600:.2f} h "
                         f"| [{name}/]({name}/) |")
    lines += ["", "Wall time: the intervals between logged steps, stops between sessions left "
              "out (`table1.training_seconds`).", "", "Commands:", "", "```bash", *commands, "```"]
    if notes.strip():
        lines += ["", "## Notes", "", notes.strip()]
    return "\n".join(lines) + "\n"


def reproduce(dataset: str, methods: Sequence[str], tasks: int, iters: int, out_root: str,
              data: ImageData, data_dir: Optional[str], batches: int = 100, seed: int = 0,
              classifier_dir: Optional[str] = None, log=print, mixed_precision: str = "none",
              **output) -> dict:
    """Trains (or reuses) and evaluates every method after the last task; returns
    per-method results."""
    results = {}
    for name, cfg in planned_runs(dataset, methods, tasks, iters, out_root, data_dir, seed,
                                  mixed_precision, **output).items():
        if name != cfg.method.name:
            continue  # a JT run of an earlier column
        seconds = train_run(cfg, data, log=log)
        acc = evaluate(cfg, [tasks], batches, seed, classifier_dir)[tasks]
        results[name] = {"mean": acc["mean"], "per_class": acc["per_class"],
                         "train_seconds": seconds, "evaluator": acc["evaluator"]}
        log(f"{name}: mean accuracy {acc['mean']:.2f}% after {tasks} tasks "
            f"(trained {seconds:.0f} s)")
    return results


def markdown_table(results: dict, dataset: str, tasks: int, iters: int,
                   mixed_precision: str = "none") -> str:
    """This run's mean accuracies beside the paper's Table 1 row."""
    methods = [m for m in COLUMN_ORDER if m in results] + [m for m in results if m not in COLUMN_ORDER]
    paper = PAPER_TABLE1.get((dataset, tasks), {})
    evaluator = next(iter(results.values()))["evaluator"] if results else {}
    head = "| | " + " | ".join(m.upper() for m in methods) + " |"
    precision = "" if mixed_precision == "none" else f", {mixed_precision} matmuls"
    if evaluator.get("kind") == "release":
        judge = f"the release's evaluator ({evaluator.get('release_file')})"
    else:
        accuracy = evaluator.get("test_accuracy")
        judge = (f"evaluator {evaluator.get('arch')} with real test accuracy "
                 f"{float('nan') if accuracy is None else accuracy:.2f}%")
    lines = [f"Mean accuracy (%) over the {tasks} learned classes, {dataset}, {iters} iterations "
             f"per task{precision}; {judge}.", "",
             head, "|---|" + "---|" * len(methods),
             "| this run | " + " | ".join(f"{results[m]['mean']:.2f}" for m in methods) + " |",
             "| paper (Table 1) | " + " | ".join(
                 f"{paper[m]:.2f}" if m in paper else "-" for m in methods) + " |"]
    return "\n".join(lines)


def result_line(results: dict) -> str:
    """The machine-readable last line: RESULT method=acc,..."""
    return "RESULT " + ",".join(f"{m}={r['mean']:.2f}" for m, r in results.items())
