"""The fixed digits data split shared by training, the demo and the tests.

Uses :func:`sklearn.datasets.load_digits` (bundled with scikit-learn, no
download): 1,797 8x8 images, pixels scaled to [0, 1], split 80/20 with
``random_state=0`` (360 test images).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from diannao.golden.network import load

__all__ = ["NETWORK_DIR", "NETWORK_NAMES", "SPLIT_SEED", "load_split", "load_test_set",
           "network_path", "load_network", "accuracy"]

NETWORK_DIR = Path(__file__).resolve().parent / "networks"
NETWORK_NAMES = ("mlp", "cnn")
SPLIT_SEED = 0
TEST_SIZE = 0.2


def load_split():
    """Return ``(x_train, y_train, x_test, y_test)``; images flat [n, 64] float64 in [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = data.data.astype(np.float64) / 16.0
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, data.target, test_size=TEST_SIZE, random_state=SPLIT_SEED)
    return x_tr, y_tr, x_te, y_te


def load_test_set(input_shape=(64,)):
    """The fixed test split.

    Parameters
    ----------
    input_shape : tuple of int
        Per-image shape: (64,) for the MLP, (1, 8, 8) for the CNN.

    Returns
    -------
    images : numpy.ndarray of float64, [360, *input_shape]
    labels : numpy.ndarray of int, [360]
    """
    _, _, x_te, y_te = load_split()
    return x_te.reshape((-1,) + tuple(input_shape)), y_te


def network_path(name):
    """Path of the shipped network ``name`` ("mlp" or "cnn")."""
    if name not in NETWORK_NAMES:
        raise ValueError(f"unknown digits network {name!r}; choose from {list(NETWORK_NAMES)}")
    return NETWORK_DIR / f"digits_{name}.json"


def load_network(name):
    """Load the shipped network ``name`` as a :class:`golden.network.Network`."""

    return load(network_path(name))


def accuracy(outputs, labels):
    """Fraction of rows of ``outputs`` whose argmax equals the label."""
    return float(np.mean(np.argmax(outputs, axis=1) == np.asarray(labels)))
