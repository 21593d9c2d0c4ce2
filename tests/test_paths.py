"""Default locations: the same from any working directory, overridable, and named in the
message when nothing is there."""

import os

import pytest

from mergan_tf import paths
from mergan_tf.evaluation import classifiers, protocol

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_default_evaluator_dir_is_the_same_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.CHECKPOINTS_ENV, raising=False)
    seen = []
    for cwd in (tmp_path, tmp_path / "elsewhere" / "deeper", ROOT):
        os.makedirs(cwd, exist_ok=True)
        monkeypatch.chdir(cwd)
        seen.append((classifiers.default_dir("mnist"), protocol.default_classifier_dir("mnist")))
    assert len(set(seen)) == 1
    assert seen[0][0] == os.path.join(ROOT, "checkpoints", "classifiers", "mnist")


def test_environment_variable_overrides_the_checkpoints_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.CHECKPOINTS_ENV, str(tmp_path / "ck"))
    monkeypatch.chdir(ROOT)
    assert classifiers.default_dir("svhn") == str(tmp_path / "ck" / "classifiers" / "svhn")


def test_missing_default_evaluator_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.CHECKPOINTS_ENV, str(tmp_path / "ck"))
    with pytest.raises(classifiers.EvaluatorError) as e:
        classifiers.load_classifier(classifiers.default_dir("mnist"), dataset="mnist")
    message = str(e.value)
    assert repr(str(tmp_path / "ck" / "classifiers" / "mnist")) in message
    assert "the default evaluator directory" in message and "$MERGAN_CHECKPOINTS" in message
    assert "`python scripts/train_classifier.py --dataset mnist`" in message  # no --out_dir


def test_missing_given_evaluator_names_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(classifiers.EvaluatorError) as e:
        classifiers.load_classifier("mine", dataset="mnist")
    assert repr(str(tmp_path / "mine")) in str(e.value) and "the directory given" in str(e.value)
    assert "--out_dir mine" in str(e.value)
