"""`mergan-import-release` under its old name (the command: mergan_tf/commands/import_release.py)."""

from mergan_tf.commands.import_release import run

if __name__ == "__main__":
    run()
