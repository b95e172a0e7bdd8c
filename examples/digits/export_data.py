"""Write the digits train/val split as .npy files, to snapshot as a dataset.

    python examples/digits/export_data.py /tmp/digits-data
    yard datasets create digits /tmp/digits-data          # -> digits@v1

The arrays are exactly those train.py builds from scikit-learn's bundled copy
(no download), so a job reading the snapshot trains on the same data.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def export(out: Path) -> list[Path]:
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x / 16.0, y, test_size=0.2, random_state=0, stratify=y)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, array in (("train_x", x_train), ("train_y", y_train), ("val_x", x_val), ("val_y", y_val)):
        np.save(out / f"{name}.npy", array)
        written.append(out / f"{name}.npy")
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python export_data.py OUT_DIR")
    for path in export(Path(sys.argv[1])):
        print(path)
