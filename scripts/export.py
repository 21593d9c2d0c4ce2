"""`mergan-export` under its old name (the command: mergan_tf/commands/export.py)."""

from mergan_tf.commands.export import run

if __name__ == "__main__":
    run()
