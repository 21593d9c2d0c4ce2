"""Figures of the paper's evaluation: forgetting curves (Fig. 6) and t-SNE (Fig. 4)."""

from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mergan_tf import sampling, snapshots  # noqa: E402
from mergan_tf.evaluation import classifiers, metrics, monitor, protocol  # noqa: E402
from mergan_tf.run_dir import atomic_path  # noqa: E402


def _run_label(run_dir: str) -> str:
    try:
        cfg = snapshots.load_run_config(run_dir)
        return f"{cfg.method.name.upper()} ({os.path.basename(os.path.normpath(run_dir))})"
    except snapshots.SnapshotError:
        return os.path.basename(os.path.normpath(run_dir))


def plot_forgetting(run_dirs: Sequence[str], out_path: str) -> str:
    """Accuracy of every class against training iteration, one panel per run, with the
    task boundaries marked; writes a PNG and returns its path."""
    fig, axes = plt.subplots(1, len(run_dirs), figsize=(5 * len(run_dirs), 3.8), squeeze=False,
                             sharey=True)
    for ax, run_dir in zip(axes[0], run_dirs):
        rows = monitor.read_forgetting_csv(run_dir)
        for c in sorted({r["class"] for r in rows}):
            pts = sorted((r["global_step"], r["accuracy"]) for r in rows if r["class"] == c)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=f"class {c}")
        starts = sorted({min(r["global_step"] for r in rows if r["task"] == t)
                         for t in {r["task"] for r in rows}})
        for s in starts[1:]:
            ax.axvline(s, color="gray", linestyle="--", linewidth=0.8)
        ax.set_title(_run_label(run_dir))
        ax.set_xlabel("iteration")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][-1].legend(fontsize=7, loc="lower left")
    return _save(fig, out_path)


def plot_tsne(run_dirs: Sequence[str], class_id: int, real_images: np.ndarray, evaluator,
              out_path: str, task: int | None = None, n: int = 300, seed: int = 0) -> str:
    """t-SNE of evaluator features of real and generated images of one class (Fig. 4)."""
    from sklearn.manifold import TSNE

    groups = {"real": real_images[:n]}
    for run_dir in run_dirs:
        t = task or snapshots.list_snapshots(run_dir)[-1]
        sample_fn, info, _ = protocol.load_sampler(run_dir, t)
        if class_id not in info["classes"]:
            raise ValueError(f"class {class_id} is not learned by the snapshot after task {t} "
                             f"of {run_dir} (classes {info['classes']})")
        # In the run's batch regime: a JT run's batches hold every learned class.
        regime = info["batch_regime"]
        batch_classes = info["classes"] if regime == sampling.MIXED else [class_id]
        groups[_run_label(run_dir)] = metrics.class_images(
            sample_fn, batch_classes, n, rng=np.random.RandomState(seed), regime=regime)[class_id]
    feats = [classifiers.penultimate_features(evaluator, x) for x in groups.values()]
    emb = TSNE(n_components=2, random_state=seed, init="pca",
               perplexity=min(30, max(5, sum(len(f) for f in feats) // 10))).fit_transform(
        np.concatenate(feats))
    fig, ax = plt.subplots(figsize=(6, 6))
    start = 0
    for name, f in zip(groups, feats):
        ax.scatter(emb[start:start + len(f), 0], emb[start:start + len(f), 1], s=6, label=name,
                   alpha=0.7, c="black" if name == "real" else None)
        start += len(f)
    ax.set_title(f"t-SNE of evaluator features, class {class_id}")
    ax.legend(fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    return _save(fig, out_path)


def _save(fig, out_path: str) -> str:
    fig.tight_layout()
    with atomic_path(out_path, keep_extension=True) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return out_path
