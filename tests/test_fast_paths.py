"""The fused outer iteration and the concatenated critic call equal the straightforward path;
steps build only what their losses read; the FLOP counter of the throughput benchmark."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from tiny_run import train_two_tasks

from mergan_tf import benchmark

LR = 1e-4
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(method, mnist_data, run_dir, fast):
    return train_two_tasks(method, mnist_data, run_dir, fused_iteration=fast, concat_critic=fast,
                           batch_critic_inputs=fast)


@pytest.mark.parametrize("method", ["ra", "jtr", "jt"])
def test_fused_concatenated_and_batched_steps_train_alike(method, mnist_data, tmp_path):
    # The straightforward path (one tf.function per update, separate critic calls, each
    # critic update drawing and generating its own fakes and replays) against the default
    # one (one fused iteration, one critic call on [real; fake], the fakes and replays of
    # the five critic updates from one generator call each). JT's fakes mix classes; JTR's
    # critic updates read Old and New replays.
    plain, plain_scalars = run(method, mnist_data, tmp_path / "plain", fast=False)
    fast, fast_scalars = run(method, mnist_data, tmp_path / "fast", fast=True)
    # The same random draws in the same order: the generators' states end equal.
    np.testing.assert_array_equal(plain.rng.state.numpy(), fast.rng.state.numpy())
    # Every logged loss term of every iteration of both tasks (replay in task 2).
    # The first updates agree to float precision. Later they drift slightly, and for a
    # known reason: the biases of the deconvolutions that feed a batch norm have a true
    # gradient of exactly zero, so Adam (beta1 = 0) steps them by about lr * sign(float
    # noise), differently on each path. A wrong slice or a missing term would be off by
    # far more than 1%.
    assert plain_scalars.keys() == fast_scalars.keys()
    for (step, key), value in plain_scalars.items():
        rel = 1e-4 if int(step) <= 4 else 1e-2
        assert fast_scalars[(step, key)] == pytest.approx(value, rel=rel, abs=1e-4), (step, key)
    # Weights after 4 generator and 30 critic Adam steps: each step moves an element by at
    # most about lr, so the two paths stay within 2 lr per step of each other.
    for model, steps in (("generator", 4), ("critic", 30)):
        for va, vb in zip(getattr(plain, model).weights, getattr(fast, model).weights):
            diff = np.abs(va.numpy() - vb.numpy())
            assert diff.max() <= 2 * LR * steps, va.path


def _reads(fn, variables):
    """How many of `variables` the traced graph of `fn()` reads."""
    handles = {id(v.handle) for v in variables}
    graph = tf.function(fn).get_concrete_function().graph
    return sum(id(external) in handles for external, _ in graph.captures)


@pytest.mark.parametrize("method, old_in_generator, old_in_critic",
                         [("ra", True, False), ("jtr", False, True)])
def test_steps_build_the_old_generator_only_where_a_loss_reads_it(
        method, old_in_generator, old_in_critic, mnist_data, tmp_path):
    # RA's critic updates and JTR's generator update draw replay noise but never read
    # Old(z, c): their graphs must not contain the frozen generator's forward.
    trainer, task = benchmark.trainer_at_task(mnist_data, method, 2, str(tmp_path),
                                              {"dim": 4})
    g_fn, d_fn = trainer.task_updates(2)
    reals, labels = next(task.batches)
    old_vars = trainer.replay_generator.variables
    assert (_reads(g_fn, old_vars) > 0) == old_in_generator
    assert (_reads(lambda: d_fn(reals[0], labels[0]), old_vars) > 0) == old_in_critic
    # The same for the replays made ahead for all five critic updates.
    assert (_reads(lambda: d_fn.prepare(5), old_vars) > 0) == old_in_critic
    trainer.log.close()


def test_graph_gflops_counts_matmul_and_convolution_by_hand():
    a, b = tf.ones([64, 128]), tf.ones([128, 256])
    assert benchmark.graph_gflops(tf.matmul, a, b) * 1e9 == 2 * 64 * 128 * 256
    x, k = tf.ones([8, 16, 16, 3]), tf.ones([5, 5, 3, 32])
    conv = lambda x, k: tf.nn.conv2d(x, k, strides=2, padding="SAME")  # noqa: E731
    # 8 x 8 x 8 outputs of 32 channels, each 5 * 5 * 3 multiply-adds
    assert benchmark.graph_gflops(conv, x, k) * 1e9 == 2 * (8 * 8 * 8 * 32) * (5 * 5 * 3)


def test_trace_op_times_finds_the_ops_it_ran(tmp_path):
    # A traced function of two chained matmuls and a tanh, run 3 times under tf.profiler:
    # the trace's single-op events are kept (each op once per run, named "name:Type"); the
    # events that enclose them (the function call, the executor) are not.
    a = tf.random.stateless_normal([256, 256], seed=[1, 2])

    @tf.function
    def fn(x):
        return tf.tanh(tf.matmul(tf.matmul(x, a, name="first"), a, name="second"))
    fn(a)
    tf.profiler.experimental.start(str(tmp_path))
    for _ in range(3):
        fn(a).numpy()
    tf.profiler.experimental.stop()
    paths = list(tmp_path.rglob("*.xplane.pb"))
    assert len(paths) == 1
    times = benchmark.trace_op_times(str(paths[0]))
    names = {name.rsplit(":", 1)[0] for name in times}
    assert {"first", "second", "Tanh"} <= names
    assert all("::" not in name and " " not in name for name in times)
    assert all(ms > 0 for ms in times.values())


def test_run_iterations_runs_training_iterations(mnist_data, tmp_path):
    # Each timed outer iteration is one of training: a generator update and the critic's
    # five (n_critic) updates, one Adam step each.
    trainer, task = benchmark.trainer_at_task(mnist_data, "sft", 0, str(tmp_path), {"dim": 4})
    seconds = benchmark.run_iterations(trainer, task, 3)
    trainer.log.close()
    assert seconds.shape == (3,) and np.all(seconds > 0)
    assert int(trainer.g_opt.iterations) == 3
    assert int(trainer.d_opt.iterations) == 3 * trainer.cfg.train.critic_iters


def test_trainer_flags_name_the_data_and_the_model(mnist_dir):
    fv = flags.FlagValues()
    benchmark.define_trainer_flags(fv)
    fv(["prog", "--data_dir", mnist_dir, "--model_dim", "4", "--kernels", "tf"])
    data, model = benchmark.trainer_inputs(fv)
    assert model == {"dim": 4, "kernels": "tf"}
    assert data.name == "mnist" and data.channels == 1
    assert data.train_images.shape[1:3] == (32, 32)
    assert sorted(np.unique(data.train_labels)) == list(range(10))
    fv = flags.FlagValues()
    benchmark.define_trainer_flags(fv)
    fv(["prog", "--data_dir", mnist_dir, "--method", "ra", "--learned_classes", "9"])
    assert benchmark.trainer_inputs(fv)[1] == {}  # the preset's model
    assert (fv.method, fv.learned_classes, fv.mixed_precision) == ("ra", 9, "none")
    with pytest.raises(flags.IllegalFlagValueError):
        fv(["prog", "--kernels", "cudnn"])


def test_profile_iterations_times_the_trainers_ops(mnist_data, tmp_path):
    trainer, task = benchmark.trainer_at_task(mnist_data, "sft", 0, str(tmp_path), {"dim": 4})
    benchmark.run_iterations(trainer, task, 2)  # trace first
    profile = benchmark.profile_iterations(trainer, task, 2)
    trainer.log.close()
    assert profile.wall_ms > 0
    rows = {op_type: (ms, gflop, count) for op_type, ms, gflop, count in profile.by_type()}
    # The per-type rows add up to the per-op figures.
    assert sum(ms for ms, _, _ in rows.values()) == pytest.approx(sum(profile.op_ms.values()))
    assert sum(count for _, _, count in rows.values()) == len(profile.op_ms)
    # The convolutions ran and their FLOPs are found under their names in the fused graph;
    # what is counted never exceeds the iteration's whole count (fused ops show none).
    conv = [t for t in rows if "Conv2D" in t and "Fused" not in t]
    assert conv and sum(rows[t][1] for t in conv) > 0
    total = benchmark.iteration_gflops(mnist_data, "sft", 0, {"dim": 4})
    assert 0.4 * total < sum(profile.op_gflop.values()) <= total * (1 + 1e-6)


def test_iteration_gflops_of_replay_methods(mnist_data, tmp_path):
    # Counted against hand budgets in units of g, one generator forward on a batch of 64
    # (the replay batch at t = 2 is 2 x 32), and d, one critic forward on 64. A backward
    # pass costs about two forwards (input and weight gradients).
    sft = benchmark.iteration_gflops(mnist_data, "sft", 0, {"dim": 4})
    ra = benchmark.iteration_gflops(mnist_data, "ra", 2, {"dim": 4})
    jtr = benchmark.iteration_gflops(mnist_data, "jtr", 2, {"dim": 4})
    trainer, _ = benchmark.trainer_at_task(mnist_data, "sft", 0, str(tmp_path), {"dim": 4})
    z, y = tf.zeros([64, trainer.cfg.model.z_dim]), tf.zeros([64], tf.int32)
    g = benchmark.graph_gflops(lambda z, y: trainer.generator(z, y, num_groups=2), z, y)
    d = benchmark.graph_gflops(lambda x: trainer.critic(x), tf.zeros([64, 32, 32, 1]))
    trainer.log.close()
    # RA: Old and New forwards plus New's backward, in the generator update only (about
    # 4 g; with Old also built in the 5 critic updates it would be about 9 g).
    assert 3.5 * g <= ra - sft <= 4.5 * g
    # JTR: each critic update adds Old and New forwards (2 g) and the critic's forward and
    # backward on [Old; New] (6 d); the generator update adds New's forward and backward
    # (3 g) and the critic's forward and input gradient (2 d): 13 g + 32 d in all.
    assert jtr - sft == pytest.approx(13 * g + 32 * d, rel=0.1)


def test_the_plain_step_and_the_trainer_do_the_same_arithmetic(mnist_data):
    # benchmarks/plain_step.py is the comparison point of the throughput target: the same
    # outer iteration in raw tf.nn ops. Same mathematics and shapes means the same FLOP
    # count, to the AC head's few extra operations. With the trainer's activation (its
    # backward is a select, not LeakyReluGrad, which tf.profiler counts differently), and
    # TensorFlow's convolution kernels (--kernels fast adds the zero taps of the sub-pixel
    # form: 0.4% more at DIM 32, docs/performance.md).
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "plain_step.py"),
                           "--dim", "4", "--iters", "1", "--warmup", "0",
                           "--leaky_relu", "from_output"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    plain = float(re.search(r"gflop_per_iter=([0-9.]+)", proc.stdout).group(1))
    assert proc.stdout.strip().splitlines()[-1].startswith("ms_per_iter=")
    trainer = benchmark.iteration_gflops(mnist_data, "sft", 0, {"dim": 4, "kernels": "tf"})
    assert trainer == pytest.approx(plain, rel=0.01)


def _penalised_critic_grads(activation, dtype):
    """A two-conv critic with biases (conv + bias + activation, as the model's), its
    WGAN-GP loss (gradient penalty: a second-order term) and the weight gradients, traced
    as a tf.function (Grappler's rewrites apply)."""
    rng = np.random.default_rng(0)
    ws = [tf.Variable(rng.normal(0, s, shape).astype(np.float32)) for s, shape in
          ((0.2, [5, 5, 1, 8]), (0.3, [8]), (0.1, [5, 5, 8, 16]), (0.3, [16]), (0.05, [8 * 8 * 16, 1]))]
    x = tf.constant(rng.normal(size=[4, 32, 32, 1]).astype(np.float32))

    @tf.function
    def step(x):
        def critic(x):
            w = [tf.cast(v, dtype) for v in ws]
            h = activation(tf.nn.conv2d(tf.cast(x, dtype), w[0], 2, "SAME") + w[1])
            h = activation(tf.nn.conv2d(h, w[2], 2, "SAME") + w[3])
            return tf.cast(tf.matmul(tf.reshape(h, [4, -1]), w[4]), tf.float32)
        with tf.GradientTape() as tape:
            with tf.GradientTape() as inner:
                inner.watch(x)
                out = critic(x)
            slopes = tf.sqrt(tf.reduce_sum(tf.square(inner.gradient(out, x)), [1, 2, 3]))
            loss = tf.reduce_mean(out) + 10.0 * tf.reduce_mean(tf.square(slopes - 1.0))
        return [loss, out] + tape.gradient(loss, ws)
    return [t.numpy() for t in step(x)]


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_leaky_relu_reading_its_output_equals_tf(dtype):
    """layers.leaky_relu (the critic's; its gradient reads y, which lets Grappler fuse
    conv + bias + activation) against tf.nn.leaky_relu: the critic's output, its
    gradient-penalised loss and the weight gradients through the second-order term agree
    to float rounding (the fused kernel may sum in another order): elementwise 1e-5 in
    float32, 2% of each tensor's norm in bf16."""
    from mergan_tf import layers
    ours = _penalised_critic_grads(lambda h: layers.leaky_relu(h, 0.2), dtype)
    theirs = _penalised_critic_grads(lambda h: tf.nn.leaky_relu(h, 0.2), dtype)
    for a, b in zip(ours, theirs):
        if dtype == tf.float32:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())
        else:  # in bf16 another summation order can flip a near-zero activation's sign
            assert np.linalg.norm(a - b) <= 2e-2 * np.linalg.norm(b)
    assert np.abs(ours[3]).max() > 1e-3  # the gradients are not trivially zero
    # Eagerly too (no Grappler): values and gradients of every element, both signs.
    x = tf.constant([-2.0, -0.5, 0.0, 0.5, 3.0])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y, ref = layers.leaky_relu(x, 0.2), tf.nn.leaky_relu(x, 0.2)
    np.testing.assert_array_equal(y.numpy(), ref.numpy())
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), tape.gradient(ref, x).numpy())
    with pytest.raises(ValueError, match="alpha"):
        layers.leaky_relu(x, 1.5)


def _where_gradient_leaky_relu(x, alpha=0.2):
    """layers.leaky_relu before its gradient had a gradient of its own: TF differentiates
    the tf.where (two selects and a sum in the double backward)."""
    @tf.custom_gradient
    def forward(x):
        y = tf.nn.leaky_relu(x, alpha)

        def grad(dy):
            return tf.where(y > 0, dy, tf.cast(alpha, dy.dtype) * dy)
        return y, grad
    return forward(x)


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_leaky_relu_double_backward_is_one_select_and_the_same_bits(dtype):
    # The gradient penalty's second order through the activation: the same values to the
    # bit as TF's gradient of the tf.where (a select of g or alpha * g, where TF sums
    # a select of g or 0 and alpha times a select of 0 or g), with one select fewer and no sum.
    from mergan_tf import layers

    def second_order(x, act):
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = tf.reduce_sum(tf.sin(tf.cast(act(x * 1.5), tf.float32)))
            penalty = tf.reduce_sum(tf.square(tf.cast(inner.gradient(y, x), tf.float32)))
        return outer.gradient(penalty, x)

    x = tf.cast(tf.constant(np.random.default_rng(1).normal(size=[3, 7]), tf.float32), dtype)
    ops = {}
    for name, act in (("ours", lambda h: layers.leaky_relu(h, 0.2)),
                      ("where", _where_gradient_leaky_relu)):
        fn = tf.function(lambda x, act=act: second_order(x, act))
        graph_ops = [op.type for op in fn.get_concrete_function(x).graph.get_operations()]
        ops[name] = (graph_ops.count("SelectV2"), graph_ops.count("AddN"), fn(x).numpy())
    assert ops["ours"][0] == ops["where"][0] - 1 and ops["ours"][1] < ops["where"][1]
    np.testing.assert_array_equal(ops["ours"][2], ops["where"][2])
    assert np.abs(ops["ours"][2]).max() > 0


def test_critic_graph_is_remapped_without_error(mnist_dir, tmp_path):
    """The compiled SFT iteration no longer trips Grappler's remapper (with
    tf.nn.leaky_relu it logged "remapper failed: ... LeakyReluGrad exist for missing node
    ... BiasAdd" and dropped all of the pass's rewrites)."""
    code = (
        "import tempfile;"
        "from mergan_tf import benchmark, data;"
        f"d = data.load_dataset('mnist', data_dir={mnist_dir!r}, verbose=False);"
        "t, task = benchmark.trainer_at_task(d, 'sft', 0, tempfile.mkdtemp(), {'dim': 4});"
        "[float(t.run_iteration(task, i + 1)['loss/critic/total']) for i in range(2)];"
        "print('RAN')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert "RAN" in proc.stdout, proc.stderr[-3000:]
    assert "remapper failed" not in proc.stderr, [ln for ln in proc.stderr.splitlines() if "remapper" in ln]
