"""`mergan-sample` under its old name (the command: mergan_tf/commands/sample.py)."""

from mergan_tf.commands.sample import run

if __name__ == "__main__":
    run()
