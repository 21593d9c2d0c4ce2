"""One interleaved speed round: each repetition runs every row once, in order.

  python benchmarks/speed_round.py --data_dir ../shared/data/mnist --reps 3 \
      [--baseline_tree /path/to/old/worktree] [--torch_python ~/venvs/torch/bin/python] \
      [--pause 'reproduce_table1.py|ewc_sweep.py']

The judges of the step's speed (`throughput.py`, `plain_step.py`, the PyTorch peer
`peers/torch_step.py`) each run as their own process, so a row's trace, threads and memory
do not touch the next. A repetition starts with a matmul reading (`peak.py`): the machine's
speed drifts 2-3x in a day, so only rows of one round compare, and the reading says what
fraction of the CPU's peak a step reaches. The medians over the repetitions are printed as
a Markdown table (ms per outer iteration, each repetition's figure, the ratio to this
tree's bf16 SFT, GFLOP/s).

Rows: this tree's trainer (SFT in bf16 and float32, RA and JTR with 9 learned classes in
bf16; under --ablations also SFT and JTR with --kernels tf and with --nobatch_critic_inputs,
and SFT without oneDNN's primitive cache and, in float32, without oneDNN), the plain `tf.nn` step, the same trainer rows of an older commit
(`--baseline_tree`, a `git worktree` of it: its own benchmarks run on its own package) and
PyTorch eager float32 (`--torch_python`, an interpreter with torch, which is not a
dependency of mergan_tf: `python -m venv ~/venvs/torch && ~/venvs/torch/bin/pip install
torch==2.13.0`, the CPU build).

`--pause PATTERN` stops the processes whose command line matches PATTERN (`pgrep -f`, for
example training runs) with SIGSTOP for the round and continues them with SIGCONT after
it, also when the round fails.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

flags.DEFINE_string("data_dir", None, "MNIST IDX directory for the trainer rows (default: the "
                    "automatic source).")
flags.DEFINE_integer("reps", 3, "Interleaved repetitions (medians are printed).")
flags.DEFINE_integer("iters", 20, "Timed outer iterations per row and repetition.")
flags.DEFINE_integer("warmup", 3, "Untimed outer iterations first.")
flags.DEFINE_string("baseline_tree", None, "A worktree of an older commit: its trainer rows "
                    "(SFT bf16 and float32, RA and JTR bf16) join the round.")
flags.DEFINE_string("torch_python", None, "A Python with torch: the PyTorch eager float32 row.")
flags.DEFINE_boolean("ablations", False, "Also this tree's rows with --kernels tf and "
                     "--nobatch_critic_inputs (TensorFlow's gradients, one generator call per "
                     "critic update).")
flags.DEFINE_boolean("plain", True, "Include the plain tf.nn step (bf16, the trainer's "
                     "activation).")
flags.DEFINE_string("pause", None, "pgrep -f pattern of processes to SIGSTOP during the round.")
flags.DEFINE_list("only", None, "Run only the rows whose names contain one of these strings.")
FLAGS = flags.FLAGS

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.path.dirname(HERE)
SFT_ROW = "trainer SFT bf16"
# Environment rows under --ablations: oneDNN's primitive cache off (each convolution
# primitive re-created at every call), and oneDNN off altogether (TensorFlow's Eigen
# kernels; float32 only, bf16 would be emulated).
ONEDNN_ABLATIONS = {"SFT bf16": [{"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "0"}],
                    "SFT float32": [{"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "0"},
                                    {"TF_ENABLE_ONEDNN_OPTS": "0"}]}


def _trainer(tree: str, method: str, learned: int, precision: str, *extra: str) -> list[str]:
    cmd = [sys.executable, os.path.join(tree, "benchmarks", "throughput.py"), "--method", method,
           "--learned_classes", str(learned), "--mixed_precision", precision,
           "--iters", str(FLAGS.iters), "--warmup", str(FLAGS.warmup), *extra]
    return cmd + (["--data_dir", FLAGS.data_dir] if FLAGS.data_dir else [])


def rows() -> dict[str, tuple]:
    """{row name: (tree whose package it imports, command[, extra environment])}, in the
    order they run."""
    out = {}
    trainer_rows = [("SFT bf16", "sft", 0, "bf16"), ("SFT float32", "sft", 0, "none"),
                    ("RA(9) bf16", "ra", 9, "bf16"), ("JTR(9) bf16", "jtr", 9, "bf16")]
    for name, method, learned, precision in trainer_rows:
        out[f"trainer {name}"] = (TREE, _trainer(TREE, method, learned, precision))
        if FLAGS.ablations and name in ("SFT bf16", "JTR(9) bf16"):
            out[f"trainer {name}, --kernels tf"] = (
                TREE, _trainer(TREE, method, learned, precision, "--kernels", "tf"))
            out[f"trainer {name}, --nobatch_critic_inputs"] = (
                TREE, _trainer(TREE, method, learned, precision, "--nobatch_critic_inputs"))
        if FLAGS.ablations and name in ("SFT bf16", "SFT float32"):
            # oneDNN settings: no primitive cache (every primitive re-created per call)
            for env in ONEDNN_ABLATIONS[name]:
                label = ", ".join(f"{k}={v}" for k, v in env.items())
                out[f"trainer {name}, {label}"] = (
                    TREE, _trainer(TREE, method, learned, precision), env)
        if FLAGS.baseline_tree:
            out[f"baseline trainer {name}"] = (
                FLAGS.baseline_tree, _trainer(FLAGS.baseline_tree, method, learned, precision))
    if FLAGS.plain:
        out["plain tf.nn bf16"] = (TREE, [
            sys.executable, os.path.join(HERE, "plain_step.py"), "--mixed_precision", "bf16",
            "--leaky_relu", "from_output", "--iters", str(FLAGS.iters),
            "--warmup", str(FLAGS.warmup)])
    if FLAGS.torch_python:
        out["PyTorch eager float32"] = (TREE, [
            FLAGS.torch_python, os.path.join(HERE, "peers", "torch_step.py"),
            "--iters", str(FLAGS.iters), "--warmup", str(FLAGS.warmup)])
    if FLAGS.only:
        out = {k: v for k, v in out.items() if any(s in k for s in FLAGS.only)}
    return out


def _last(pattern: str, text: str) -> float | None:
    found = re.findall(pattern, text)
    return float(found[-1]) if found else None


def run_row(tree: str, cmd: list[str], extra_env: dict | None = None) -> tuple[float, float | None]:
    """(ms per outer iteration, GFLOP per outer iteration or None) of one row's process."""
    env = dict(os.environ, PYTHONPATH=tree, TF_CPP_MIN_LOG_LEVEL="2", **(extra_env or {}))
    done = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True)
    ms = _last(r"ms_per_iter=([0-9.]+)", done.stdout)
    if done.returncode != 0 or ms is None:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode} without ms_per_iter=:\n"
                           f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return ms, _last(r"gflop_per_iter=([0-9.]+)", done.stdout)


def peak_reading() -> tuple[float, float]:
    """(float32, bf16) GFLOP/s of a 2048 matmul now (`peak.py`)."""
    done = subprocess.run([sys.executable, os.path.join(HERE, "peak.py")], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=TREE), check=True)
    return (_last(r"float32_gflops=([0-9.]+)", done.stdout),
            _last(r"bf16_gflops=([0-9.]+)", done.stdout))


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def paused_pids(pattern: str | None) -> list[int]:
    if not pattern:
        return []
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found if int(p) != os.getpid()]


def main(argv):
    del argv
    table = rows()
    times = {name: [] for name in table}
    gflops: dict[str, float | None] = {}
    peaks = []
    pids = paused_pids(FLAGS.pause)
    _signal_all(pids, signal.SIGSTOP)
    start = time.time()
    try:
        for rep in range(FLAGS.reps):
            peaks.append(peak_reading())
            print(f"repetition {rep + 1}: matmul float32 {peaks[-1][0]:.0f}, bf16 "
                  f"{peaks[-1][1]:.0f} GFLOP/s", flush=True)
            for name, (tree, cmd, *env) in table.items():
                if rep > 0 and cmd[1].endswith("throughput.py"):  # FLOPs counted once
                    cmd = cmd + ["--noflops"]
                ms, gflop = run_row(tree, cmd, *env)
                times[name].append(ms)
                gflops.setdefault(name, gflop)
                print(f"  {name}: {ms:.1f} ms", flush=True)
    finally:
        _signal_all(pids, signal.SIGCONT)
    print(f"\n{FLAGS.reps} interleaved repetitions in {(time.time() - start) / 60:.1f} min; "
          f"{len(pids)} processes paused. Matmul (2048) float32 "
          f"{np.median([p[0] for p in peaks]):.0f}, bf16 {np.median([p[1] for p in peaks]):.0f} "
          f"GFLOP/s (medians).\n")
    print(format_table(times, gflops, np.median([p[1] for p in peaks])))


def format_table(times: dict[str, list[float]], gflops: dict, bf16_peak: float) -> str:
    """Markdown: row, median ms (repetitions), ratio to this tree's bf16 SFT, GFLOP/s."""
    base = float(np.median(times[SFT_ROW])) if times.get(SFT_ROW) else None
    lines = ["| row | ms per outer iteration | vs trainer SFT bf16 | GFLOP/s (of bf16 peak) |",
             "|---|---|---|---|"]
    for name, ms in times.items():
        med = float(np.median(ms))
        ratio = f"{med / base:.2f}x" if base else ""
        rate = ""
        if gflops.get(name):
            rate = f"{gflops[name] / med * 1000:.0f} ({gflops[name] / med * 1000 / bf16_peak:.0%})"
        lines.append(f"| {name} | {med:.1f} ({', '.join(f'{m:.1f}' for m in ms)}) | {ratio} | {rate} |")
    return "\n".join(lines)


if __name__ == "__main__":
    app.run(main)
