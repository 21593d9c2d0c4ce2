"""`mergan-plot-tsne` under its old name (the command: mergan_tf/commands/plot_tsne.py)."""

from mergan_tf.commands.plot_tsne import run

if __name__ == "__main__":
    run()
