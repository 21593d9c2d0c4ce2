"""mergan_tf.run_dir: atomic writes that never leave half a file, and names recovery knows."""

import json
import os

import pytest

from mergan_tf import recovery, run_dir


def test_write_json_and_text_replace_the_file_whole(tmp_path):
    path = str(tmp_path / "sub" / "eval.json")
    run_dir.write_json(path, {"b": 1, "a": [1, 2]})
    with open(path) as f:
        assert f.read() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}'
    run_dir.write_text(path, "second\r\n")
    with open(path, newline="") as f:
        assert f.read() == "second\r\n"  # newlines as given
    assert os.listdir(tmp_path / "sub") == ["eval.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "scalars.csv")
    run_dir.write_text(path, "old")

    def failing_writer():
        with run_dir.atomic_path(path) as tmp, open(tmp, "w") as f:
            f.write("half a fi")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        failing_writer()
    with open(path) as f:
        assert f.read() == "old"
    assert os.listdir(tmp_path) == ["scalars.csv"]


def test_temporary_names_keep_the_extension_that_picks_the_format():
    pid = os.getpid()
    assert run_dir.temporary_name("/r/samples/a.png") == f"/r/samples/a.png.tmp-{pid}"
    assert run_dir.temporary_name("/r/samples/a.png", keep_extension=True) == f"/r/samples/a.png.tmp-{pid}.png"


def test_recovery_removes_the_temporary_files_of_dead_writers(tmp_path):
    """A kill between write and rename leaves `<name>.tmp-<pid>[.ext]`; resume removes it,
    and leaves alone the temporary file of a live writer (pid 1 here)."""
    dead = 2 ** 22 + 12345  # above Linux's default pid_max: no such process
    for name in (f"config.json.tmp-{dead}", f"a.png.tmp-{dead}.png", "eval.md.tmp-1"):
        (tmp_path / name).write_text("partial")
    (tmp_path / "config.json").write_text(json.dumps({"kept": True}))
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / f"Task_1_Iter_2_0.png.tmp-{dead}.png").write_text("partial")
    assert os.path.basename(run_dir.temporary_name(str(tmp_path / "a.png"), True)) != "a.png"
    recovery.remove_interrupted_writes(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["config.json", "eval.md.tmp-1", "samples"]
    assert os.listdir(tmp_path / "samples") == []
    assert json.loads((tmp_path / "config.json").read_text()) == {"kept": True}


def test_run_files_name_every_top_level_file_a_run_writes():
    assert run_dir.CONFIG in run_dir.RUN_FILES and run_dir.IDENTITY in run_dir.RUN_FILES
    assert {sub for sub, _ in run_dir.RUN_ENTRIES} == {
        run_dir.SAMPLES, run_dir.SNAPSHOTS, run_dir.CHECKPOINTS, run_dir.EXPORT,
        run_dir.TENSORBOARD, run_dir.DEBUG}
    assert run_dir.task_dir("/r", run_dir.SNAPSHOTS, 3) == os.path.join("/r", "snapshots", "task_03")
