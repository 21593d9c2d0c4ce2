"""`python -m mergan_tf <command> [flags]`: the package's command lines in one entry point.

`python -m mergan_tf --help` lists the commands; `python -m mergan_tf <command> --help`
describes one of them.
"""

import importlib
import sys

from mergan_tf.commands import COMMANDS


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: python -m mergan_tf <command> [flags]", "", "commands:"]
    for name, (_, script, old_script, summary) in COMMANDS.items():
        lines += [f"  {name:<{width}}  {summary}",
                  f"  {'':<{width}}  (also `{script}`, `python scripts/{old_script}`)"]
    lines += ["", "python -m mergan_tf <command> --help describes a command's flags."]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name = argv[1]
    if name not in COMMANDS:
        print(f"unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    # Imported only now: each command module defines its absl flags when imported.
    command = importlib.import_module(f"mergan_tf.commands.{COMMANDS[name][0]}")
    sys.argv = [f"python -m mergan_tf {name}", *argv[2:]]
    command.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
