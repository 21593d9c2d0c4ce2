"""The README is a user guide that works: its set-up, its links and its Python example."""

import json
import os
import re
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")


def readme():
    with open(README, encoding="utf-8") as f:
        return f.read()


def code_blocks(text, language):
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def test_readme_opens_with_the_two_setup_commands_that_ci_runs():
    first = code_blocks(readme(), "bash")[0].strip().splitlines()
    assert len(first) == 2, first
    install, tests = first
    assert install.startswith("pip install -e . && mergan-train "), install
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        ci = [line for line in f.read().splitlines() if line and not line.startswith("#")]
    assert tests in ci, (tests, ci)


def test_readme_is_a_short_guide_whose_links_exist():
    text = readme()
    assert len(text.splitlines()) <= 250
    assert "../shared" not in text, "a path that exists only beside this checkout"
    links = re.findall(r"\]\(([^)#:]+)\)", text)
    assert "docs/design.md" in links and any(link.endswith(".png") for link in links)
    missing = [link for link in links if not os.path.exists(os.path.join(ROOT, link))]
    assert not missing, missing


def test_readme_python_example_trains_exports_and_samples(tmp_path):
    """The block of "Using it from Python", run as written in a fresh process."""
    section = readme().split("## Using it from Python", 1)[1]
    block = code_blocks(section, "python")[0]
    check = textwrap.dedent("""
        import os
        assert ones.shape == (16, 32, 32, 1) and ones.dtype == tf.uint8, (ones.shape, ones.dtype)
        assert 0 < int(tf.reduce_max(ones)) <= 255
        print("learned", sorted(os.listdir("runs/python_ra/snapshots")))
    """)
    env = dict(os.environ, MERGAN_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", block + check], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "learned ['task_01', 'task_02']" in proc.stdout, proc.stdout
    assert os.path.exists(tmp_path / "runs" / "python_ra" / "config.json")


def test_readme_table1_is_the_committed_results_beside_the_paper():
    # Every cell "ours (paper)": ours is the mean of results/table1_mnist/<method>/eval.json
    # after that many tasks (rounded as printed), or "running" while the method has no
    # results; the paper's is Table 1's.
    from mergan_tf.evaluation.table1 import PAPER_TABLE1
    text = readme()
    header = "\n| after | JT |"
    assert text.count(header) == 1, "the README's Table 1 header"
    rows = text[text.index(header) + 1:].split("\n\n")[0].splitlines()
    methods = [m.strip().lower() for m in rows[0].strip("|").split("|")[1:]]
    assert sorted(methods) == sorted(PAPER_TABLE1[("mnist", 10)])
    seen = set()
    for row in rows[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        tasks = int(re.fullmatch(r"(\d+) tasks", cells[0]).group(1))
        seen.add(tasks)
        for method, cell in zip(methods, cells[1:]):
            ours, paper = re.fullmatch(r"(\S+) \(([0-9.]+)\)", cell).groups()
            assert float(paper) == PAPER_TABLE1[("mnist", tasks)][method], (tasks, method)
            path = os.path.join(ROOT, "results", "table1_mnist", method, "eval.json")
            if not os.path.exists(path):
                assert ours == "running", (tasks, method)
                continue
            with open(path) as f:
                mean = json.load(f)["tasks"][str(tasks)]["accuracy"]["mean"]
            assert ours == f"{mean:.2f}", (tasks, method, mean)
    assert seen == {5, 10}
