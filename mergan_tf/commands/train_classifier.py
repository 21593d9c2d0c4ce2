"""Train the evaluator classifier of a dataset on its real train split.

The release scores generators with a classifier pretrained on real data (MNIST: an MLP,
SVHN: a conv net, LSUN: a VGG16 over ten categories, labelled with the release's ids). This trains that classifier, prints `test_accuracy=<percent>` on the
real test split and stores `<out_dir>/classifier.keras` + `classifier.json`.

  mergan-train-classifier --dataset mnist --data_dir ../shared/data/mnist
  mergan-train-classifier --dataset svhn --data_dir DIR_WITH_MAT_FILES
  mergan-train-classifier --dataset lsun --data_dir LSUN_DIR --max_images_per_class 20000

(also `python -m mergan_tf train-classifier ...` and `python scripts/train_classifier.py ...`)
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from mergan_tf import data  # noqa: E402
from mergan_tf.data import lsun  # noqa: E402
from mergan_tf.commands import run_main  # noqa: E402
from mergan_tf.evaluation import classifiers  # noqa: E402
from mergan_tf.models import classifiers as classifier_models  # noqa: E402

flags.DEFINE_string("dataset", "mnist", "Dataset name: mnist, svhn, lsun, fashion_mnist, ...")
flags.DEFINE_string("data_dir", None, "Directory with the IDX files or SVHN .mat files, or "
                    "LSUN's <category>/{train,val}/ folders or <category>_{train,val}_lmdb "
                    "(default: a prepared/online TFDS copy).")
flags.DEFINE_list("categories", list(lsun.LSUN_CATEGORIES), "LSUN: the categories to train "
                  "on; each keeps the release's id (bedroom 0 ... restaurant 9).")
flags.DEFINE_integer("max_images_per_class", None, "LSUN: first N images of each category.")
flags.DEFINE_enum("arch", None, list(classifier_models.ARCHITECTURES),
                  "Classifier (default: vgg16 for lsun, mlp for 1-channel data, svhn_conv "
                  "otherwise; vgg_small: an eighth of vgg16's width, for trials).")
flags.DEFINE_integer("epochs", None, "Epochs (default per arch: "
                     f"{classifiers.DEFAULT_EPOCHS}).")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_float("learning_rate", None, "Adam learning rate, cosine-decayed to 0 "
                   f"(default per arch: {classifiers.DEFAULT_LEARNING_RATE}).")
flags.DEFINE_float("dropout", 0.2, "Dropout rate of the hidden layers.")
flags.DEFINE_integer("seed", 0, "Seed of weights, dropout and shuffling.")
flags.DEFINE_string("out_dir", None, "Output directory (default "
                    "checkpoints/classifiers/<dataset>).")
FLAGS = flags.FLAGS
# --help lists the flags in these groups.
HELP_GROUPS = (
    ("data", ("dataset", "data_dir", "categories", "max_images_per_class")),
    ("model", ("arch", "dropout")),
    ("training", ("epochs", "batch_size", "learning_rate", "seed")),
    ("outputs", ("out_dir",)),
    ("run control", ("debug",)),
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    out_dir = FLAGS.out_dir or classifiers.default_dir(FLAGS.dataset)
    try:
        if FLAGS.dataset == "lsun":
            dataset = lsun.load_evaluator_data(FLAGS.data_dir, FLAGS.categories,
                                               max_images_per_class=FLAGS.max_images_per_class)
        else:
            dataset = data.load_dataset(FLAGS.dataset, data_dir=FLAGS.data_dir)
        test_images, test_labels = classifiers.require_test_split(dataset)
    except (data.DataError, classifiers.EvaluatorError) as e:
        raise app.UsageError(str(e))
    model, metadata = classifiers.train_classifier(
        dataset, FLAGS.arch, FLAGS.epochs, FLAGS.batch_size, FLAGS.seed,
        FLAGS.learning_rate, FLAGS.dropout, verbose=2)
    accuracy = classifiers.evaluate_classifier(model, test_images, test_labels)
    metadata.update(test_accuracy=accuracy, num_test_images=len(test_labels))
    classifiers.save_classifier(model, out_dir, metadata)
    logging.info("%s on %s: trained in %.0f s, saved to %s", metadata["arch"],
                 dataset.source, metadata["train_time_s"], out_dir)
    floor = classifiers.ACCURACY_FLOOR.get(FLAGS.dataset)
    if floor is not None and accuracy < floor:
        logging.warning("test accuracy %.2f%% is below the %.2f%% that load_classifier "
                        "requires for %s; train longer.", accuracy, floor, FLAGS.dataset)
    print(f"test_accuracy={accuracy:.2f}")


def run():
    """Entry point of `mergan-train-classifier`."""
    logging.set_verbosity(logging.INFO)
    run_main(main, __doc__, [__name__], groups=HELP_GROUPS)


if __name__ == "__main__":
    run()
