"""`mergan-plot-forgetting` under its old name
(the command: mergan_tf/commands/plot_forgetting.py)."""

from mergan_tf.commands.plot_forgetting import run

if __name__ == "__main__":
    run()
