"""Import checkpoints of the original TF1 release as a run directory of this project.

  python scripts/import_release.py --checkpoint result/mnist_RA/model/WGAN_GP.model9-4000 \
      --dataset mnist --method ra --out_dir runs/release_mnist_ra
  python scripts/import_release.py --checkpoint M/WGAN_GP.model4-4000,M/WGAN_GP.model9-4000 \
      --dataset mnist --method jtr --out_dir runs/release_mnist_jtr

Then evaluate.py, export.py, sample.py and make_figures.py work on --out_dir. See
docs/release.md; the logic is `mergan_tf.release_import`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mergan_tf import release_import  # noqa: E402

if __name__ == "__main__":
    release_import.run()
