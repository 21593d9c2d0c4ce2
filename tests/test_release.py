"""Importing the original release's TF1 GAN checkpoints (mergan_tf.release, release_import).

The tests write their own release-format checkpoints (tests/release_checkpoints.py): the
golden weights (the release's own code on fixed weights: ../shared/golden where present,
else the same parameters redrawn by tests/golden_helpers.py with the committed reference
outputs of tests/golden/), and random weights under the release's names, checked against
a numpy NCHW forward pass of the release's networks (tests/release_reference.py).
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import golden_helpers
import release_reference as ref
from release_checkpoints import file_digests, random_arrays, save_release_checkpoint
from mergan_tf import export, figures, release, release_import, snapshots
from mergan_tf.models import dcgan32, resnet64

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# ../shared/golden beside the repository; MERGAN_GOLDEN_DIR points elsewhere (a worktree).
GOLDEN_DIR = os.environ.get("MERGAN_GOLDEN_DIR", os.path.join(ROOT, "..", "shared", "golden"))


def rel_err(actual, expected):
    """max |actual - expected| / max |expected|."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def nchw_flat(images):
    """NHWC images -> the release's flat NCHW [N, C*H*W]."""
    images = np.asarray(images)
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def nhwc(flat, channels, size):
    return np.asarray(flat, np.float32).reshape(-1, channels, size, size).transpose(0, 2, 3, 1)


def imported_models(prefix, dataset):
    gan = release.read_gan(prefix, dataset)
    module = dcgan32 if gan.arch == "dcgan32" else resnet64
    generator = module.Generator(gan.channels, gan.dim)
    critic = module.Critic(gan.channels, gan.dim)
    release.assign_gan(gan, generator, critic)
    return gan, generator, critic


def golden(name):
    """The golden file `name` of ../shared/golden, or where it is absent (a fresh clone) the
    same arrays from the redrawn parameters and inputs (golden_helpers) and the committed
    reference outputs (tests/golden/)."""
    path = os.path.join(GOLDEN_DIR, name)
    if os.path.exists(path):
        return np.load(path)
    stem = name[:-len(".npz")]
    channels = int(stem[-1])
    params = golden_helpers.init_params(channels)
    pert = golden_helpers.perturbed_params(params)
    names = golden_helpers.pert_param_names(params)
    return {**params, **golden_helpers.gan32_inputs(channels), **golden_helpers.load_fixture(stem),
            "param_names": list(params), "pert_param_names": names,
            **{"pert/" + n: pert[n] for n in names}}


# ----------------------------------------------------------------- golden (release code)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("variant", ["", "pert_"])
def test_golden_gan32_reproduced_through_a_release_checkpoint(tmp_path, variant, channels):
    f = golden(f"gan32_c{channels}.npz")
    dataset = "mnist" if channels == 1 else "svhn"
    params = {str(n): f[n] for n in f["param_names"]}
    if variant:  # non-zero biases and per-class BN tables: labels and biases matter
        params.update({str(n): f["pert/" + n] for n in f["pert_param_names"]})
    assert set(params) == set(ref.gan32_shapes(32, channels, old=False))  # the tests' own list
    arrays = {**params, **random_arrays(ref.adam_slots({k: v.shape for k, v in params.items()}))}
    prefix = save_release_checkpoint(str(tmp_path / "model" / "WGAN_GP.model0-4000"), arrays)
    gan, generator, critic = imported_models(prefix, dataset)
    assert (gan.dim, gan.channels, gan.has_old, gan.unexpected) == (32, channels, False, ())
    g_out = nchw_flat(generator(tf.constant(f["z"]), tf.constant(f["labels"])))
    d_real, ac_real = critic(tf.constant(nhwc(f["x"], channels, 32)))
    d_fake, ac_fake = critic(tf.constant(nhwc(g_out, channels, 32)))
    errors = {"G_out": rel_err(g_out, f[variant + "G_out"]),
              "D_real": rel_err(d_real, f[variant + "D_real"]),
              "D_fake": rel_err(d_fake, f[variant + "D_fake"]),
              "D_real_acgan": rel_err(ac_real, f[variant + "D_real_acgan"]),
              "D_fake_acgan": rel_err(ac_fake, f[variant + "D_fake_acgan"])}
    assert max(errors.values()) < 1e-4, errors
    # The numpy reference the other tests rely on computes the release's outputs too.
    p = {k: v.astype(np.float64) for k, v in params.items()}
    assert rel_err(ref.gan32_generator(p, f["z"].astype(np.float64), f["labels"], 32, channels),
                   f[variant + "G_out"]) < 1e-5
    assert rel_err(ref.gan32_critic(p, f["x"].astype(np.float64), 32, channels)[0],
                   f[variant + "D_real"]) < 1e-5
    print(f"gan32 c{channels} {variant or 'init'}: max relative error vs golden", errors)


# ----------------------------------------------------------------- own weights


def check_against_reference(prefix, dataset, arrays, generator_fn, critic_fn, size, channels):
    gan, generator, critic = imported_models(prefix, dataset)
    rs = np.random.RandomState(5)
    z = rs.randn(6, 128).astype(np.float32)
    labels = np.array([0, 0, 3, 3, 7, 7], np.int32)
    x = rs.uniform(-1, 1, (6, channels * size * size)).astype(np.float32)
    p = {k: v.astype(np.float64) for k, v in arrays.items()}
    g_ref = generator_fn(p, z.astype(np.float64), labels)
    assert rel_err(nchw_flat(generator(tf.constant(z), tf.constant(labels))), g_ref) < 1e-4
    d, ac = critic(tf.constant(nhwc(x, channels, size)))
    d_ref, ac_ref = critic_fn(p, x.astype(np.float64))
    assert rel_err(d, d_ref) < 1e-4 and rel_err(ac, ac_ref) < 1e-4
    return gan


def test_gan32_three_channels_matches_the_release_layout(tmp_path):
    shapes = ref.gan32_shapes(8, 3)
    arrays = random_arrays({**shapes, **ref.adam_slots(shapes)}, seed=1)
    prefix = save_release_checkpoint(str(tmp_path / "WGAN_GP.model3-8000"), arrays)
    gan = check_against_reference(
        prefix, "svhn", arrays, lambda p, z, y: ref.gan32_generator(p, z, y, 8, 3),
        lambda p, x: ref.gan32_critic(p, x, 8, 3), 32, 3)
    assert (gan.arch, gan.dim, gan.channels, gan.has_old) == ("dcgan32", 8, 3, True)


def test_resnet64_matches_the_release_layout(tmp_path):
    shapes = ref.gan64_shapes(4)
    arrays = random_arrays(shapes, seed=2)
    prefix = save_release_checkpoint(str(tmp_path / "WGAN_GP.modelkitchen-20000"), arrays)
    gan = check_against_reference(
        prefix, "lsun", arrays, lambda p, z, y: ref.gan64_generator(p, z, y, 4),
        lambda p, x: ref.gan64_critic(p, x, 4), 64, 3)
    assert (gan.arch, gan.dim) == ("resnet64", 4)


# ----------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def mnist_checkpoint(tmp_path_factory):
    """A small (DIM 8) MNIST release checkpoint, task 3 (class 2), and its arrays."""
    arrays = random_arrays(ref.gan32_shapes(8, 1), seed=3)
    folder = tmp_path_factory.mktemp("release") / "model"
    return save_release_checkpoint(str(folder / "WGAN_GP.model2-4000"), arrays), arrays


def test_missing_files_are_named(tmp_path, mnist_checkpoint):
    prefix, _ = mnist_checkpoint
    with pytest.raises(release.ReleaseCheckpointError, match=r"nothing\.index does not exist"):
        release.read_gan(str(tmp_path / "nothing"), "mnist")
    with pytest.raises(release.ReleaseCheckpointError, match="is a directory.*WGAN_GP.model2-4000"):
        release.read_gan(os.path.dirname(prefix), "mnist")
    assert release.read_gan(prefix + ".index", "mnist").prefix == prefix  # a file of it is fine
    data = str(tmp_path / "copy")
    save_release_checkpoint(data, {"New.Generator.Input.W": np.zeros((128, 512), np.float32)})
    os.remove(data + ".data-00000-of-00001")
    with pytest.raises(release.ReleaseCheckpointError, match="cannot read"):
        release.read_values(data, ["New.Generator.Input.W"])
    open(data + ".data-00000-of-00001", "wb").close()  # an empty, truncated data file
    with pytest.raises(release.ReleaseCheckpointError, match="missing or truncated"):
        release.read_values(data, ["New.Generator.Input.W"])


def test_another_dataset_or_model_lists_expected_and_found(tmp_path, mnist_checkpoint):
    prefix, _ = mnist_checkpoint
    with pytest.raises(release.ReleaseCheckpointError) as e:
        release.read_gan(prefix, "svhn")
    message = str(e.value)
    assert "New.Generator.5.Filters expected [5, 5, 3, 8], found [5, 5, 1, 8]" in message
    assert "pass --dataset mnist" in message
    with pytest.raises(release.ReleaseCheckpointError) as e:
        release.read_gan(prefix, "lsun")
    message = str(e.value)
    assert "missing" in message and "New.Generator.Res1.Conv1.Filters [3, 3, 512, 512]" in message
    assert "found instead" in message and "Discriminator.1.Filters [5, 5, 1, 8]" in message
    evaluator = save_release_checkpoint(str(tmp_path / "mnist.model-10197"),
                                        random_arrays({"fc1/fc1_weights": (1024, 1024)}))
    with pytest.raises(release.ReleaseCheckpointError, match="--evaluator release:PREFIX"):
        release.read_gan(evaluator, "mnist")
    with pytest.raises(release.ReleaseCheckpointError, match="not 'cifar10'"):
        release.read_gan(prefix, "cifar10")


# ----------------------------------------------------------------- the run directory


def test_import_writes_a_run_that_loads_samples_and_draws(tmp_path, mnist_checkpoint):
    prefix, arrays = mnist_checkpoint
    before = file_digests(prefix)
    out = str(tmp_path / "run")
    manifest = release_import.import_release([prefix], "mnist", out, method="ra")
    assert file_digests(prefix) == before  # the checkpoint is only read
    assert manifest["snapshots"] == [3] and manifest["checkpoints"][0]["iteration"] == 4000
    cfg = snapshots.load_run_config(out)
    assert (cfg.method.name, cfg.model.dim, cfg.model.channels) == ("ra", 8, 1)
    generator, info = snapshots.load_generator(out, 3)
    assert info["classes"] == [0, 1, 2] and info["imported_from"] == prefix
    z = np.random.RandomState(0).randn(4, 128).astype(np.float32)
    p = {k: v.astype(np.float64) for k, v in arrays.items()}
    expected = ref.gan32_generator(p, z.astype(np.float64), np.full(4, 2), 8, 1)
    assert rel_err(nchw_flat(generator(z, tf.fill([4], 2))), expected) < 1e-4
    sampler = tf.saved_model.load(os.path.join(out, "export", "task_03"))
    exported = sampler.sample(tf.constant(z), tf.fill([4], 2)).numpy()
    assert np.abs(exported.astype(int) - np.round((nhwc(expected, 1, 32) + 1) * 127.5)).max() <= 1
    written = figures.make_figures([out], str(tmp_path / "figures"))
    assert all(os.path.exists(p) for paths in written.values() for p in paths)
    assert len(written["gif"]) == 1 and len(written["evolution"]) == 1


def test_task_comes_from_the_name_or_flag_and_joint_is_jt(tmp_path, mnist_checkpoint):
    prefix, arrays = mnist_checkpoint
    assert release_import.plan_checkpoint(prefix, "mnist").task == 3
    assert release_import.plan_checkpoint(prefix, "mnist", task=5).task == 5
    new_only = {k: v for k, v in arrays.items() if not k.startswith("Old.")}
    joint = save_release_checkpoint(str(tmp_path / "WGAN_GP.model-40000"), new_only)
    manifest = release_import.import_release([joint], "mnist", str(tmp_path / "jt"),
                                             export_samplers=False)
    assert manifest["method"] == "jt" and manifest["snapshots"] == [10]
    assert snapshots.read_snapshot_info(str(tmp_path / "jt"), 10)["classes"] == list(range(10))
    renamed = save_release_checkpoint(str(tmp_path / "my_model"), new_only)
    with pytest.raises(release_import.ReleaseImportError, match="pass --task T"):
        release_import.plan_checkpoint(renamed, "mnist")
    with pytest.raises(release_import.ReleaseImportError, match="joint training"):
        release_import.import_release([joint], "mnist", str(tmp_path / "x"), method="ra")


def test_out_dir_is_never_clobbered(tmp_path, mnist_checkpoint, monkeypatch):
    prefix, _ = mnist_checkpoint
    out = tmp_path / "run"
    release_import.import_release([prefix], "mnist", str(out), export_samplers=False)
    with pytest.raises(release_import.ReleaseImportError, match="not empty.*--overwrite"):
        release_import.import_release([prefix], "mnist", str(out))
    (out / "notes.txt").write_text("mine")
    manifest = release_import.import_release([prefix], "mnist", str(out), task=4, overwrite=True,
                                             export_samplers=False)
    assert snapshots.list_snapshots(str(out)) == [4] and manifest["snapshots"] == [4]
    assert (out / "notes.txt").read_text() == "mine"  # not written by the import: kept
    assert not os.path.exists(out / "samples" / "Task_3_Iter_4000_0.png")  # the earlier import's

    def fail(*args, **kwargs):
        raise RuntimeError("interrupted")
    monkeypatch.setattr(export, "export_snapshot", fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        release_import.import_release([prefix], "mnist", str(out), overwrite=True)
    assert json.loads((out / release_import.IMPORT_JSON).read_text())["complete"] is False
    monkeypatch.undo()
    manifest = release_import.import_release([prefix], "mnist", str(out), overwrite=True,
                                             export_samplers=False)
    assert manifest["complete"] and snapshots.list_snapshots(str(out)) == [3]
    trained = tmp_path / "trained"
    os.makedirs(trained / "snapshots" / "task_01")
    (trained / "snapshots" / "task_01" / "snapshot.json").write_text(json.dumps({"task": 1}))
    (trained / "config.json").write_text("{}")
    with pytest.raises(release_import.ReleaseImportError, match="no import wrote"):
        release_import.import_release([prefix], "mnist", str(trained), overwrite=True)
    assert (trained / "config.json").read_text() == "{}"
