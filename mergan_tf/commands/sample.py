"""Sample images from an exported sampler, with TensorFlow only (no mergan_tf import).

  mergan-sample --saved_model runs/mnist_ra/export/task_10 --classes 0,3 \
      --n 64 --seed 1 --out grid.png,samples.npz

(also `python -m mergan_tf sample ...` and `python scripts/sample.py ...`)
Every class uses the same n latent vectors `noise(n, seed)`. A `.png` output is a grid
(rows = classes, columns = samples); a `.npz` holds `images` uint8 [N, H, W, C], `labels`
int32 [N] and `z` float32 [N, z_dim]. The generator's batch norm uses batch statistics, so
by default (`--batching as_trained`) the request is generated in the regime the run
trained in (`batch_regime` of the export): each class its own batch for the sequential
methods, as in the release; for joint training (JT) one batch holding every learned class
in equal counts. `--batching per_class`, `mixed` or `joint` (the whole request as one
batch) choose explicitly. This file imports nothing from mergan_tf, so it can be copied
next to an export and run as `python sample.py ...`.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from PIL import Image  # noqa: E402

flags.DEFINE_string("saved_model", None, "Export directory (holding saved_model.pb).")
flags.DEFINE_list("classes", None, "Class ids, e.g. 0,3; default: every learned class.")
flags.DEFINE_integer("n", 64, "Samples per class.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the latent vectors (same seed, same images).")
flags.DEFINE_list("out", ["samples.png"], "Outputs: .png grid and/or .npz arrays.")
flags.DEFINE_enum("batching", "as_trained", ["as_trained", "per_class", "mixed", "joint"],
                  "as_trained: the export's batch_regime (default); per_class: each class its "
                  "own batch (release mergan.py); mixed: one batch completed to equal counts of "
                  "every learned class (JT, release joint.py); joint: the request as one batch.")
flags.DEFINE_integer("pad", 2, "Pixels between the grid's images.", lower_bound=0)
flags.mark_flag_as_required("saved_model")
FLAGS = flags.FLAGS


def grid(images, rows, pad):
    """uint8 [rows*cols, H, W, C] -> one [rows*H + gaps, cols*W + gaps] image."""
    n, h, w, c = images.shape
    cols = n // rows
    out = np.zeros((rows * (h + pad) - pad, cols * (w + pad) - pad, c), np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, cols)
        out[r * (h + pad):r * (h + pad) + h, col * (w + pad):col * (w + pad) + w] = image
    return out[..., 0] if c == 1 else out


def class_ids(values, meta):
    """--classes as ints, each a label slot of the sampler (0 .. num_label_slots - 1)."""
    slots = meta["num_label_slots"]
    try:
        classes = [int(c) for c in values]
    except ValueError:
        raise app.UsageError(f"--classes must be comma-separated class ids, got "
                             f"{','.join(values)}") from None
    bad = [c for c in classes if not 0 <= c < slots]
    if bad:
        raise app.UsageError(
            f"--classes {','.join(map(str, bad))}: outside this {meta['dataset']} sampler's "
            f"classes 0..{slots - 1} (learned: {meta['learned_classes']})")
    return classes


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    bad = [p for p in FLAGS.out if os.path.splitext(p)[1].lower() not in (".png", ".npz")]
    if bad:
        raise app.UsageError(f"--out must end in .png or .npz, got {bad}")
    if not os.path.isfile(os.path.join(FLAGS.saved_model, "saved_model.pb")):
        raise app.UsageError(
            f"--saved_model {FLAGS.saved_model} is not an exported sampler (no saved_model.pb "
            "there): pass a directory written by mergan-export, e.g. <run>/export/task_NN")
    sampler = tf.saved_model.load(FLAGS.saved_model)
    if not hasattr(sampler, "metadata_json"):
        raise app.UsageError(f"{FLAGS.saved_model} is a SavedModel but not a mergan_tf sampler "
                             "(it has no metadata_json): export a run with mergan-export")
    meta = json.loads(sampler.metadata_json.numpy())
    classes = class_ids(FLAGS.classes, meta) if FLAGS.classes else meta["learned_classes"]
    unlearned = sorted(set(classes) - set(meta["learned_classes"]))
    if unlearned:
        logging.warning("classes %s are not learned by this snapshot (learned: %s)",
                        unlearned, meta["learned_classes"])
    z = np.tile(sampler.noise(FLAGS.n, FLAGS.seed).numpy(), (len(classes), 1))
    labels = np.repeat(np.asarray(classes, np.int32), FLAGS.n)
    batching = FLAGS.batching
    if batching == "as_trained":  # exports made before batch_regime existed: per class
        batching = "mixed" if meta.get("batch_regime") == "mixed" else "per_class"
    if batching == "mixed" and not hasattr(sampler, "sample_mixed"):
        raise app.UsageError(f"{FLAGS.saved_model} has no sample_mixed function (an older "
                             "export): export the snapshot again with scripts/export.py")
    fn = {"per_class": sampler.sample_per_class, "joint": sampler.sample,
          "mixed": getattr(sampler, "sample_mixed", None)}[batching]
    images = fn(z, labels).numpy()
    for path in FLAGS.out:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if path.lower().endswith(".npz"):
            np.savez(path, images=images, labels=labels, z=z)
        else:
            Image.fromarray(grid(images, len(classes), FLAGS.pad)).save(path)
        print(f"written: {path} ({len(classes)} classes x {FLAGS.n} samples)")


def run():
    """Entry point of `mergan-sample` (mergan_tf.commands.run_main, written out here so that
    this file needs no mergan_tf)."""
    sys.modules["__main__"].__doc__ = __doc__  # absl's usage text
    for flag in FLAGS.get_flags_for_module(__name__):  # what --help lists
        FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(main)


if __name__ == "__main__":
    run()
