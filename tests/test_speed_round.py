"""benchmarks/speed_round.py: its rows and its table (the timings themselves are a benchmark)."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = """
import json
import speed_round as s
s.FLAGS(['speed_round', '--ablations', '--baseline_tree', '/old/tree', '--noplain', '--iters', '7'])
rows = {name: [row[0], row[1], row[2] if len(row) > 2 else None] for name, row in s.rows().items()}
table = s.format_table({s.SFT_ROW: [200.0, 210.0, 190.0], 'other': [300.0, 400.0, 350.0]},
                       {s.SFT_ROW: 57.6, 'other': None}, 360.0)
print(json.dumps({'rows': rows, 'table': table}))
"""


def test_rows_and_table():
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                              [ROOT, os.path.join(ROOT, "benchmarks")])))
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = out["rows"]
    # Each trainer row of this tree has its baseline row, run from the baseline's own tree.
    tree, cmd, env = rows["baseline trainer RA(9) bf16"]
    assert tree == "/old/tree" and cmd[1] == "/old/tree/benchmarks/throughput.py"
    assert cmd[cmd.index("--learned_classes") + 1] == "9" and cmd[cmd.index("--iters") + 1] == "7"
    # Ablations: flags of this tree's rows, and oneDNN settings as the row's environment.
    assert rows["trainer SFT bf16, --kernels tf"][1][-2:] == ["--kernels", "tf"]
    assert rows["trainer SFT float32, TF_ENABLE_ONEDNN_OPTS=0"][2] == {"TF_ENABLE_ONEDNN_OPTS": "0"}
    assert rows["trainer SFT bf16, ONEDNN_PRIMITIVE_CACHE_CAPACITY=0"][2] == {
        "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "0"}
    assert rows["trainer SFT bf16"][2] is None and "plain tf.nn bf16" not in rows
    # Medians, the ratio to bf16 SFT and GFLOP/s with the fraction of the bf16 peak:
    # 57.6 GFLOP in 200 ms = 288 GFLOP/s = 80% of 360.
    lines = out["table"].splitlines()
    assert lines[2] == "| trainer SFT bf16 | 200.0 (200.0, 210.0, 190.0) | 1.00x | 288 (80%) |"
    assert lines[3] == "| other | 350.0 (300.0, 400.0, 350.0) | 1.75x |  |"
