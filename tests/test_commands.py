"""The package's command lines: console scripts, `python -m mergan_tf`, scripts/ wrappers."""

import glob
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib

from mergan_tf.commands import COMMANDS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(args, cwd):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


def test_console_scripts_are_the_commands():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        declared = tomllib.load(f)["project"]["scripts"]
    expected = {script: f"mergan_tf.commands.{module}:run"
                for module, script, _, _ in COMMANDS.values()}
    assert declared == expected
    installed = {e.name: e.value for e in importlib.metadata.distribution("mergan-tf").entry_points
                 if e.group == "console_scripts"}
    assert installed == expected


def test_every_script_is_a_thin_wrapper_of_its_command():
    wrappers = {os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "scripts", "*.py"))}
    assert wrappers == {old_script for _, _, old_script, _ in COMMANDS.values()}
    for module, _, old_script, _ in COMMANDS.values():
        with open(os.path.join(ROOT, "scripts", old_script)) as f:
            code = f.read()
        assert f"from mergan_tf.commands.{module} import run\n" in code, old_script
        assert len(code.splitlines()) <= 8, old_script


def test_no_sys_path_edits():
    edit = re.compile(r"sys\.path\.(insert|append|extend)\(|sys\.path\s*(\[.*\])?\s*=")
    for folder in ("scripts", "benchmarks", "tests", "mergan_tf"):
        for path in glob.glob(os.path.join(ROOT, folder, "**", "*.py"), recursive=True):
            with open(path) as f:
                assert not edit.search(f.read()), path


def test_python_m_mergan_tf_lists_the_commands(tmp_path):
    proc = run([sys.executable, "-m", "mergan_tf", "--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name, (_, script, old_script, _) in COMMANDS.items():
        assert re.search(rf"^  {re.escape(name)} ", proc.stdout, re.M), name
        assert f"`{script}`" in proc.stdout and f"scripts/{old_script}" in proc.stdout
    proc = run([sys.executable, "-m", "mergan_tf", "bogus"], tmp_path)
    assert proc.returncode == 2 and "unknown command 'bogus'" in proc.stderr


def test_console_script_runs_from_any_directory(tmp_path):
    # Where pip put the console scripts of this Python (else the first on PATH).
    script = shutil.which("mergan-train", path=os.pathsep.join(
        [sysconfig.get_path("scripts"), os.environ.get("PATH", "")]))
    assert script, "mergan-train is not installed: pip install -e ."
    proc = run([script, "--dataset", "svhn", "--method", "ra", "--tasks", "2", "--dry_run"],
               tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cfg = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert cfg["classes"] == [0, 1] and cfg["method"]["ra_factor"] == 0.01
    assert cfg["out_dir"] == "runs/svhn_ra" and not os.listdir(tmp_path)


def test_command_help_describes_its_flags(tmp_path):
    # (absl ends --help with exit status 1)
    proc = run([sys.executable, "-m", "mergan_tf", "evaluate", "--help"], tmp_path)
    assert proc.stdout.startswith("Evaluate a run's task snapshots")
    assert "--run_dir: Run directory" in proc.stdout and "--fid_per_class" in proc.stdout


# A path that does not exist, for each command: its one-line message names the path.
MISSING_INPUT = {
    "train": ["--dataset", "mnist", "--data_dir", "{missing}", "--out_dir", "{tmp}/run"],
    "evaluate": ["--run_dir", "{missing}"],
    "export": ["--run_dir", "{missing}"],
    "sample": ["--saved_model", "{missing}", "--out", "{tmp}/grid.png"],
    "figures": ["{missing}"],
    "train-classifier": ["--dataset", "mnist", "--data_dir", "{missing}"],
    "plot-forgetting": ["{missing}"],
    "plot-tsne": ["{missing}"],
    "import-release": ["--checkpoint", "{missing}", "--dataset", "mnist", "--out_dir",
                       "{tmp}/imported"],
}


def test_every_command_reports_a_missing_input_without_a_traceback(tmp_path):
    assert set(MISSING_INPUT) == set(COMMANDS)
    missing = str(tmp_path / "no_such_path")
    for name, args in MISSING_INPUT.items():
        args = [a.format(missing=missing, tmp=tmp_path) for a in args]
        proc = run([sys.executable, "-m", "mergan_tf", name, *args], tmp_path)
        assert proc.returncode == 1, (name, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr, (name, proc.stderr[-3000:])
        last = [line for line in proc.stderr.splitlines() if line.strip()][-1]
        assert missing in last, (name, last)
        assert os.listdir(tmp_path) == [], (name, os.listdir(tmp_path))  # nothing written


def test_guarded_prints_one_line_and_debug_shows_the_traceback(capsys):
    import pytest

    from mergan_tf import cli, configs

    def main(argv):
        raise configs.ConfigError("--ra_factor inf is not finite; give a number such as 0.01")

    with pytest.raises(SystemExit) as e:
        cli.guarded(main, debug=lambda: False)(["prog"])
    assert e.value.code == 1
    assert capsys.readouterr().err == "error: --ra_factor inf is not finite; give a number such as 0.01\n"
    with pytest.raises(configs.ConfigError):  # --debug: the error itself, with its traceback
        cli.guarded(main, debug=lambda: True)(["prog"])

    def bug(argv):
        raise ZeroDivisionError("a bug, not a user error")

    with pytest.raises(ZeroDivisionError):  # bugs keep their traceback
        cli.guarded(bug, debug=lambda: False)(["prog"])


def test_every_command_but_sample_has_the_debug_flag(tmp_path):
    # (sample imports nothing from mergan_tf, so that it runs beside an export on its own)
    for name in ("train", "export", "plot-forgetting"):
        proc = run([sys.executable, "-m", "mergan_tf", name, "--help"], tmp_path)
        assert "--[no]debug: On an error, show its Python traceback" in proc.stdout, name


def test_every_command_help_lists_its_flags_once_in_groups(tmp_path):
    """--help of every command (sample, TensorFlow-only, keeps absl's listing) shows its
    flags in titled groups ending with "run control"; `run_main` refuses to start when a
    flag of the command is in no group, so a listed help covers them all."""
    from mergan_tf import commands
    for name in commands.COMMANDS:
        if name == "sample":
            continue
        proc = run([sys.executable, "-m", "mergan_tf", name, "--help"], tmp_path)
        assert "\nFlags" in proc.stdout, (name, proc.stderr[-2000:])
        listing = proc.stdout[proc.stdout.index("\nFlags"):]
        headings = re.findall(r"^([a-z ]+):$", listing, re.M)
        assert len(headings) >= 2 and headings[-1] == "run control", (name, headings)
        listed = re.findall(r"^  --(?:\[no\])?([a-z_]+):", listing, re.M)
        assert "debug" in listed and len(listed) == len(set(listed)), (name, listed)
        assert "Try --helpfull" in listing and listing.count("--[no]debug:") == 1, name
