"""Evaluator classifiers: the release's pretrained nets, trained and stored.

The release scores a generator by classifying its samples with a classifier pretrained on
real data. Their architectures are built by `mergan_tf.models.classifiers` (built-in Keras
layers only, so a saved ``classifier.keras`` reloads with plain ``keras.models.load_model``
and no project code); this module trains, stores, loads and applies them.

A stored evaluator is a directory holding ``classifier.keras`` and ``classifier.json``
(architecture, dataset, data source, real test accuracy in percent, ...).
`load_classifier` refuses an evaluator whose stored accuracy is below the dataset's
ACCURACY_FLOOR (MNIST 97.5%, SVHN 90%): its errors on real images would swamp the few
points that separate the continual-learning methods (see the comment at the table).
"""

import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from mergan_tf import paths
from mergan_tf.data import to_model_range
from mergan_tf.models.classifiers import (FEATURES_LAYER, INPUT_RANGE, build_classifier,
                                         default_arch)
from mergan_tf.run_dir import atomic_path, write_text

MODEL_FILE = "classifier.keras"
METADATA_FILE = "classifier.json"

# Minimum real-test accuracy (percent) an evaluator must have before its verdicts on
# generated images mean anything. A sample counts as "forgotten" when the evaluator
# rejects it, so the evaluator's errors on REAL images cap every score and add noise to
# it: the methods of the paper's Table 1 differ by a few points, so an evaluator that
# misses more than ~2.5% of real MNIST digits (~10% of real SVHN digits, a harder
# dataset) would blur them. MNIST: the default MLP reaches 97.9-98.0% on the full test
# set after training on the 19,690-image subset (30 epochs); SVHN (no data here, not
# measured): conv nets of the release's size typically reach 92-95%.
# Datasets without an entry are not checked by default.
# LSUN (no data here, not measured) has no floor by default: pass one explicitly.
ACCURACY_FLOOR = {"mnist": 97.5, "svhn": 90.0}

# Per-architecture training defaults. The MLP's were tuned on MNIST (about 3 min on
# 2 CPU cores); the conv nets take ~3.5 min per SVHN epoch on 2 cores.
# VGG16 from scratch (no ImageNet weights here) learns at 1e-4 with Adam, not at 1e-3.
DEFAULT_EPOCHS = {"mlp": 30, "svhn_conv": 10, "cnn": 10, "vgg16": 10, "vgg_small": 10}
DEFAULT_LEARNING_RATE = {"mlp": 1e-3, "svhn_conv": 1e-3, "cnn": 1e-3, "vgg16": 1e-4,
                         "vgg_small": 1e-3}
TRAIN_COMMAND = "python scripts/train_classifier.py --dataset {dataset}"


def default_dir(dataset):
    """Where an evaluator for `dataset` is stored by default: the absolute
    `<checkpoints>/classifiers/<dataset>` (`paths.checkpoints_dir()`: $MERGAN_CHECKPOINTS,
    else the project's checkpoints/), the same from any working directory."""
    return os.path.join(paths.checkpoints_dir(), "classifiers", dataset)


class EvaluatorError(ValueError):
    """An evaluator classifier is missing, unreadable or not accurate enough."""


def to_classifier_input(images):
    """Returns images as float32 in [-1, 1]; uint8 input is rescaled, floats pass as is."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return to_model_range(images)
    return images.astype(np.float32, copy=False)


def _training_dataset(images, labels, batch_size, seed):
    """Shuffled batches of float32 [-1, 1] images, converted batch by batch."""
    ds = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
    ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if images.dtype == np.uint8:
        ds = ds.map(lambda x, y: (to_model_range(x), y))
    return ds.prefetch(tf.data.AUTOTUNE)


def fit_classifier(images, labels, arch, num_classes=10, epochs=None, batch_size=64,
                   seed=0, learning_rate=None, dropout=0.2, verbose=0):
    """Trains a fresh classifier on arrays of images and integer labels.

    Args:
      images: uint8 [N,H,W,C] or float32 in [-1, 1].
      labels: integer [N] class ids in [0, num_classes).
      arch: one of `models.classifiers.ARCHITECTURES`.
      num_classes: number of output logits.
      epochs: passes over the data; None uses DEFAULT_EPOCHS[arch].
      batch_size: minibatch size.
      seed: seeds weights, dropout and shuffling (keras.utils.set_random_seed).
      learning_rate: Adam learning rate, cosine-decayed to 0; None uses the arch default.
      dropout: hidden-layer dropout rate.
      verbose: keras fit verbosity.

    Returns:
      The trained keras.Model (compiled, outputs logits).
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 4 or labels.shape != (len(images),) or len(labels) == 0:
        raise ValueError(f"Expected images [N,H,W,C] and labels [N]; got "
                         f"{images.shape} and {labels.shape}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"Labels must lie in [0, {num_classes}); got "
                         f"[{labels.min()}, {labels.max()}]")
    epochs = DEFAULT_EPOCHS[arch] if epochs is None else epochs
    learning_rate = learning_rate or DEFAULT_LEARNING_RATE[arch]
    keras.utils.set_random_seed(seed)
    model = build_classifier(arch, images.shape[1:], num_classes, dropout)
    steps = epochs * int(np.ceil(len(labels) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, max(steps, 1))
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(_training_dataset(images, labels, batch_size, seed), epochs=epochs,
              shuffle=False, verbose=verbose)
    return model


def train_classifier(data, arch=None, epochs=None, batch_size=64, seed=0,
                     learning_rate=None, dropout=0.2, verbose=0):
    """Trains an evaluator on the real TRAIN split of a dataset.

    Args:
      data: a mergan_tf.data.ImageData.
      arch: one of `models.classifiers.ARCHITECTURES`; None picks
        default_arch(data.name, channels).
      epochs, batch_size, seed, learning_rate, dropout, verbose: see fit_classifier.

    Returns:
      (model, metadata): the trained model and a dict describing the run (arch, dataset,
      data source, sizes, hyperparameters, train_time_s) for save_classifier; the caller
      adds the test accuracy.
    """
    arch = arch or default_arch(data.name, data.train_images.shape[-1])
    epochs = DEFAULT_EPOCHS[arch] if epochs is None else epochs
    start = time.time()
    model = fit_classifier(data.train_images, data.train_labels, arch, data.num_classes,
                           epochs, batch_size, seed, learning_rate, dropout, verbose)
    metadata = {
        "arch": arch, "dataset": data.name, "data_source": str(data.source),
        "num_classes": int(data.num_classes),
        "input_shape": [int(d) for d in data.train_images.shape[1:]],
        "num_train_images": int(len(data.train_labels)), "epochs": int(epochs),
        "batch_size": int(batch_size), "seed": int(seed),
        "learning_rate": float(learning_rate or DEFAULT_LEARNING_RATE[arch]),
        "dropout": float(dropout), "train_time_s": round(time.time() - start, 1),
    }
    return model, metadata


def require_test_split(data):
    """Returns (test_images, test_labels) of an ImageData, or raises EvaluatorError."""
    if data.test_images is None or data.test_labels is None or len(data.test_labels) == 0:
        where = ("<data_dir>/<category>/val/ image folders (or <category>_val_lmdb)"
                 if data.name == "lsun" else
                 "a copy with a test split (for MNIST the IDX files t10k-images-idx3-ubyte.gz "
                 "and t10k-labels-idx1-ubyte.gz)")
        raise EvaluatorError(
            f"The {data.name} source {data.source!r} has no test split, so an evaluator "
            f"trained on it cannot be checked on real held-out images. Point --data_dir at "
            f"{where}.")
    return data.test_images, data.test_labels


def predict_logits(model, images, batch_size=512):
    """Logits of a classifier for uint8 or [-1, 1] float images, in chunks."""
    images = np.asarray(images)
    chunks = [model.predict_on_batch(to_classifier_input(images[i:i + batch_size]))
              for i in range(0, len(images), batch_size)]
    if not chunks:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    return np.concatenate([np.asarray(c) for c in chunks])


def predict_labels(model, images, batch_size=512):
    """Predicted class ids (int64 [N]) for uint8 or [-1, 1] float images."""
    return np.argmax(predict_logits(model, images, batch_size), axis=-1)


def percent_correct(predicted, labels):
    """Percentage of predictions equal to the labels (a float in [0, 100])."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    if predicted.shape != labels.shape or labels.size == 0:
        raise ValueError(f"Cannot score {predicted.shape} predictions on {labels.shape}")
    return 100.0 * float(np.count_nonzero(predicted == labels)) / labels.size


def evaluate_classifier(model, images, labels, batch_size=512):
    """Accuracy in PERCENT of a classifier on uint8 or [-1, 1] float images."""
    return percent_correct(predict_labels(model, images, batch_size), labels)


def penultimate_features(model, images, batch_size=512):
    """Activations of the layer named "features" (before the logits), float32 [N, D]."""
    extractor = keras.Model(model.inputs, model.get_layer(FEATURES_LAYER).output)
    return predict_logits(extractor, images, batch_size)


def _inference_copy(model):
    """The model without its compiled optimizer state (a third of the file size)."""
    copy = keras.Model.from_config(model.get_config())  # Uncompiled, unlike clone_model.
    copy.set_weights(model.get_weights())
    return copy


def save_classifier(model, directory, metadata):
    """Stores `<directory>/classifier.keras` and `<directory>/classifier.json` atomically.

    Args:
      model: the trained keras.Model.
      directory: output directory (created if needed).
      metadata: dict with at least "arch", "dataset" and "test_accuracy" (percent);
        the input range, input shape and Keras version are added.

    Returns:
      The metadata as written.
    """
    missing = {"arch", "dataset", "test_accuracy"} - set(metadata)
    if missing:
        raise ValueError(f"Classifier metadata lacks {sorted(missing)}")
    metadata = dict(metadata, input_range=INPUT_RANGE, output="logits",
                    input_shape=[int(d) for d in model.input_shape[1:]],
                    keras_version=keras.__version__)
    os.makedirs(directory, exist_ok=True)
    text = json.dumps(metadata, indent=2, sort_keys=True) + "\n"

    with atomic_path(os.path.join(directory, MODEL_FILE), keep_extension=True) as tmp:
        _inference_copy(model).save(tmp)
    write_text(os.path.join(directory, METADATA_FILE), text)
    return metadata


def _missing_message(directory, dataset):
    """Explains where the evaluator was looked for and how to create it."""
    dataset = dataset or os.path.basename(os.path.normpath(directory)) or "DATASET"
    command = TRAIN_COMMAND.format(dataset=dataset)
    where = os.path.abspath(directory)
    if where == os.path.abspath(default_dir(dataset)):
        origin = f"the default evaluator directory: {paths.describe_checkpoints()}"
    else:
        origin = "the directory given"
        command += f" --out_dir {directory}"
    return (f"No evaluator classifier in {where!r} ({origin}; expected {MODEL_FILE} and "
            f"{METADATA_FILE}); make one with `{command}`.")


def _read_metadata(directory, dataset):
    """Reads classifier.json, raising EvaluatorError when absent or unreadable."""
    model_path = os.path.join(directory, MODEL_FILE)
    meta_path = os.path.join(directory, METADATA_FILE)
    if not (os.path.isfile(model_path) and os.path.isfile(meta_path)):
        raise EvaluatorError(_missing_message(directory, dataset))
    try:
        with open(meta_path) as f:
            metadata = json.load(f)
        float(metadata["test_accuracy"])
    except (ValueError, KeyError, TypeError) as e:
        raise EvaluatorError(f"Unreadable evaluator metadata {meta_path!r} ({e}); "
                             f"retrain: {_missing_message(directory, dataset)}") from e
    return metadata


def load_classifier(directory, min_accuracy=None, dataset=None):
    """Loads a stored evaluator and checks it is good enough to judge generators.

    Args:
      directory: directory written by save_classifier.
      min_accuracy: minimum stored real-test accuracy in percent. None uses
        ACCURACY_FLOOR for the stored dataset (no check when it has no floor); 0 disables.
      dataset: if given, the stored metadata must name this dataset.

    Returns:
      (model, metadata).

    Raises:
      EvaluatorError: when the files are missing or unreadable, the dataset differs, or the
        stored accuracy is below min_accuracy.
    """
    metadata = _read_metadata(directory, dataset)
    if dataset is not None and metadata.get("dataset") != dataset:
        raise EvaluatorError(f"The evaluator in {directory!r} was trained on "
                             f"{metadata.get('dataset')!r}, not {dataset!r}.")
    if min_accuracy is None:
        min_accuracy = ACCURACY_FLOOR.get(metadata.get("dataset"), 0.0)
    accuracy = float(metadata["test_accuracy"])
    if accuracy < min_accuracy:
        raise EvaluatorError(
            f"The evaluator in {directory!r} has test accuracy {accuracy:.2f}%, below the "
            f"required {min_accuracy:.2f}%; retrain it (more epochs) or lower the floor.")
    model = keras.models.load_model(os.path.join(directory, MODEL_FILE), compile=False)
    return model, metadata
