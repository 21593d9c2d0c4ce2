"""`mergan-train-classifier` under its old name
(the command: mergan_tf/commands/train_classifier.py)."""

from mergan_tf.commands.train_classifier import run

if __name__ == "__main__":
    run()
