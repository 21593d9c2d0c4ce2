"""`mergan-figures` under its old name (the command: mergan_tf/commands/figures.py)."""

from mergan_tf.commands.figures import run

if __name__ == "__main__":
    run()
