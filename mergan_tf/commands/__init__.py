"""The command lines of mergan_tf: one module per command, holding its absl flags and main().

A command module defines its flags when it is imported, and absl flags can be defined once
per process, so a process imports exactly one of them: through its console script
(`mergan-train`, ...), `python -m mergan_tf <command>` or its wrapper in `scripts/`.
"""

import sys

# command of `python -m mergan_tf` -> (module in mergan_tf.commands, console script,
# script in scripts/, what it does)
COMMANDS = {
    "train": ("train", "mergan-train", "run_sequential.py",
              "train a method over a sequence of one-class tasks"),
    "evaluate": ("evaluate", "mergan-evaluate", "evaluate.py",
                 "accuracy, reverse accuracy and FID of a run's task snapshots"),
    "export": ("export", "mergan-export", "export.py",
               "export task snapshots as SavedModel samplers"),
    "sample": ("sample", "mergan-sample", "sample.py",
               "sample images from an exported sampler, with TensorFlow only"),
    "figures": ("figures", "mergan-figures", "make_figures.py",
                "Figure 3, the remembering mosaic, the evolution figure, training GIFs"),
    "train-classifier": ("train_classifier", "mergan-train-classifier", "train_classifier.py",
                         "train a dataset's evaluator classifier"),
    "plot-forgetting": ("plot_forgetting", "mergan-plot-forgetting", "plot_forgetting.py",
                        "forgetting curves of runs (Figure 6)"),
    "plot-tsne": ("plot_tsne", "mergan-plot-tsne", "plot_tsne.py",
                  "t-SNE of real and generated images of one class (Figure 4)"),
    "import-release": ("import_release", "mergan-import-release", "import_release.py",
                       "import checkpoints of the original TF1 release as a run directory"),
}


def run_main(main, doc, flag_modules, argv=None, groups=None):
    """Runs `main` under `absl.app.run`, with this command's usage text and flags; its user
    errors print one line and exit 1 (`cli.guarded`), with the traceback under --debug.

    absl prints the docstring of `__main__` as the usage text and, for --help, the flags
    registered for `sys.argv[0]`; neither is the command module when it runs from a console
    script, `python -m mergan_tf` or a wrapper script, so both are set here.

    Args:
        main: The command's `main(argv)`.
        doc: Its usage text (the command module's docstring).
        flag_modules: Names of the modules that define its flags, which --help lists after
            `doc` (with --debug); none for a command whose `doc` lists its flags itself.
        argv: The command line, program name first (default `sys.argv`).
        groups: ((title, flag names), ...): --help lists the flags of `flag_modules` and
            --debug in these groups instead; every one of them must be in a group.
    """
    from absl import app, flags

    from mergan_tf import cli
    cli.define_debug_flag()
    if groups is not None:
        defined = {flag.name for name in flag_modules
                   for flag in flags.FLAGS.get_flags_for_module(name)} | {"debug"}
        grouped = [name for _, names in groups for name in names]
        if sorted(grouped) != sorted(defined):
            raise ValueError(f"--help groups {sorted(grouped)} do not list the command's flags "
                             f"{sorted(defined)} once each")
        doc, flag_modules = doc + "\nFlags:" + cli.grouped_help(groups), []
    sys.modules["__main__"].__doc__ = doc
    listed = [flag for name in flag_modules for flag in flags.FLAGS.get_flags_for_module(name)]
    if flag_modules:  # (a command that lists its flags in `doc` passes none)
        listed.append(flags.FLAGS["debug"])
    for flag in listed:
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(cli.guarded(main), argv=argv)
