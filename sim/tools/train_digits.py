"""Train the shipped digits networks in pure numpy and write them to ``sim/tools/networks``.

Run ``python -m diannao.sim.tools.train_digits`` to regenerate ``digits_mlp.json/.npz``
(64-32-10, sigmoid hidden layer) and ``digits_cnn.json/.npz`` (conv 1->8 3x3
pad 1 ReLU on 1x8x8, max pool 2, fc 128->10).  Training uses Adam on the
softmax cross-entropy with fixed seeds, so the output is reproducible; it
takes a few seconds.
"""

from __future__ import annotations

import argparse

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from diannao.golden.formats import EXACT_ACTIVATIONS
from diannao.golden.network import FC, Conv, MaxPool, Network
from diannao.golden.quant import run_float
from diannao.sim.tools import digits
from pathlib import Path

__all__ = ["train_mlp", "train_cnn", "main"]

SEED = 0


class Adam:
    """Adam optimizer over a dict of numpy parameters (updated in place)."""

    def __init__(self, params, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.params, self.lr, self.b1, self.b2, self.eps = params, lr, beta1, beta2, eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, grads):
        self.t += 1
        for k, g in grads.items():
            self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
            m_hat = self.m[k] / (1 - self.b1 ** self.t)
            v_hat = self.v[k] / (1 - self.b2 ** self.t)
            self.params[k] -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def _softmax_xent_grad(logits, labels):
    """Gradient of the mean softmax cross-entropy with respect to the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(labels)), labels] -= 1.0
    return p / len(labels)


def _train(params, grad_fn, x, y, epochs, lr, batch, rng):
    opt = Adam(params, lr)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            opt.step(grad_fn(x[idx], y[idx]))
    return params


def train_mlp(x, y, hidden=32, epochs=60, lr=0.01, batch=32, seed=SEED):
    """Train a 64-``hidden``-10 MLP with a sigmoid hidden layer; return a Network."""
    rng = np.random.default_rng(seed)
    p = {"w1": rng.normal(0, 1 / np.sqrt(64), (hidden, 64)), "b1": np.zeros(hidden),
         "w2": rng.normal(0, 1 / np.sqrt(hidden), (10, hidden)), "b2": np.zeros(10)}
    sigmoid = EXACT_ACTIVATIONS["sigmoid"]

    def grads(xb, yb):
        h = sigmoid(xb @ p["w1"].T + p["b1"])
        d2 = _softmax_xent_grad(h @ p["w2"].T + p["b2"], yb)
        d1 = (d2 @ p["w2"]) * h * (1 - h)
        return {"w2": d2.T @ h, "b2": d2.sum(0), "w1": d1.T @ xb, "b1": d1.sum(0)}

    _train(p, grads, x, y, epochs, lr, batch, rng)
    return Network((64,), [FC(p["w1"], p["b1"], "sigmoid"), FC(p["w2"], p["b2"], "identity")])


def _patches(x):
    """[B, 1, 8, 8] -> [B, 64, 9] 3x3 windows with zero padding 1, (c, ky, kx) order."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = sliding_window_view(xp, (3, 3), axis=(2, 3))  # [B, 1, 8, 8, 3, 3]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(len(x), 64, 9)


def train_cnn(x, y, maps=8, epochs=40, lr=0.01, batch=32, seed=SEED):
    """Train conv(1->maps, 3x3, pad 1, ReLU) -> maxpool 2 -> fc(maps*16 -> 10); return a Network."""
    rng = np.random.default_rng(seed)
    x = x.reshape(-1, 1, 8, 8)
    p = {"wc": rng.normal(0, 1 / 3, (maps, 9)), "bc": np.zeros(maps),
         "wf": rng.normal(0, 1 / np.sqrt(maps * 16), (10, maps * 16)), "bf": np.zeros(10)}

    def grads(xb, yb):
        n = len(xb)
        cols = _patches(xb)                                          # [B, 64, 9]
        pre = (cols @ p["wc"].T + p["bc"]).transpose(0, 2, 1)        # [B, maps, 64]
        act = np.maximum(pre, 0).reshape(n, maps, 4, 2, 4, 2)
        pooled = act.max(axis=(3, 5))                                # [B, maps, 4, 4]
        flat = pooled.reshape(n, -1)
        d_logits = _softmax_xent_grad(flat @ p["wf"].T + p["bf"], yb)
        d_pooled = (d_logits @ p["wf"]).reshape(n, maps, 4, 1, 4, 1)
        mask = act == pooled[:, :, :, None, :, None]
        d_pre = (mask * d_pooled).reshape(n, maps, 64) * (pre > 0)
        d_pre = d_pre.transpose(0, 2, 1)                             # [B, 64, maps]
        return {"wf": d_logits.T @ flat, "bf": d_logits.sum(0),
                "wc": np.einsum("bpm,bpk->mk", d_pre, cols), "bc": d_pre.sum((0, 1))}

    _train(p, grads, x, y, epochs, lr, batch, rng)
    conv = Conv(p["wc"].reshape(maps, 1, 3, 3), p["bc"], stride=1, pad=1, activation="relu")
    return Network((1, 8, 8), [conv, MaxPool(2), FC(p["wf"], p["bf"], "identity")])


def main(argv=None):
    """Train both networks, report float test accuracy and save them."""
    parser = argparse.ArgumentParser(prog="python -m diannao.sim.tools.train_digits", description=__doc__)
    parser.add_argument("--out-dir", default=str(digits.NETWORK_DIR))
    args = parser.parse_args(argv)
    x_tr, y_tr, _, _ = digits.load_split()

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, trainer in (("mlp", train_mlp), ("cnn", train_cnn)):
        net = trainer(x_tr, y_tr)
        x_te, y_te = digits.load_test_set(net.input_shape)
        acc = digits.accuracy(run_float(net, x_te), y_te)
        path = out / f"digits_{name}.json"
        net.save(path)
        print(f"{name}: float test accuracy {100 * acc:.2f}% -> {path}")


if __name__ == "__main__":
    main()
