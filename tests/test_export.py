"""Export: snapshot -> SavedModel -> load in a fresh Python without the project -> the same
images as the in-memory generator; signatures, per-class batches, seeds, scripts, figures."""

import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageSequence

from mergan_tf import configs, export, figures, images, snapshots
from mergan_tf.run_dir import prepare_run_dir
from mergan_tf.tasks import should_sample
from mergan_tf.trainer import Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = (0, 1)
ITERS = 2

# Runs in a fresh interpreter without mergan_tf (`python_without_project`, cwd outside the
# repo): TensorFlow only.
LOADER = r'''
import json, os, sys
import numpy as np
import tensorflow as tf

export_dir, inputs, out = sys.argv[1:4]
result = {"sys_path_has_repo": any(os.path.exists(os.path.join(p or ".", "mergan_tf"))
                                   for p in sys.path)}
try:
    import mergan_tf  # noqa: F401
    result["mergan_tf_importable"] = True
except ImportError:
    result["mergan_tf_importable"] = False
m = tf.saved_model.load(export_dir)
result["metadata"] = json.loads(m.metadata_json.numpy())
d = np.load(inputs)
z, labels = d["z"], d["labels"]
arrays = {
    "joint": m.sample(z, labels).numpy(),
    "per_class": m.sample_per_class(z, labels).numpy(),
    "class_a": m.sample_class(5, 1, 7).numpy(),
    "class_b": m.sample_class(5, 1, 7).numpy(),
    "class_other_seed": m.sample_class(5, 1, 8).numpy(),
    "noise": m.noise(5, 7).numpy(),
}
bad = {
    "z_float64": (tf.constant(z, tf.float64), labels),
    "labels_int64": (z, tf.constant(labels, tf.int64)),
    "z_wrong_width": (z[:, :64], labels),
    "labels_rank2": (z, labels[:, None]),
    "rows_mismatch": (z, labels[:3]),
    "label_out_of_range": (z, labels + 10),
}
result["errors"] = {}
for name, args in bad.items():
    try:
        m.sample(*args)
        result["errors"][name] = None
    except Exception as e:  # the type and message a user sees
        result["errors"][name] = [type(e).__name__, str(e)[:600]]
result["signatures"] = sorted(m.signatures)
serve = m.signatures["serving_default"]
arrays["serving"] = serve(z=tf.constant(z), labels=tf.constant(labels))["images"].numpy()
unlearned = tf.constant(np.where(labels == 1, 7, labels).astype(np.int32))
try:
    serve(z=tf.constant(z), labels=unlearned)
    result["errors"]["serving_unlearned"] = None
except Exception as e:
    result["errors"]["serving_unlearned"] = [type(e).__name__, str(e)[:600]]
arrays["any_label"] = m.signatures["sample_any_label"](
    z=tf.constant(z), labels=unlearned)["images"].numpy()
np.savez(os.path.join(out, "loaded.npz"), **arrays)
with open(os.path.join(out, "loaded.json"), "w") as f:
    json.dump(result, f)
'''


def clean_env():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def run(args, cwd, isolated=False, python=None):
    cmd = (python or [sys.executable] + (["-I"] if isolated else [])) + args
    proc = subprocess.run(cmd, cwd=cwd, env=clean_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc.stdout


def max_diff(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


@pytest.fixture(scope="module")
def run_dir(mnist_data, tmp_path_factory):
    """A tiny real run: 2 tasks x 2 iterations of MeRGAN-RA, grids at every iteration."""
    out = tmp_path_factory.mktemp("run_ra")
    cfg = configs.preset_config("mnist", "ra")
    cfg = configs.validate(cfg.replace(
        classes=CLASSES, out_dir=str(out), model=dataclasses.replace(cfg.model, dim=8),
        train=dataclasses.replace(cfg.train, iters=ITERS),
        output=dataclasses.replace(cfg.output, sample_every=1, log_every=1)))
    prepare_run_dir(cfg)
    Trainer(cfg, mnist_data).train()
    return str(out)


@pytest.fixture(scope="module")
def exported(run_dir):
    """Every task exported; returns the final task's export."""
    paths = export.export_run(run_dir)
    assert paths == [export.export_dir(run_dir, t) for t in (1, 2)]
    return paths[-1]


@pytest.fixture(scope="module")
def request_inputs():
    """A mixed-label request, classes interleaved (not sorted)."""
    rs = np.random.RandomState(3)
    labels = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1, 1], np.int32)
    return rs.randn(len(labels), 128).astype(np.float32), labels


# Runs SCRIPT ARGS... with the site directories of FARMS: sys.path is the standard library
# (`python -I -S`) and those directories, whose .pth files are processed as usual.
WITHOUT_PROJECT = r'''
import runpy, site, sys
for directory in FARMS:
    site.addsitedir(directory)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
'''


@pytest.fixture(scope="module")
def python_without_project(tmp_path_factory):
    """The command of a fresh Python that has every installed package but mergan_tf: each
    site directory of `python -I` is remade of symlinks to its entries, less the package,
    its metadata and an editable install's hooks. So the package is hidden whether it is
    installed (editable or not) or not: a machine with TensorFlow but not this project."""
    root = tmp_path_factory.mktemp("without_project")
    code = "import json, site; print(json.dumps(site.getsitepackages()))"
    site_dirs = json.loads(subprocess.run([sys.executable, "-I", "-c", code], capture_output=True,
                                          text=True, check=True).stdout)
    farms = []
    for i, directory in enumerate(d for d in site_dirs if os.path.isdir(d)):
        farm = root / f"site_{i}"
        farm.mkdir()
        for name in os.listdir(directory):
            if "mergan_tf" not in name.lower().replace("-", "_"):
                os.symlink(os.path.join(directory, name), farm / name)
        farms.append(str(farm))
    (root / "run.py").write_text(f"FARMS = {farms!r}\n" + WITHOUT_PROJECT)
    return [sys.executable, "-I", "-S", str(root / "run.py")]


@pytest.fixture(scope="module")
def loaded(exported, request_inputs, python_without_project, tmp_path_factory):
    """What a fresh Python without mergan_tf, outside the repo, gets from the SavedModel."""
    tmp = tmp_path_factory.mktemp("fresh")
    (tmp / "loader.py").write_text(LOADER)
    np.savez(tmp / "inputs.npz", z=request_inputs[0], labels=request_inputs[1])
    run([str(tmp / "loader.py"), exported, str(tmp / "inputs.npz"), str(tmp)], cwd=tmp,
        python=python_without_project)
    with open(tmp / "loaded.json") as f:
        return json.load(f), dict(np.load(tmp / "loaded.npz"))


@pytest.fixture(scope="module")
def generator(run_dir):
    return snapshots.load_generator(run_dir, len(CLASSES))[0]


def generate(generator, z, labels):
    return images.to_uint8(generator(z, labels).numpy())


def per_class_reference(generator, z, labels):
    """One in-memory generator call per class, put back in request order."""
    out = np.zeros((len(labels), 32, 32, 1), np.uint8)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        out[rows] = generate(generator, z[rows], labels[rows])
    return out


def test_export_layout_and_metadata(run_dir, exported, loaded):
    for name in ("saved_model.pb", "variables", "export.json"):
        assert os.path.exists(os.path.join(exported, name)), name
    assert sorted(os.listdir(os.path.join(run_dir, "export"))) == ["task_01", "task_02"]
    meta = export.read_export_metadata(exported)
    assert loaded[0]["metadata"] == meta
    cfg = snapshots.load_run_config(run_dir)
    assert meta["run_config"] == json.loads(json.dumps(cfg.to_dict()))
    assert (meta["dataset"], meta["method"], meta["task"]) == ("mnist", "ra", 2)
    assert meta["learned_classes"] == meta["task_order"] == list(CLASSES)
    assert meta["class_names"][:3] == ["0", "1", "2"] and len(meta["class_names"]) == 10
    assert meta["iteration"] == ITERS - 1
    assert meta["z_dim"] == 128 and meta["image_shape"] == [32, 32, 1]
    assert "batch" in meta["batch_statistics"]
    task1 = export.read_export_metadata(export.export_dir(run_dir, 1))
    assert (task1["task"], task1["learned_classes"]) == (1, [0])


def test_loads_without_project_code_and_matches_generator(loaded, generator, request_inputs):
    info, arrays = loaded
    assert not info["mergan_tf_importable"] and not info["sys_path_has_repo"]
    z, labels = request_inputs
    assert arrays["joint"].dtype == np.uint8
    assert max_diff(arrays["joint"], generate(generator, z, labels)) <= 1


def test_sample_per_class_equals_separate_class_calls(loaded, generator, request_inputs):
    _, arrays = loaded
    z, labels = request_inputs
    assert max_diff(arrays["per_class"], per_class_reference(generator, z, labels)) <= 1
    # Batch statistics matter: one mixed batch is not the release's per-class batches.
    assert max_diff(arrays["per_class"], arrays["joint"]) > 1


def test_sample_class_is_deterministic_in_its_seed(loaded, generator):
    _, arrays = loaded
    assert arrays["class_a"].shape == (5, 32, 32, 1)
    np.testing.assert_array_equal(arrays["class_a"], arrays["class_b"])
    assert not np.array_equal(arrays["class_a"], arrays["class_other_seed"])
    reference = generate(generator, arrays["noise"], np.ones(5, np.int32))
    assert max_diff(arrays["class_a"], reference) <= 1


def test_signature_rejects_wrong_dtypes_and_shapes(loaded):
    errors = loaded[0]["errors"]
    for name, expected in [("z_float64", "float64"), ("labels_int64", "int64"),
                           ("z_wrong_width", "(10, 64)"), ("labels_rank2", "(10, 1)")]:
        kind, message = errors[name]
        assert kind == "TypeError", (name, errors[name])
        assert message.startswith("Binding inputs to tf.function failed")
        assert "Can not cast" in message
        assert expected in message
    assert "TensorSpec(shape=(None, 128), dtype=tf.float32, name='z')" in errors["z_float64"][1]
    assert "same number of rows" in errors["rows_mismatch"][1]
    assert "labels must be in [0, 10)" in errors["label_out_of_range"][1]


def test_serving_default_samples_learned_classes_per_class(loaded, generator, request_inputs):
    info, arrays = loaded
    assert info["signatures"] == ["sample_any_label", "serving_default"]
    z, labels = request_inputs
    assert arrays["serving"].dtype == np.uint8
    # A sequential run's regime: each class its own batch.
    assert max_diff(arrays["serving"], per_class_reference(generator, z, labels)) <= 1
    kind, message = info["errors"]["serving_unlearned"]
    assert kind == "InvalidArgumentError"
    assert "labels must be classes this snapshot has learned after task 2: [0, 1]" in message
    assert "sample_any_label" in message and "[7]" in message
    # Deliberately: slot 7 (never trained) through sample_any_label, one batch per class.
    any_labels = np.where(labels == 1, 7, labels).astype(np.int32)
    assert max_diff(arrays["any_label"], per_class_reference(generator, z, any_labels)) <= 1


def test_saved_model_cli_runs_serving_default(exported, generator, request_inputs, tmp_path):
    z, labels = request_inputs
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "labels.npy", labels)
    cli = ["-m", "tensorflow.python.tools.saved_model_cli", "run", "--dir", exported,
           "--tag_set", "serve", "--signature_def", "serving_default"]
    run(cli + ["--inputs", "z=z.npy;labels=labels.npy", "--outdir", "out"], cwd=tmp_path)
    images = np.load(tmp_path / "out" / "images.npy")
    assert images.shape == (len(labels), 32, 32, 1) and images.dtype == np.uint8
    assert max_diff(images, per_class_reference(generator, z, labels)) <= 1
    proc = subprocess.run([sys.executable] + cli + ["--inputs", "z=z.npy", "--input_exprs",
                                                    f"labels={[7] + [0] * (len(z) - 1)}"],
                          cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0
    assert "labels must be classes this snapshot has learned after task 2: [0, 1]" in proc.stderr


def test_tfsm_layer_calls_serving_default(exported, generator, request_inputs):
    import keras
    import tensorflow as tf
    z, labels = request_inputs
    layer = keras.layers.TFSMLayer(exported, call_endpoint="serving_default")
    images = layer({"z": tf.constant(z), "labels": tf.constant(labels)})["images"].numpy()
    assert max_diff(images, per_class_reference(generator, z, labels)) <= 1


def old_style_export(run_dir, task, path):
    """An export as written before serving_default existed: the same sampler without the
    two serving functions, saved without signatures."""
    import tensorflow as tf
    sampler = export.build_sampler(run_dir, task)
    del sampler.serving_default, sampler.sample_any_label
    tf.saved_model.save(sampler, path)
    return path


def test_exports_without_serving_default_still_sample(run_dir, generator, tmp_path):
    import tensorflow as tf
    old = old_style_export(run_dir, len(CLASSES), str(tmp_path / "old_export"))
    loaded = tf.saved_model.load(old)
    assert not hasattr(loaded, "serving_default") and "serving_default" not in loaded.signatures
    run([os.path.join(ROOT, "scripts", "sample.py"), "--saved_model", old, "--n", "4",
         "--out", "old.npz"], cwd=tmp_path, isolated=True)
    d = np.load(tmp_path / "old.npz")
    np.testing.assert_array_equal(d["labels"], np.repeat(np.int32(CLASSES), 4))
    assert max_diff(d["images"], per_class_reference(generator, d["z"], d["labels"])) <= 1


@pytest.mark.parametrize("how", ["script", "module_copied_alone"])
def test_sample_script_writes_grid_and_arrays(how, exported, generator, python_without_project,
                                              tmp_path):
    """scripts/sample.py in a fresh `python -I`; mergan_tf/commands/sample.py copied alone
    into another directory and run by a Python without mergan_tf (docs/export.md: it can
    ship with an export)."""
    if how == "script":
        script, python = os.path.join(ROOT, "scripts", "sample.py"), None
    else:
        script = shutil.copy(os.path.join(ROOT, "mergan_tf", "commands", "sample.py"), tmp_path)
        python = python_without_project
    run([script, "--saved_model", exported, "--classes", "0,1", "--n", "6", "--seed", "1",
         "--out", "grid.png,samples.npz"], cwd=tmp_path, isolated=True, python=python)
    assert Image.open(tmp_path / "grid.png").size == (6 * 32 + 5 * 2, 2 * 32 + 2)
    d = np.load(tmp_path / "samples.npz")
    assert d["images"].shape == (12, 32, 32, 1) and d["images"].dtype == np.uint8
    np.testing.assert_array_equal(d["labels"], np.repeat(np.int32([0, 1]), 6))
    assert d["labels"].dtype == np.int32 and d["z"].shape == (12, 128)
    np.testing.assert_array_equal(d["z"][:6], d["z"][6:])  # the same z for every class
    reference = per_class_reference(generator, d["z"], d["labels"])
    assert max_diff(d["images"], reference) <= 1


@pytest.mark.parametrize("args,message", [
    (["--classes", "12"], "--classes 12: outside this mnist sampler's classes 0..9 (learned: [0, 1])"),
    (["--classes", "one"], "--classes must be comma-separated class ids, got one"),
    (["--out", "grid.jpg"], "--out must end in .png or .npz, got ['grid.jpg']"),
])
def test_sample_script_refuses_bad_requests_in_one_line(args, message, exported, tmp_path):
    flags = {"--out": "grid.png", **dict(zip(args[::2], args[1::2]))}
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "sample.py"), "--saved_model", exported,
           *(a for kv in flags.items() for a in kv)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.rstrip().splitlines()[-1] == message
    assert os.listdir(tmp_path) == []


def test_make_figures_script(run_dir, tmp_path):
    out = tmp_path / "figs"
    stdout = run([os.path.join(ROOT, "scripts", "make_figures.py"), run_dir, run_dir,
                  "--out_dir", str(out), "--num_z", "4"], cwd=tmp_path)
    name = os.path.basename(run_dir)
    fig3 = figures.figure3_grid(run_dir, num_z=4)
    assert fig3.shape == (2 * 32 + 2, 4 * 32 + 3 * 2, 1)
    # Row c is the first row of the class-c grid written at the last training iteration.
    for i, c in enumerate(CLASSES):
        last_grid = os.path.join(run_dir, "samples", f"Task_2_Iter_{ITERS - 1}_{c}.png")
        grid = np.asarray(Image.open(last_grid))
        for k in range(4):
            tile = fig3[i * 34:i * 34 + 32, k * 34:k * 34 + 32, 0]
            assert max_diff(tile, grid[:32, k * 32:(k + 1) * 32]) <= 1
    # The files are the grids with labels around them (title, class names, columns).
    mosaic = figures.remembering_mosaic(run_dir)[0]
    for path, raw in ((out / f"{name}_figure3.png", fig3), (out / f"{name}_mosaic.png", mosaic)):
        width, height = Image.open(path).size
        assert width > raw.shape[1] + 30 and height > raw.shape[0] + 30, (path, width, height)
    assert Image.open(out / "remembering.png").size[0] > 200
    gif = Image.open(out / f"{name}_training.gif")
    iters_sampled = sum(should_sample(i, 1) or i == ITERS - 1 for i in range(ITERS))
    assert sum(1 for _ in ImageSequence.Iterator(gif)) == len(CLASSES) * iters_sampled
    for kind in ("figure3", "mosaic", "gif"):
        assert stdout.count(f"{kind}: ") == 2, stdout
    assert f"figure3: {out / name}_figure3.png" in stdout and "remembering:" in stdout


def test_plot_forgetting_script_prints_the_file_it_wrote(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "forgetting.csv").write_text(
        "global_step,task,iteration,class,accuracy\n1,1,0,0,50.00\n2,1,1,0,90.00\n"
        "3,2,0,0,80.00\n3,2,0,1,10.00\n")
    stdout = run([os.path.join(ROOT, "scripts", "plot_forgetting.py"), str(run_dir),
                  "--out", "curves.png"], cwd=tmp_path)
    assert stdout.strip() == "written: curves.png"
    assert Image.open(tmp_path / "curves.png").size[0] > 100


def test_figure_labels_name_classes_tasks_and_method(run_dir):
    labels = figures.figure3_labels(run_dir, num_z=4)
    assert labels["rows"] == ["0", "1"] and labels["columns"] == ["z0", "z1", "z2", "z3"]
    assert labels["title"] == f"RA ({os.path.basename(run_dir)}): after task 2"
    labels = figures.mosaic_labels(run_dir, [0, 1], [1, 2])
    assert labels["columns"] == ["after task 1", "after task 2"]
    assert labels["rows"] == ["0", "1"] and labels["title"].startswith("RA (")
    assert figures.gif_class_captions(run_dir, [1, 0]) == {1: "class 1", 0: "class 0"}


def test_gif_frames_label_each_class_grid(run_dir, tmp_path):
    path = figures.save_training_gif(run_dir, str(tmp_path / "t.gif"), cell=64)
    last = [f.convert("L") for f in ImageSequence.Iterator(Image.open(path))][-1]
    frame = np.asarray(last)  # task 2: both classes
    header, caption, gap = 14, figures.GIF_CAPTION, 4
    assert frame.shape == (header + caption + 64, 2 * (64 + gap) - gap)
    for slot in range(2):  # text in each caption strip, above the grid
        strip = frame[header:header + caption, slot * (64 + gap):slot * (64 + gap) + 64]
        # Light text on black (the GIF palette turns 255 into ~250), not grid pixels.
        assert strip.max() > 200 and np.mean(strip == 0) > 0.6, slot


def test_export_snapshot_replaces_atomically_and_keeps_random_state(run_dir, tmp_path):
    state = random.getstate()
    target = str(tmp_path / "sampler")
    for _ in range(2):
        assert export.export_snapshot(run_dir, 1, target) == target
    assert random.getstate() == state
    assert sorted(os.listdir(tmp_path)) == ["sampler"]
    assert export.read_export_metadata(target)["task"] == 1
    with pytest.raises(snapshots.SnapshotError, match="no snapshot after task 5"):
        export.export_snapshot(run_dir, 5)
