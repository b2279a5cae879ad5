"""Three capacities of learned timing model behind one interface, each with a per-event Cython kernel.

Every model: ``fit(X, y)``, ``predict(X)`` (numpy, a batch), ``predict_one(x)`` (one float32 row through its
``ext.learn`` kernel: the engine's per-event path), ``to_arrays()`` / ``from_arrays(arrays, params)`` (what a model
file stores), ``params()`` (hyperparameters, JSON). ``task`` is ``regression`` (a move in bps) or
``classification`` (a fill probability).

* ``Linear`` (ridge, closed form) and ``Logistic`` (Newton / IRLS with an L2 penalty and a backtracking step), on
  standardised features; the standardisation is folded into the stored weights.
* ``Trees``: gradient-boosted regression trees of depth <= 3 on quantile-binned features (32 bins; histogram
  splits, second-order gains, numpy only); squared loss, or the logistic loss for a probability. Stored as flat
  node arrays (feature index, threshold, left, right, leaf value); the kernel lays them out complete and walks
  them branch-free.
* ``MLP``: one hidden layer of 16 tanh units trained with Adam (numpy), MSE on the standardised target or the
  logistic loss; standardisations folded into the weights.

Trees and MLP choose their number of trees / epochs on the last 15 % of the rows they are given (time order:
rows are chronological), then refit on all of them with that count (``n_used`` / ``epochs_used`` in ``params``).

Exactness: ``predict`` mirrors the kernel operation for operation (features summed in index order, trees added in
order, hidden units in order) in float64 from the float32 rows, so ``predict`` and ``predict_one`` agree bit for
bit on the raw score for the linear and tree models; the logistic link and the MLP's tanh use numpy's vectorised
``exp``/``tanh`` against libm's in the kernel and agree to within 1e-12 (often exactly).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from engine.errors import ConfigError
from engine.learn import CAPACITIES
from ext import learn as _k

REGRESSION, CLASSIFICATION = "regression", "classification"


def _as_rows(X: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(X, dtype=np.float32)


def _standardize(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = X.mean(axis=0, dtype=np.float64)
    sd = X.std(axis=0, dtype=np.float64)
    sd[~(sd > 1e-12)] = 1.0
    return mu, sd


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _loss(task: str, y: np.ndarray, z: np.ndarray) -> float:
    """Mean squared error of a raw score, or the mean log loss of a logit (early stopping)."""
    if task == CLASSIFICATION:
        return float(np.mean(np.logaddexp(0.0, z) - y * z))
    return float(np.mean((z - y) ** 2))


def _linear_score(X: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    """``b + sum_j w[j] x[j]`` with j ascending, vectorised over rows: the kernel's order of operations."""
    z = np.full(X.shape[0], b, dtype=np.float64)
    for j in range(X.shape[1]):
        z = z + w[j] * X[:, j].astype(np.float64)
    return z


class Model:
    """The interface every capacity implements."""

    name: ClassVar[str] = ""
    task: str = REGRESSION
    kernel: Any = None

    def fit(self, X: np.ndarray, y: np.ndarray) -> Model:
        raise NotImplementedError

    def score(self, X: np.ndarray) -> np.ndarray:
        """The raw score (before the link) of every row."""
        raise NotImplementedError

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Every row's prediction: the score, through the logistic link for classification."""
        z = self.score(X)
        return _sigmoid(z) if self.task == CLASSIFICATION else z

    def predict_one(self, x: np.ndarray) -> float:
        """One float32 row through the Cython kernel (after the link: a probability for classification)."""
        return self.kernel.one(x)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The flat arrays the model file stores (``self.arrays`` for the capacities that keep them)."""
        return dict(self.arrays)

    def params(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> Model:
        raise NotImplementedError

    @property
    def link(self) -> int:
        return 1 if self.task == CLASSIFICATION else 0


# ---- linear / logistic ---------------------------------------------------------------------------------------


@dataclass
class Linear(Model):
    """Ridge regression, closed form on standardised features (intercept unpenalised)."""

    alpha: float = 10.0
    w: np.ndarray = field(default_factory=lambda: np.zeros(0))
    b: float = 0.0
    name: ClassVar[str] = "linear"
    task: str = REGRESSION

    def fit(self, X: np.ndarray, y: np.ndarray) -> Linear:
        X = _as_rows(X)
        mu, sd = _standardize(X)
        Z = (X - mu) / sd
        ym = float(np.mean(y))
        A = Z.T @ Z + self.alpha * np.eye(Z.shape[1])
        ws = np.linalg.solve(A, Z.T @ (np.asarray(y, dtype=np.float64) - ym))
        self._set(ws / sd, ym - float(np.sum(mu * ws / sd)))
        return self

    def _set(self, w: np.ndarray, b: float) -> None:
        self.w = np.ascontiguousarray(w, dtype=np.float64)
        self.b = float(b)
        self.kernel = _k.LinearKernel(self.w, self.b, self.link)

    def score(self, X: np.ndarray) -> np.ndarray:
        """The raw linear score (before any link), in the kernel's order of operations."""
        return _linear_score(_as_rows(X), self.w, self.b)

    def predict(self, X: np.ndarray) -> np.ndarray:
        z = self.score(X)
        return _sigmoid(z) if self.task == CLASSIFICATION else z

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"w": self.w, "b": np.array([self.b])}

    def params(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> Linear:
        m = cls(alpha=float(params.get("alpha", 10.0)))
        m._set(arrays["w"], float(arrays["b"][0]))
        return m


@dataclass
class Logistic(Linear):
    """L2-penalised logistic regression by Newton's method (IRLS) with a backtracking step."""

    alpha: float = 1.0
    max_iter: int = 50
    name: ClassVar[str] = "logistic"
    task: str = CLASSIFICATION

    def fit(self, X: np.ndarray, y: np.ndarray) -> Logistic:
        X = _as_rows(X)
        mu, sd = _standardize(X)
        Z = np.column_stack([(X - mu) / sd, np.ones(len(X))])
        y = np.asarray(y, dtype=np.float64)
        pen = np.full(Z.shape[1], self.alpha)
        pen[-1] = 0.0                                       # the intercept is not penalised
        w = np.zeros(Z.shape[1])
        w[-1] = np.log((y.mean() + 1e-3) / (1 - y.mean() + 1e-3))

        def loss(v: np.ndarray) -> float:
            z = Z @ v
            return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(pen * v * v))

        cur = loss(w)
        for _ in range(self.max_iter):
            p = _sigmoid(Z @ w)
            g = Z.T @ (p - y) + pen * w
            H = (Z * (p * (1 - p))[:, None]).T @ Z + np.diag(pen + 1e-9)
            step = np.linalg.solve(H, g)
            t = 1.0
            while t > 1e-6 and loss(w - t * step) > cur:
                t *= 0.5
            w = w - t * step
            new = loss(w)
            if cur - new < 1e-10 * max(1.0, abs(cur)):
                cur = new
                break
            cur = new
        ws = w[:-1]
        self._set(ws / sd, w[-1] - float(np.sum(mu * ws / sd)))
        return self

    def params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "max_iter": self.max_iter}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> Logistic:
        m = cls(alpha=float(params.get("alpha", 1.0)), max_iter=int(params.get("max_iter", 50)))
        m._set(arrays["w"], float(arrays["b"][0]))
        return m


# ---- gradient-boosted trees ----------------------------------------------------------------------------------


@dataclass
class _Nodes:
    feat: list[int] = field(default_factory=list)
    thr: list[float] = field(default_factory=list)
    left: list[int] = field(default_factory=list)
    right: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)

    def add(self, feat: int = -1, thr: float = 0.0, value: float = 0.0) -> int:
        self.feat.append(feat)
        self.thr.append(thr)
        self.left.append(-1)
        self.right.append(-1)
        self.value.append(value)
        return len(self.feat) - 1


@dataclass
class Trees(Model):
    """Gradient-boosted trees (depth <= 3, histogram splits on quantile bins, second-order leaf values; at most
    ``n_trees``, early-stopped on the rows' last ``early_frac``)."""

    task: str = REGRESSION
    n_trees: int = 100
    depth: int = 3
    lr: float = 0.1
    n_bins: int = 32
    lam: float = 1.0
    min_hess: float = 20.0
    early_frac: float = 0.15
    n_used: int = 0
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    name: ClassVar[str] = "trees"

    def __post_init__(self) -> None:
        if not 1 <= self.depth <= 3:
            raise ConfigError(f"trees: depth must be 1-3, got {self.depth}")
        if not 2 <= self.n_bins <= 255:
            raise ConfigError(f"trees: n_bins must be 2-255, got {self.n_bins}")

    def _grad(self, F: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.task == CLASSIFICATION:
            p = _sigmoid(F)
            return p - y, np.maximum(p * (1 - p), 1e-6)
        return F - y, np.ones_like(F)

    def fit(self, X: np.ndarray, y: np.ndarray) -> Trees:
        """Choose the number of trees (at most ``n_trees``) on the last ``early_frac`` of the rows (time order),
        then fit that many on every row."""
        X = _as_rows(X)
        y = np.asarray(y, dtype=np.float64)
        self.n_used = self.n_trees
        if self.early_frac > 0 and len(y) >= 400:
            cut = int(len(y) * (1 - self.early_frac))
            self._fit(X[:cut], y[:cut], self.n_trees)
            losses = [_loss(self.task, y[cut:], z) for z in self._staged(X[cut:])]
            self.n_used = int(np.argmin(losses)) + 1
        return self._fit(X, y, self.n_used)

    def _fit(self, X: np.ndarray, y: np.ndarray, n_trees: int) -> Trees:
        edges = [np.unique(np.quantile(X[:, f], np.arange(1, self.n_bins) / self.n_bins).astype(np.float32)
                          ).astype(np.float64) for f in range(X.shape[1])]
        bins = np.column_stack([np.searchsorted(e, X[:, f].astype(np.float64), side="left")
                                for f, e in enumerate(edges)]).astype(np.int64)
        m = float(y.mean())
        base = float(np.log((m + 1e-6) / (1 - m + 1e-6))) if self.task == CLASSIFICATION else m
        F = np.full(len(y), base)
        nodes, roots = _Nodes(), []
        for _ in range(n_trees):
            g, h = self._grad(F, y)
            root, leaf_of = self._grow(bins, edges, g, h, nodes)
            roots.append(root)
            F = F + np.asarray(nodes.value)[leaf_of]
        self._set({"feat": np.array(nodes.feat, np.int32), "thr": np.array(nodes.thr, np.float64),
                   "left": np.array(nodes.left, np.int32), "right": np.array(nodes.right, np.int32),
                   "value": np.array(nodes.value, np.float64), "roots": np.array(roots, np.int32),
                   "base": np.array([base]), "n_in": np.array([X.shape[1]], np.int32)})
        return self

    def _grow(self, bins: np.ndarray, edges: list[np.ndarray], g: np.ndarray, h: np.ndarray,
              nodes: _Nodes) -> tuple[int, np.ndarray]:
        """One tree, depth-wise; returns its root and each row's leaf node."""
        n = bins.shape[0]
        root = nodes.add()
        leaf_of = np.full(n, root)
        frontier = [(root, np.arange(n))]
        for _ in range(self.depth):
            nxt = []
            for node, idx in frontier:
                split = self._best_split(bins[idx], g[idx], h[idx], edges)
                if split is None:
                    continue
                f, b = split
                go_left = bins[idx, f] <= b
                lo, hi = nodes.add(), nodes.add()
                nodes.feat[node], nodes.thr[node] = f, float(edges[f][b])
                nodes.left[node], nodes.right[node] = lo, hi
                leaf_of[idx[go_left]], leaf_of[idx[~go_left]] = lo, hi
                nxt += [(lo, idx[go_left]), (hi, idx[~go_left])]
            frontier = nxt
        for k in np.unique(leaf_of):
            sel = leaf_of == k
            nodes.value[k] = float(-g[sel].sum() / (h[sel].sum() + self.lam) * self.lr)
        return root, leaf_of

    def _best_split(self, b: np.ndarray, g: np.ndarray, h: np.ndarray, edges: list[np.ndarray]):
        d = b.shape[1]
        nb = self.n_bins
        flat = (b + np.arange(d) * nb).ravel()
        G = np.bincount(flat, weights=np.repeat(g, d), minlength=d * nb).reshape(d, nb).cumsum(axis=1)
        H = np.bincount(flat, weights=np.repeat(h, d), minlength=d * nb).reshape(d, nb).cumsum(axis=1)
        Gt, Ht = G[:, -1:], H[:, -1:]
        GR, HR = Gt - G, Ht - H
        lam = self.lam
        gain = G * G / (H + lam) + GR * GR / (HR + lam) - Gt * Gt / (Ht + lam)
        usable = np.arange(nb)[None, :] < np.array([len(e) for e in edges])[:, None]
        small = np.minimum(H, HR) < self.min_hess
        gain[~usable | small] = -np.inf
        f, k = np.unravel_index(int(np.argmax(gain)), gain.shape)
        return (int(f), int(k)) if gain[f, k] > 1e-12 else None

    def _set(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        a = arrays
        self.kernel = _k.TreesKernel(a["feat"], a["thr"], a["left"], a["right"], a["value"], a["roots"],
                                     float(a["base"][0]), int(a["n_in"][0]), self.link)

    def _staged(self, X: np.ndarray):
        """The raw score after each tree in turn (the kernel's order of additions)."""
        X64 = _as_rows(X).astype(np.float64)
        a = self.arrays
        feat, thr, left, right, value = a["feat"], a["thr"], a["left"], a["right"], a["value"]
        z = np.full(X64.shape[0], float(a["base"][0]))
        rows = np.arange(X64.shape[0])
        for r in a["roots"]:
            node = np.full(X64.shape[0], r, dtype=np.int64)
            for _ in range(64):
                f = feat[node]
                inner = f >= 0
                if not inner.any():
                    break
                x = X64[rows, np.where(inner, f, 0)]
                step = np.where(x <= thr[node], left[node], right[node])
                node = np.where(inner, step, node)
            z = z + value[node]
            yield z

    def score(self, X: np.ndarray) -> np.ndarray:
        """The raw sum of leaves (before any link), tree by tree as the kernel adds them."""
        z = np.full(len(X), float(self.arrays["base"][0]))
        for z in self._staged(X):                       # noqa: B007 - the last stage is the score
            pass
        return z

    def params(self) -> dict[str, Any]:
        return {"n_trees": self.n_trees, "depth": self.depth, "lr": self.lr, "n_bins": self.n_bins, "lam": self.lam,
                "min_hess": self.min_hess, "early_frac": self.early_frac, "n_used": self.n_used,
                "nodes": len(self.arrays.get("feat", ()))}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict[str, Any], task: str = REGRESSION) -> Trees:
        keep = {k: params[k] for k in ("n_trees", "depth", "lr", "n_bins", "lam", "min_hess", "early_frac", "n_used")
                if k in params}
        m = cls(task=task, **keep)
        m._set({k: np.asarray(v) for k, v in arrays.items()})
        return m


# ---- MLP -----------------------------------------------------------------------------------------------------


@dataclass
class MLP(Model):
    """One hidden layer of tanh units, Adam (at most ``epochs``, early-stopped on the rows' last ``early_frac``),
    the standardisation of inputs (and of a regression target) folded into the stored weights."""

    task: str = REGRESSION
    hidden: int = 16
    epochs: int = 40
    batch: int = 256
    lr: float = 3e-3
    l2: float = 1e-4
    seed: int = 0
    early_frac: float = 0.15
    epochs_used: int = 0
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    name: ClassVar[str] = "mlp"

    def fit(self, X: np.ndarray, y: np.ndarray) -> MLP:
        """Choose the number of epochs (at most ``epochs``) on the last ``early_frac`` of the rows (time order),
        then train that many on every row (the same seed)."""
        X = _as_rows(X)
        y = np.asarray(y, dtype=np.float64)
        self.epochs_used = self.epochs
        if self.early_frac > 0 and len(y) >= 400:
            cut = int(len(y) * (1 - self.early_frac))
            losses: list[float] = []
            self._fit(X[:cut], y[:cut], self.epochs, lambda: losses.append(_loss(self.task, y[cut:],
                                                                                 self.score(X[cut:]))))
            self.epochs_used = int(np.argmin(losses)) + 1
        return self._fit(X, y, self.epochs_used, None)

    def _fit(self, X: np.ndarray, y: np.ndarray, epochs: int, each_epoch) -> MLP:
        mu, sd = _standardize(X)
        Z = (X - mu) / sd
        cls = self.task == CLASSIFICATION
        ym, ys = (0.0, 1.0) if cls else (float(y.mean()), float(y.std()) or 1.0)
        t = y if cls else (y - ym) / ys
        rng = np.random.default_rng(self.seed)
        d = Z.shape[1]
        P = {"w1": rng.normal(0, 1 / np.sqrt(d), (d, self.hidden)), "b1": np.zeros(self.hidden),
             "w2": rng.normal(0, 1 / np.sqrt(self.hidden), self.hidden),
             "b2": np.array([np.log((y.mean() + 1e-3) / (1 - y.mean() + 1e-3)) if cls else 0.0])}
        def fold() -> None:
            self._set({"w1": np.ascontiguousarray(P["w1"] / sd[:, None]), "b1": P["b1"] - (mu / sd) @ P["w1"],
                       "w2": P["w2"] * ys, "b2": np.array([ym + ys * float(P["b2"][0])])})

        def after_epoch() -> None:
            if each_epoch is not None:
                fold()
                each_epoch()

        self._adam(Z, t, P, rng, cls, epochs, after_epoch)
        fold()
        return self

    def _adam(self, Z: np.ndarray, t: np.ndarray, P: dict[str, np.ndarray], rng: np.random.Generator,
              cls: bool, epochs: int, after_epoch) -> None:
        m = {k: np.zeros_like(v) for k, v in P.items()}
        v = {k: np.zeros_like(x) for k, x in P.items()}
        b1, b2, eps, step = 0.9, 0.999, 1e-8, 0
        n = len(Z)
        for _ in range(epochs):
            order = rng.permutation(n)
            for s in range(0, n, self.batch):
                idx = order[s:s + self.batch]
                grads = self._grads(Z[idx], t[idx], P, cls)
                step += 1
                for k in P:
                    m[k] = b1 * m[k] + (1 - b1) * grads[k]
                    v[k] = b2 * v[k] + (1 - b2) * grads[k] ** 2
                    mh, vh = m[k] / (1 - b1 ** step), v[k] / (1 - b2 ** step)
                    P[k] = P[k] - self.lr * mh / (np.sqrt(vh) + eps)
            after_epoch()

    def _grads(self, Z: np.ndarray, t: np.ndarray, P: dict[str, np.ndarray], cls: bool) -> dict[str, np.ndarray]:
        A = np.tanh(Z @ P["w1"] + P["b1"])
        out = A @ P["w2"] + P["b2"][0]
        err = (_sigmoid(out) - t) if cls else (out - t)          # d loss / d out (BCE, or MSE / 2)
        k = 1.0 / len(Z)
        dA = np.outer(err, P["w2"]) * (1 - A * A)
        return {"w2": k * A.T @ err + self.l2 * P["w2"], "b2": np.array([k * err.sum()]),
                "w1": k * Z.T @ dA + self.l2 * P["w1"], "b1": k * dA.sum(axis=0)}

    def _set(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in arrays.items()}
        a = self.arrays
        self.kernel = _k.MLPKernel(a["w1"], a["b1"], a["w2"], float(a["b2"][0]), self.link)

    def score(self, X: np.ndarray) -> np.ndarray:
        """The raw output (before any link), in the kernel's order of operations."""
        X = _as_rows(X)
        a = self.arrays
        w1, b1, w2 = a["w1"], a["b1"], a["w2"]
        acc = np.tile(b1, (X.shape[0], 1))
        for j in range(X.shape[1]):
            acc = acc + X[:, j].astype(np.float64)[:, None] * w1[j]
        H = np.tanh(acc)
        z = np.full(X.shape[0], float(a["b2"][0]))
        for k in range(w2.shape[0]):
            z = z + w2[k] * H[:, k]
        return z

    def params(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "epochs": self.epochs, "batch": self.batch, "lr": self.lr, "l2": self.l2,
                "seed": self.seed, "early_frac": self.early_frac, "epochs_used": self.epochs_used}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict[str, Any], task: str = REGRESSION) -> MLP:
        keep = {k: params[k] for k in ("hidden", "epochs", "batch", "lr", "l2", "seed", "early_frac", "epochs_used")
                if k in params}
        m = cls(task=task, **keep)
        m._set(arrays)
        return m


# ---- factory -------------------------------------------------------------------------------------------------


def make(capacity: str, task: str, seed: int = 0) -> Model:
    """A fresh model of ``capacity`` (linear, trees, mlp) for ``task`` (regression, classification)."""
    if task not in (REGRESSION, CLASSIFICATION):
        raise ConfigError(f"unknown task {task!r}")
    if capacity == "linear":
        return Logistic() if task == CLASSIFICATION else Linear()
    if capacity == "trees":
        return Trees(task=task)
    if capacity == "mlp":
        return MLP(task=task, seed=seed)
    raise ConfigError(f"unknown capacity {capacity!r}: one of {', '.join(CAPACITIES)}")


def restore(kind: str, task: str, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> Model:
    """A model of class ``kind`` (``Model.name``) rebuilt from its stored arrays and parameters."""
    if kind == "linear" and task == REGRESSION:
        return Linear.from_arrays(arrays, params)
    if kind == "logistic" and task == CLASSIFICATION:
        return Logistic.from_arrays(arrays, params)
    if kind == "trees":
        return Trees.from_arrays(arrays, params, task)
    if kind == "mlp":
        return MLP.from_arrays(arrays, params, task)
    raise ConfigError(f"unknown model kind {kind!r} for a {task} target")
