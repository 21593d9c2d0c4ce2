"""`mergan-evaluate` under its old name (the command: mergan_tf/commands/evaluate.py)."""

from mergan_tf.commands.evaluate import run

if __name__ == "__main__":
    run()
