"""Evaluation of a run directory, the release's test mode plus the paper's other metrics.

For each requested task snapshot (release: after tasks 5 and 10 for MNIST/SVHN, after
every task for LSUN): the accuracy of every learned class (100 batches of 64 per class,
classified by an evaluator trained on real data), reverse accuracy, and FID per class and
over all learned classes. Samples are generated in the batch regime the run trained in
(`mergan_tf.sampling`): each class its own batch for the sequential methods (release
`mergan.py`), mixed batches with equal counts of every learned class for JT (release
`joint.py`), scored per class. Results go to `eval.json` and `eval.md` in the run
directory, and every table states the evaluator's own real-test accuracy.

LSUN (the paper's Table 2): the generator's label of task t is t, the evaluator knows the
ten LSUN categories, so a sample of task t counts as correct when the evaluator answers
`lsun.evaluator_ids(categories)[t]` (release: [0, 1, 8, 6]). Reverse accuracy and FID stay
in task labels (generated and real images both carry them). FID uses InceptionV3 features
when its ImageNet weights are cached, else the evaluator's features; the result says which.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import tensorflow as tf

from mergan_tf import sampling, snapshots
from mergan_tf.data import ImageData, load_for_config, lsun
from mergan_tf.evaluation import classifiers, evaluators, metrics
from mergan_tf.methods import dgr
from mergan_tf.run_dir import CHECKPOINTS, EVAL_JSON, EVAL_MD, write_json, write_text

# The release evaluates MNIST/SVHN after the 5th and the 10th task.
RELEASE_AFTER_TASKS = (5, 10)
FID_FEATURES = ("auto", "inception", "evaluator")


def default_classifier_dir(dataset: str) -> str:
    return classifiers.default_dir(dataset)


def choose_after_tasks(run_dir: str, requested: Optional[Sequence[int]] = None,
                       every_task: bool = False) -> list[int]:
    """The snapshots to evaluate: `requested`, else every snapshot with `every_task` (the
    release's LSUN test mode), else the release's 5 and 10 where present (the run's last
    snapshot when it has neither). SnapshotError names what is missing."""
    available = snapshots.list_snapshots(run_dir)
    if not available:
        interrupted = os.path.isdir(os.path.join(run_dir, CHECKPOINTS))
        raise snapshots.SnapshotError(
            f"{run_dir} has no task snapshot (snapshots/task_NN/), so there is nothing to "
            f"evaluate; " + (f"its first task was interrupted: finish it with "
                             f"scripts/run_sequential.py --out_dir {run_dir} --resume"
                             if interrupted else
                             f"train at least one task with scripts/run_sequential.py "
                             f"--out_dir {run_dir}"))
    if requested:
        missing = [t for t in requested if t not in available]
        if missing:
            raise snapshots.SnapshotError(
                f"no snapshot after task(s) {missing} in {run_dir}; present: {available}")
        return list(requested)
    if every_task:
        return available
    release = [t for t in RELEASE_AFTER_TASKS if t in available]
    return release or [available[-1]]


def sampler(generator) -> callable:
    """A compiled `sample_fn(z, labels)` of a generator (batch statistics per call)."""
    fn = tf.function(lambda z, labels: generator(z, labels), input_signature=[
        tf.TensorSpec([None, generator.z_dim], tf.float32), tf.TensorSpec([None], tf.int32)])
    return lambda z, labels: fn(tf.convert_to_tensor(z, tf.float32),
                                tf.convert_to_tensor(labels, tf.int32)).numpy()


def load_sampler(run_dir: str, task: int):
    """The snapshot's `sample_fn`, its info, and (DGR only) the solver-filtered sampler
    whose acceptance statistics are reported. `info["batch_regime"]` is the batch regime
    the run trained in ("class" or "mixed", see `mergan_tf.sampling`)."""
    cfg = snapshots.load_run_config(run_dir)
    generator, info = snapshots.load_generator(run_dir, task)
    info = dict(info, batch_regime=sampling.regime_of(cfg.method.name))
    if cfg.method.name != "dgr":
        return sampler(generator), info, None
    solver = dgr.build_solver(cfg)
    snapshots.restore_into(run_dir, task, solver=list(solver.weights))
    filtered = dgr.SolverFilteredSampler(generator, solver, seed=cfg.seed)
    return filtered, info, filtered


def evaluate_snapshot(sample_fn, classes: Sequence[int], evaluator, real: Optional[ImageData],
                      batches: int = 100, batch_size: int = 64, seed: int = 0,
                      reverse_per_class: int = 0, reverse_epochs: Optional[int] = None,
                      fid_per_class_n: int = 0, evaluator_arch: str = "mlp",
                      label_map: Optional[Sequence[int]] = None,
                      fid_features: str = "evaluator", regime: str = sampling.CLASS) -> dict:
    """Accuracy, and optionally reverse accuracy and FID, of one `sample_fn(z, labels)`
    in the batch regime `regime` ("class": one class per call; "mixed": every call holds
    equal counts of every class in `classes`).

    Args:
      label_map: the evaluator's id of each generator label (LSUN [0, 1, 8, 6]); None for
        the identity.
      fid_features: "evaluator" (its "features" layer; result key
        `fid_evaluator_features`), "inception" (InceptionV3, `fid_inception`; fails if its
        weights are not cached) or "auto" (InceptionV3 when cached, else the evaluator).
      Others: see `evaluate_run`.
    """
    result = {"classes": [int(c) for c in classes],
              "accuracy": metrics.class_accuracy(sample_fn, evaluator, classes, label_map=label_map,
                                                 batches=batches, batch_size=batch_size, seed=seed,
                                                 regime=regime)}
    if real is None or real.test_images is None:
        return result
    test_x, test_y = real.test_images, real.test_labels
    if reverse_per_class:
        x, y = metrics.generate_class_samples(sample_fn, classes, reverse_per_class,
                                              batch_size=batch_size, seed=seed + 1, regime=regime)
        result["reverse_accuracy"] = metrics.reverse_accuracy(
            x, y, test_x, test_y, evaluator_arch, epochs=reverse_epochs, seed=seed,
            num_classes=real.num_classes)
    if fid_per_class_n:
        x, y = metrics.generate_class_samples(sample_fn, classes, fid_per_class_n,
                                              batch_size=batch_size, seed=seed + 2, regime=regime)
        real_by_class = {int(c): test_x[test_y == c][:fid_per_class_n] for c in classes}
        fake_by_class = {int(c): x[y == c] for c in classes}
        key, feature_fn = fid_feature_fn(fid_features, evaluator)
        result[key] = metrics.fid_per_class(real_by_class, fake_by_class, feature_fn)
    return result


def fid_feature_fn(kind: str, evaluator):
    """(result key, images -> features) of an FID feature choice (see evaluate_snapshot)."""
    if kind not in FID_FEATURES:
        raise ValueError(f"unknown FID features {kind!r}; choose one of {', '.join(FID_FEATURES)}")
    if kind != "evaluator":
        try:
            weights = metrics.inception_weights_path()
            return "fid_inception", lambda images: metrics.inception_features(images, weights_path=weights)
        except metrics.FeatureExtractorError:
            if kind == "inception":
                raise
    return "fid_evaluator_features", lambda images: classifiers.penultimate_features(evaluator, images)


def load_evaluator(classifier_dir: str, min_accuracy: Optional[float], dataset: str):
    """`evaluators.load_evaluator` (a directory, or `release:PREFIX` for the release's
    pretrained classifier), its EvaluatorError also naming the evaluation's options
    (scripts/evaluate.py --classifier_dir / --evaluator / --min_evaluator_accuracy)."""
    try:
        return evaluators.load_evaluator(classifier_dir, min_accuracy=min_accuracy,
                                         dataset=dataset)
    except classifiers.EvaluatorError as e:
        raise classifiers.EvaluatorError(
            f"{e} To evaluate with another one, pass --classifier_dir with a {dataset} "
            f"evaluator (or --evaluator release:PREFIX with the release's pretrained one); "
            f"--min_evaluator_accuracy (percent) sets the accuracy floor.") from e


def evaluator_summary(classifier_dir: str, meta: dict) -> dict:
    """The `evaluator` entry of eval.json."""
    accuracy = meta.get("test_accuracy")
    summary = {"dir": classifier_dir, "arch": meta.get("arch"),
               "test_accuracy": None if accuracy is None else float(accuracy)}
    if meta.get("kind") == "release":
        summary.update({k: meta[k] for k in ("kind", "description", "release_file", "checkpoint",
                                             "input_transform")})
    return summary


def _check_protocol(batches: int, batch_size: int, seed: int, reverse_per_class: int,
                    fid_per_class_n: int) -> None:
    """ValueError naming the flag when a count of the protocol is out of range."""
    for name, value, low in (("--batches", batches, 1), ("--batch_size", batch_size, 1),
                             ("--reverse_per_class", reverse_per_class, 0),
                             ("--fid_per_class", fid_per_class_n, 0)):
        if value < low:
            raise ValueError(f"{name} must be at least {low}, got {value} (release: --batches "
                             f"100 --batch_size 64; 0 skips reverse accuracy / FID)")
    if not 0 <= seed <= 2 ** 32 - 3:  # numpy seeds; seed + 1 and + 2 are used too
        raise ValueError(f"--seed must be in [0, {2 ** 32 - 3}], got {seed}")


# 40+ lines only through its docstring and its long signature; the code is 29 lines.
def evaluate_run(run_dir: str, after_tasks: Optional[Sequence[int]] = None,
                 classifier_dir: Optional[str] = None, min_accuracy: Optional[float] = None,
                 batches: int = 100, batch_size: int = 64, seed: int = 0,
                 reverse_per_class: int = 0, reverse_epochs: Optional[int] = None,
                 fid_per_class_n: int = 0, real: Optional[ImageData] = None,
                 fid_features: Optional[str] = None) -> dict:
    """Evaluates the snapshots of a run; writes eval.json and eval.md; returns the results.

    LSUN runs are evaluated after every task by default, their labels mapped to the
    evaluator's ids, with FID on InceptionV3 features when available (`fid_features`
    None: "auto" for LSUN, "evaluator" otherwise).
    """
    _check_protocol(batches, batch_size, seed, reverse_per_class, fid_per_class_n)
    cfg = snapshots.load_run_config(run_dir)
    dataset = cfg.data.dataset
    classifier_dir = classifier_dir or default_classifier_dir(dataset)
    evaluator, meta = load_evaluator(classifier_dir, min_accuracy, dataset)
    if real is None and (reverse_per_class or fid_per_class_n):
        real = load_for_config(cfg, verbose=False)
    categories = list(cfg.data.categories)
    label_map = lsun.evaluator_ids(categories) if dataset == "lsun" else None
    fid_features = fid_features or ("auto" if dataset == "lsun" else "evaluator")
    regime = sampling.regime_of(cfg.method.name)
    results = {"run_dir": run_dir, "method": cfg.method.name, "dataset": dataset,
               "evaluator": evaluator_summary(classifier_dir, meta),
               "protocol": {"batches": batches, "batch_size": batch_size, "seed": seed,
                            "batch_regime": regime},
               "tasks": {}}
    if categories:
        results.update(categories=categories, label_map=label_map)
    for task in choose_after_tasks(run_dir, after_tasks, every_task=dataset == "lsun"):
        sample_fn, info, filtered = load_sampler(run_dir, task)
        r = evaluate_snapshot(sample_fn, info["classes"], evaluator, real, batches, batch_size, seed,
                              reverse_per_class, reverse_epochs, fid_per_class_n,
                              meta.get("arch", "mlp"), label_map, fid_features, regime)
        if filtered is not None:
            r["dgr_sampling"] = dict(filtered.stats, acceptance_rate=filtered.acceptance_rate())
        results["tasks"][str(task)] = r
    write_json(os.path.join(run_dir, EVAL_JSON), results)
    write_text(os.path.join(run_dir, EVAL_MD), markdown_report(results))
    return results


def markdown_report(results: dict) -> str:
    """Per-class accuracy table per evaluated task, with the evaluator's own accuracy."""
    ev = results["evaluator"]
    lines = [f"# Evaluation of {results['run_dir']} ({results['method']}, {results['dataset']})", "",
             evaluator_line(ev), ""]
    names = results.get("categories")
    if names:
        lines += [f"Task t is category t of {names}; the evaluator's ids: "
                  f"{results['label_map']}.", ""]
    for task, r in results["tasks"].items():
        acc = r["accuracy"]
        classes = r["classes"]
        regime = results.get("protocol", {}).get("batch_regime", sampling.CLASS)
        n = acc.get("n_per_class")
        heads = [f"{c} {names[c]}" if names else str(c) for c in classes]
        lines += [f"## After task {task}", "",
                  "| " + " | ".join(["class"] + heads + ["mean"]) + " |",
                  "|" + "---|" * (len(classes) + 2),
                  "| " + " | ".join(["accuracy %"] + [f"{acc['per_class'][_key(acc['per_class'], c)]:.2f}"
                                                      for c in classes] + [f"{acc['mean']:.2f}"]) + " |", "",
                  f"Samples: {n} per class, {sampling.describe(regime, len(classes))}.", ""]
        if "dgr_sampling" in r:
            st = r["dgr_sampling"]
            lines += [f"DGR solver-filtered sampling: acceptance {st['acceptance_rate']:.1f}% of "
                      f"{st['candidates']} candidates; {st['filled']} of {st['requested']} samples "
                      f"filled with the solver's most likely rejects.", ""]
        if "reverse_accuracy" in r:
            lines += [f"Reverse accuracy: {r['reverse_accuracy']:.2f}%", ""]
        for key, label in (("fid_inception", "InceptionV3 features"),
                           ("fid_evaluator_features", f"evaluator features, {ev['arch']}")):
            if key in r:
                fid = r[key]
                per = ", ".join(f"{c}: {v:.2f}" for c, v in fid["per_class"].items())
                lines += [f"FID ({label}): all {fid['all']:.2f}; per class {per}", ""]
    return "\n".join(lines)


def evaluator_line(ev: dict) -> str:
    """The report's sentence on the evaluator and its own accuracy."""
    if ev.get("kind") == "release":
        return (f"Evaluator: release evaluator, {ev['description']} (the release's "
                f"`{ev['release_file']}`), read from `{ev['checkpoint']}`; fed as the release's "
                f"test mode ({ev['input_transform']}). Its real-test accuracy is not recorded.")
    return (f"Evaluator: {ev['arch']} from `{ev['dir']}`, real test accuracy "
            f"{ev['test_accuracy']:.2f}%.")


def _key(d: dict, c: int):
    """Per-class dicts may be keyed by int (in memory) or str (from JSON)."""
    return c if c in d else str(c)
