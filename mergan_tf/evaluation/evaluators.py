"""Which evaluator a spec names: a stored one or one of the release's pretrained nets.

`--evaluator` / `--evaluator_dir` take either a directory written by
`classifiers.save_classifier` or `release:PREFIX`, the release's TF1 checkpoint of its
evaluator (`release_classifiers`). This module resolves the spec; it sits above both, so
neither of them imports the other.
"""

from mergan_tf.evaluation import classifiers, release_classifiers

RELEASE_PREFIX = "release:"


def load_evaluator(spec, min_accuracy=None, dataset=None):
    """An evaluator: a directory written by `classifiers.save_classifier`, or
    `release:PREFIX`, the release's pretrained classifier of `dataset` read from its TF1
    checkpoint PREFIX (`mergan_tf.evaluation.release_classifiers`).

    Args:
      spec: the directory, or "release:" followed by the checkpoint prefix.
      min_accuracy: see `classifiers.load_classifier`. Release evaluators carry no recorded
        accuracy, so a floor above 0 cannot be checked for them and is refused.
      dataset: the dataset being evaluated (required for a release evaluator).

    Returns:
      (model, metadata); a release evaluator's metadata has "kind": "release" and
      "test_accuracy": None.

    Raises:
      classifiers.EvaluatorError: as `classifiers.load_classifier` /
        `release_classifiers.load_release_classifier`.
    """
    spec = str(spec)
    if not spec.startswith(RELEASE_PREFIX):
        return classifiers.load_classifier(spec, min_accuracy=min_accuracy, dataset=dataset)
    if min_accuracy:
        raise classifiers.EvaluatorError(
            f"{spec}: the release's evaluators have no recorded real-test accuracy, so an "
            f"accuracy floor ({min_accuracy}%) cannot be checked; drop --min_evaluator_accuracy")
    return release_classifiers.load_release_classifier(spec[len(RELEASE_PREFIX):], dataset)


def describe_evaluator(spec, metadata):
    """One line naming an evaluator and its real-test accuracy, for logs and reports."""
    if metadata.get("kind") == "release":
        return (f"release evaluator: {metadata['description']} (the release's "
                f"{metadata['release_file']}), read from {metadata['checkpoint']}; fed as the "
                f"release's test mode; no real-test accuracy recorded")
    return (f"evaluator {spec} (real test accuracy {float(metadata['test_accuracy']):.2f}%)")
