"""Generator metrics of the paper (section 4): accuracy, reverse accuracy and FID.

* Accuracy (release "test mode"): samples of each learned class are classified by an
  evaluator pretrained on real data; the score is the share recognised as that class.
* Reverse accuracy (section 4.2): a fresh classifier trained ONLY on generated samples is
  tested on real images of the learned classes.
* FID: Frechet distance between Gaussians fitted to features of real and generated images.

A generator is seen here as a plain callable ``sample_fn(z, labels) -> images`` returning
float32 NHWC images in [-1, 1]. Its conditional BatchNorm uses batch statistics, so each
call holds the batch the run trained on (`mergan_tf.sampling`): ONE class (a batch of 64 by
default, release `mergan.py`), or for JT every class in equal counts (release `joint.py`).
"""

import functools
import os

import keras
import numpy as np
import scipy.linalg
import tensorflow as tf

from mergan_tf import sampling
from mergan_tf.evaluation import classifiers

Z_DIM = 128
INCEPTION_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_SIZE = 299


class FeatureExtractorError(RuntimeError):
    """A feature extractor (e.g. InceptionV3 weights) is not available."""


def _checked(images, n: int) -> np.ndarray:
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[0] != n:
        raise ValueError(f"sample_fn returned shape {images.shape}; expected [{n}, H, W, C]")
    return images


def _class_batches(sample_fn, label, num_batches, batch_size, rng, z_dim):
    """Yields `num_batches` float32 batches of class `label`, one sample_fn call each."""
    labels = np.full([batch_size], label, np.int32)
    for _ in range(num_batches):
        z = rng.standard_normal((batch_size, z_dim)).astype(np.float32)
        yield _checked(sample_fn(z, labels), batch_size)


def _mixed_batches(sample_fn, classes, n_per_class, rng, z_dim) -> dict[int, np.ndarray]:
    """{class: n_per_class images} from mixed batches: each sample_fn call holds
    `sampling.mixed_per_class` images of every class (the release's joint.py test mode)."""
    labels = sampling.mixed_batch_labels(classes, sampling.mixed_per_class(len(classes)))
    per = len(labels) // len(classes)
    parts = {c: [] for c in classes}
    for _ in range(-(-n_per_class // per)):
        z = rng.standard_normal((len(labels), z_dim)).astype(np.float32)
        images = _checked(sample_fn(z, labels), len(labels))
        for c in classes:
            parts[c].append(images[labels == c])
    return {c: np.concatenate(parts[c])[:n_per_class] for c in classes}


def class_images(sample_fn, classes, n_per_class, batch_size=64, rng=None, z_dim=Z_DIM,
                 regime=sampling.CLASS) -> dict[int, np.ndarray]:
    """`n_per_class` generated images of every class, in the run's batch regime.

    Args:
      sample_fn: callable (z float32 [n, z_dim], labels int32 [n]) -> images in [-1, 1].
      classes: the classes to generate, in order.
      n_per_class: images of each class.
      batch_size: "class" regime: every call holds `batch_size` samples of one class (the
        last batch of a class is generated in full and truncated).
      rng: a numpy RandomState for z ~ N(0, I) (default RandomState(0)).
      regime: "class" (one class per call) or "mixed" (every call holds equal counts of
        every class; see `mergan_tf.sampling`).

    Returns:
      {class: float32 images [n_per_class, H, W, C]}.
    """
    rng = np.random.RandomState(0) if rng is None else rng
    classes = [int(c) for c in classes]
    if sampling.check_regime(regime) == sampling.MIXED:
        return _mixed_batches(sample_fn, classes, n_per_class, rng, z_dim)
    num_batches = -(-n_per_class // batch_size)
    return {c: np.concatenate(list(_class_batches(sample_fn, c, num_batches, batch_size, rng,
                                                  z_dim)))[:n_per_class] for c in classes}


def generate_class_samples(sample_fn, classes, n_per_class, batch_size=64, seed=0,
                           z_dim=Z_DIM, regime=sampling.CLASS):
    """Generates `n_per_class` images of every class (see `class_images`), with z from a
    numpy RandomState seeded with `seed`.

    Returns:
      (images float32 [len(classes) * n_per_class, H, W, C], labels int64 [...]), grouped
      by class in the order of `classes`.
    """
    by_class = class_images(sample_fn, classes, n_per_class, batch_size,
                            np.random.RandomState(seed), z_dim, regime)
    images = np.concatenate([by_class[int(c)] for c in classes])
    labels = np.concatenate([np.full([n_per_class], c, np.int64) for c in classes])
    return images, labels


def class_accuracy(sample_fn, classifier, classes, label_map=None, batches=100,
                   batch_size=64, seed=0, z_dim=Z_DIM, regime=sampling.CLASS):
    """Release test-mode accuracy: the share of each class's samples classified as it.

    Args:
      sample_fn: callable (z float32 [n, z_dim], labels int32 [n]) -> images in [-1, 1].
      classifier: evaluator keras.Model (images -> logits).
      classes: the generator's learned class ids.
      label_map: maps a generator class to the evaluator's class id (list or dict);
        identity by default. LSUN uses [0, 1, 8, 6].
      batches: batches of `batch_size` samples per class (release: 100 x 64); a "mixed"
        run is scored on as many samples per class, drawn in mixed batches.
      seed: seeds the noise (numpy RandomState).
      regime: "class" (one class per batch, release mergan.py) or "mixed" (release
        joint.py); see `mergan_tf.sampling`.

    Returns:
      {"per_class": {class: percent}, "mean": percent over classes,
       "n_per_class": samples per class, "regime": the batch regime}.
    """
    classes = [int(c) for c in classes]
    if not classes:
        raise ValueError("class_accuracy needs at least one class")
    n = batches * batch_size
    by_class = class_images(sample_fn, classes, n, batch_size, np.random.RandomState(seed),
                            z_dim, regime)
    per_class = {}
    for c in classes:
        target = c if label_map is None else int(label_map[c])
        predicted = classifiers.predict_labels(classifier, by_class[c])
        per_class[c] = classifiers.percent_correct(predicted, np.full(n, target))
    return {"per_class": per_class, "mean": float(np.mean(list(per_class.values()))),
            "n_per_class": n, "regime": regime}


def reverse_accuracy(train_images, train_labels, test_images, test_labels, arch,
                     epochs=None, batch_size=64, seed=0, num_classes=None, **fit_kwargs):
    """Reverse accuracy (paper sec. 4.2): train on generated images, test on real ones.

    Args:
      train_images, train_labels: GENERATED samples (float [-1, 1] or uint8) and their
        conditioning classes, equal numbers per learned class (generate_class_samples).
      test_images, test_labels: the REAL test split; only images of classes present in
        train_labels are used.
      arch: the evaluator's architecture (`models.classifiers.ARCHITECTURES`).
      epochs, batch_size, seed, **fit_kwargs: passed to classifiers.fit_classifier.
      num_classes: classifier outputs; default max label + 1.

    Returns:
      Accuracy in percent of the fresh classifier on the real test images of the
      learned classes.
    """
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    keep = np.isin(test_labels, np.unique(train_labels))
    if not keep.any():
        raise ValueError("The real test split holds none of the generated classes")
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels[keep].max())) + 1
    model = classifiers.fit_classifier(train_images, train_labels, arch, num_classes,
                                       epochs, batch_size, seed, **fit_kwargs)
    return classifiers.evaluate_classifier(model, np.asarray(test_images)[keep],
                                           test_labels[keep])


def feature_statistics(features):
    """Mean and covariance (float64) of features [N, D], N >= 2."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"Need features [N >= 2, D]; got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)).

    Args:
      mu1, mu2: means [D].
      sigma1, sigma2: covariances [D, D].
      eps: diagonal offset added to both covariances when the product's square root is
        not finite (singular covariances, e.g. fewer samples than dimensions).

    Returns:
      The distance as a Python float.

    Raises:
      ValueError: on mismatched shapes or a square root with a large imaginary part.
    """
    mu1, mu2 = np.atleast_1d(np.float64(mu1)), np.atleast_1d(np.float64(mu2))
    sigma1, sigma2 = np.atleast_2d(np.float64(sigma1)), np.atleast_2d(np.float64(sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or \
            sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"Mismatched statistics: {mu1.shape}, {sigma1.shape}, "
                         f"{mu2.shape}, {sigma2.shape}")
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(mu1.size) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
        if not np.isfinite(covmean).all():
            raise ValueError("Square root of the covariance product is not finite")
    if np.iscomplexobj(covmean):
        max_imag = np.max(np.abs(np.diagonal(covmean).imag))
        if max_imag > 1e-3:
            raise ValueError(f"Square root of the covariance product has an imaginary "
                             f"component of {max_imag:.3g}")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid(features_a, features_b):
    """Frechet distance between the Gaussians fitted to two feature sets [N, D]."""
    return frechet_distance(*feature_statistics(features_a),
                            *feature_statistics(features_b))


def fid_per_class(real_by_class, fake_by_class, feature_fn):
    """FID of every class and of all classes pooled.

    Args:
      real_by_class: {class: real images}; fake_by_class: {class: generated images},
        with the same classes.
      feature_fn: images -> features [N, D] (e.g. inception_features, or
        functools.partial(classifiers.penultimate_features, model)).

    Returns:
      {"per_class": {class: fid}, "all": fid of the pooled features}.
    """
    if set(real_by_class) != set(fake_by_class):
        raise ValueError(f"Classes differ: real {sorted(real_by_class)}, "
                         f"fake {sorted(fake_by_class)}")
    real = {c: np.asarray(feature_fn(x)) for c, x in real_by_class.items()}
    fake = {c: np.asarray(feature_fn(x)) for c, x in fake_by_class.items()}
    per_class = {c: fid(real[c], fake[c]) for c in sorted(real)}
    pooled = fid(np.concatenate([real[c] for c in sorted(real)]),
                 np.concatenate([fake[c] for c in sorted(fake)]))
    return {"per_class": per_class, "all": pooled}


def inception_weights_path():
    """Path of the cached no-top InceptionV3 weights, or raises FeatureExtractorError."""
    if "KERAS_HOME" in os.environ:
        homes = [os.environ["KERAS_HOME"]]
    else:
        homes = [os.path.join(os.path.expanduser("~"), ".keras"),
                 os.path.join("/tmp", ".keras")]
    candidates = [os.path.join(h, "models", INCEPTION_WEIGHTS_FILE) for h in homes]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise FeatureExtractorError(
        f"InceptionV3 ImageNet weights for FID are not available: none of {candidates} "
        f"exists and they are never downloaded here. Place {INCEPTION_WEIGHTS_FILE} in "
        f"{os.path.dirname(candidates[0])} (or pass weights_path=...), or run once on a "
        "machine with network access so Keras caches them.")


@functools.lru_cache(maxsize=2)
def _inception_model(weights_path):
    """InceptionV3 up to global average pooling (2048 features), built once per file."""
    return keras.applications.InceptionV3(
        include_top=False, pooling="avg", weights=weights_path,
        input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))


def inception_features(images, batch_size=50, weights_path=None):
    """InceptionV3 pool features (float32 [N, 2048]) of uint8 or [-1, 1] float images.

    Images are resized to 299x299 and grey images repeated to 3 channels. Keras's
    InceptionV3 expects inputs in [-1, 1], our range, so no further scaling. These are
    Keras's ImageNet weights, not the TF-slim graph of the reference FID code, so values
    compare with each other but not with published FIDs.

    Raises:
      FeatureExtractorError: when the weights file is not cached (checked before Keras is
        called, so it fails at once instead of waiting on network retries).
    """
    if weights_path is not None and not os.path.isfile(weights_path):
        raise FeatureExtractorError(f"InceptionV3 weights file {weights_path!r} not found")
    model = _inception_model(weights_path or inception_weights_path())
    images = np.asarray(images)
    features = []
    for i in range(0, len(images), batch_size):
        x = tf.image.resize(classifiers.to_classifier_input(images[i:i + batch_size]),
                            (INCEPTION_SIZE, INCEPTION_SIZE), method="bilinear")
        if x.shape[-1] == 1:
            x = tf.repeat(x, 3, axis=-1)
        features.append(np.asarray(model.predict_on_batch(x)))
    return np.concatenate(features).astype(np.float32)
