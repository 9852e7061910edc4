"""Writes CIFAR-10 (binary version) as an image folder of PNGs: OUT/train/<class>/<n>.png and
OUT/test/<class>/<n>.png. Used to check `data.dataset = "image_folder"` end to end on real images
(the same pixels as the binary files, so a model should reach the same accuracy either way).

Usage: .venv/bin/python scripts/cifar10_to_image_folder.py CIFAR_DIR OUT
  CIFAR_DIR: the directory holding data_batch_1.bin ... test_batch.bin and batches.meta.txt
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

RECORD = 1 + 3 * 32 * 32  # label byte, then the red, green and blue 32x32 planes


def read_batches(files, num_classes):
    """Labels (N,) and images (N, 32, 32, 3) uint8 of the given binary batch files."""
    parts = []
    for f in files:
        raw = np.fromfile(f, dtype=np.uint8)
        if raw.size % RECORD:
            sys.exit(f"{f}: {raw.size} bytes, expected a multiple of {RECORD} (truncated or not a CIFAR-10 batch)")
        raw = raw.reshape(-1, RECORD)
        if raw[:, 0].max(initial=0) >= num_classes:
            sys.exit(f"{f}: label {raw[:, 0].max()} out of range 0..{num_classes - 1}")
        parts.append(raw)
    raw = np.concatenate(parts)
    return raw[:, 0], raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def write_split(out, labels, images, classes):
    for c in classes:
        (out / c).mkdir(parents=True, exist_ok=True)
    for i, (label, image) in enumerate(zip(labels, images)):
        Image.fromarray(image).save(out / classes[label] / f"{i:05d}.png")


def main():
    if len(sys.argv) == 2 and sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    splits = {"train": [src / f"data_batch_{i}.bin" for i in range(1, 6)], "test": [src / "test_batch.bin"]}
    missing = [str(f) for f in [src / "batches.meta.txt", *splits["train"], *splits["test"]] if not f.is_file()]
    if missing:
        sys.exit(f"{src}: missing {', '.join(missing)}; expected the cifar-10-batches-bin directory")
    if out.exists() and not out.is_dir():
        sys.exit(f"{out} is a file: expected a new directory")
    if out.exists() and any(out.iterdir()):
        sys.exit(f"{out} is not empty: choose a new directory (old images would mix with the new ones)")
    # Label i is the i-th name; CIFAR-10's names are in alphabetical order, which is also the
    # order in which the image-folder reader numbers class directories, so labels carry over.
    classes = (src / "batches.meta.txt").read_text().split()
    if len(classes) != 10:
        sys.exit(f"{src / 'batches.meta.txt'}: expected 10 class names, found {len(classes)}")
    for split, files in splits.items():
        labels, images = read_batches(files, len(classes))
        write_split(out / split, labels, images, classes)
        print(f"{out / split}: {len(labels)} images")


if __name__ == "__main__":
    main()
