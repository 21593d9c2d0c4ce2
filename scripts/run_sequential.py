"""`mergan-train` under its old name (the command: mergan_tf/commands/train.py)."""

from mergan_tf.commands.train import run

if __name__ == "__main__":
    run()
