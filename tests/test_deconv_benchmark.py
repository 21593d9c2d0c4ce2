"""benchmarks/deconv.py --per_layer: its forms compute conv2d_transpose, and a form that
does not is refused before it is timed (the timings themselves are a benchmark)."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
           PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "benchmarks")]))

PROBE = """
import numpy as np, tensorflow as tf
import deconv as d
d.FLAGS(['deconv', '--per_layer', '--batch', '3', '--mixed_precision', 'none'])
x = tf.random.stateless_normal([3, 5, 7, 6], seed=[5, 6])
k = tf.random.stateless_normal([5, 5, 4, 6], seed=[7, 8])
want = tf.nn.conv2d_transpose(x, k, [3, 10, 14, 4], 2, 'SAME')
got = d.four_phase_conv2d_transpose(x, k)
print('error', float(tf.norm(got - want) / tf.norm(want)))
d._PHASES[0] = ((1, 3), (1, 0))  # the even phase's taps swapped: another function
try:
    d.layer_rows()
    print('refused no')
except AssertionError as e:
    print('refused', 'four phases' in str(e))
"""


def test_four_phases_equal_conv2d_transpose_and_a_wrong_form_is_refused():
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    error = float(re.search(r"^error (\S+)$", proc.stdout, re.M).group(1))
    assert error < 1e-6
    assert "refused True" in proc.stdout


def test_per_layer_rows_print_every_form_of_every_layer():
    proc = subprocess.run(
        [sys.executable, "benchmarks/deconv.py", "--per_layer", "--batch", "2", "--reps", "1",
         "--iters", "1", "--warmup", "1", "--mixed_precision", "none"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = re.findall(r"^(\S+ -> \S+): (.+): [\d.]+ ms, \d+ GFLOP/s", proc.stdout, re.M)
    assert len(rows) == 12
    assert {layer for layer, _ in rows} == {"4x4x128 -> 8x8x64", "8x8x64 -> 16x16x32",
                                            "16x16x32 -> 32x32x1"}
    assert {form for _, form in rows} == {"conv2d_transpose", "conv2d_transpose NCHW",
                                          "sub-pixel 3x3", "four phases"}
    assert re.search(r"^matmul float32: \d+ GFLOP/s", proc.stdout, re.M)
