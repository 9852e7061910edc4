"""Oracle for tests/explain_tsne.rs: microvision's t-SNE against scikit-learn's on the same points.

usage: check_tsne.py OURS.safetensors PERPLEXITY
OURS holds x (N, D), labels (N,), the affinities as p_rows/p_cols/p_vals, the 2-D embedding y and
knn (our leave-one-out 5-NN accuracy of y). Prints the figures and exits 1 naming a failed check.
"""
import sys

import numpy as np
from safetensors.numpy import load_file
from sklearn.manifold import TSNE, trustworthiness
from sklearn.manifold._t_sne import _joint_probabilities_nn
from sklearn.neighbors import NearestNeighbors

ours = load_file(sys.argv[1])
perplexity = float(sys.argv[2])
x, labels, y = ours["x"].astype(np.float64), ours["labels"], ours["y"]
n = len(x)
failures = []


def loo_knn(points, k=5):
    """Leave-one-out k-NN accuracy, ties to the smallest label (scikit-learn's vote)."""
    idx = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points, return_distance=False)[:, 1:]
    votes = np.array([np.bincount(labels[row], minlength=labels.max() + 1) for row in idx])
    return float((votes.argmax(1) == labels).mean())


# Affinities from the same k = 3 * perplexity neighbours (squared Euclidean distances).
k = int(3 * perplexity)
dist = NearestNeighbors(n_neighbors=k).fit(x).kneighbors_graph(mode="distance")
dist.data **= 2
p_ref = _joint_probabilities_nn(dist, perplexity, 0).toarray()
p_ours = np.zeros((n, n))
p_ours[ours["p_rows"], ours["p_cols"]] = ours["p_vals"]
diff = np.abs(p_ours - p_ref).max()
print(f"affinities: max |diff| {diff:.3g} (largest {p_ref.max():.3g}), sums {p_ours.sum():.6f} vs {p_ref.sum():.6f}")
if diff > 1e-3 * p_ref.max():
    failures.append(f"affinities differ by {diff:.3g}")

y_ref = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=0).fit_transform(x)
t_ours, t_ref = trustworthiness(x, y, n_neighbors=5), trustworthiness(x, y_ref, n_neighbors=5)
k_ours, k_ref = loo_knn(y), loo_knn(y_ref)
print(f"trustworthiness: ours {t_ours:.4f}, scikit-learn {t_ref:.4f}")
print(f"2-D 5-NN accuracy: ours {k_ours:.4f}, scikit-learn {k_ref:.4f} (microvision's own count {float(ours['knn']):.4f})")
# The stated margins (docs/explain.md): 0.03 of trustworthiness and of 2-D kNN accuracy.
if t_ours < t_ref - 0.03:
    failures.append(f"trustworthiness {t_ours:.4f} is more than 0.03 below scikit-learn's {t_ref:.4f}")
if k_ours < k_ref - 0.03:
    failures.append(f"kNN accuracy {k_ours:.4f} is more than 0.03 below scikit-learn's {k_ref:.4f}")
if abs(float(ours["knn"]) - k_ours) > 1e-9:
    failures.append(f"microvision's kNN accuracy {float(ours['knn']):.4f} is not the vote's {k_ours:.4f}")
if failures:
    print("\n".join(failures))
    sys.exit(1)
