"""Built-in datasets and the deterministic train/validation split.

A dataset factory returns raw arrays; splitting, scaling and tensors are ours:

    factory(seed: int, **params) -> RawData

Plugins registered under `tuner.datasets` follow the same signature.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from tuner.digests import digest
from tuner.errors import DataChanged, DataError, count
from tuner.params import Classes, Condition, NonNegative, Samples, Width, check_params
from tuner.spec import DEFAULT_VAL_FRACTION

Kind = Literal["classification", "regression"]
MAX_AUTO_CLASSES = 50


@dataclass
class RawData:
    """What a dataset factory returns: features (n, ...) and targets (n,)."""

    X: np.ndarray
    y: np.ndarray
    kind: Kind
    # Scale features to zero mean / unit variance on the training split (tabular data).
    standardize: bool = True


@dataclass(frozen=True)
class DataInfo:
    """What a model factory needs to know about the data (also task features)."""

    input_shape: tuple[int, ...]
    n_outputs: int
    kind: Kind
    n_classes: int | None
    n_train: int
    n_val: int


@dataclass
class DataSplit:
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    info: DataInfo

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size()
                   for t in (self.X_train, self.y_train, self.X_val, self.y_val))

    def val_sample(self, n: int) -> torch.Tensor:
        return self.X_val[:n]

    def to(self, device: torch.device) -> DataSplit:
        return DataSplit(self.X_train.to(device), self.y_train.to(device),
                         self.X_val.to(device), self.y_val.to(device), self.info)


@dataclass
class DiskSplit:
    """Data read from disk example by example (image folders, torchvision and Hugging Face
    datasets): `train` and `val` are torch datasets of (x, target) that decode (and augment)
    each example when it is read, so it always trains through a DataLoader."""

    train: torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]
    val: torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]
    info: DataInfo
    # The training and validation labels, where the source gives them without decoding an
    # example (an image folder's, a labelled dataset's): what `no_skill` reads.
    labels: tuple[np.ndarray, np.ndarray] | None = None

    def nbytes(self) -> int:
        """What the examples take once decoded (fp32): too big to move, by design."""
        per = 4 * int(np.prod(self.info.input_shape)) + 8
        return per * (self.info.n_train + self.info.n_val)

    def val_sample(self, n: int) -> torch.Tensor:
        return torch.stack([self.val[i][0] for i in range(min(n, self.info.n_val))])


def split_indices(y: np.ndarray, seed: int, val_fraction: float, *,
                  stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Train / validation indices: seeded, stratified by class when every class has two."""
    from sklearn.model_selection import train_test_split

    strat = None
    if stratify:
        _, inv = np.unique(y, return_inverse=True)
        strat = inv if np.bincount(inv).min() >= 2 else None
    idx_train, idx_val = train_test_split(np.arange(len(y)), test_size=val_fraction,
                                          random_state=seed, stratify=strat)
    return np.asarray(idx_train), np.asarray(idx_val)


# built-ins ----------------------------------------------------------------------------------

def _sk(loader: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets as skd

    bunch = getattr(skd, loader)()
    return np.asarray(bunch.data, dtype=np.float32), np.asarray(bunch.target)


def digits(seed: int = 0) -> RawData:
    X, y = _sk("load_digits")
    return RawData((X / 16.0).reshape(-1, 1, 8, 8), y, "classification", standardize=False)


def iris(seed: int = 0) -> RawData:
    return RawData(*_sk("load_iris"), "classification")


def wine(seed: int = 0) -> RawData:
    return RawData(*_sk("load_wine"), "classification")


def breast_cancer(seed: int = 0) -> RawData:
    return RawData(*_sk("load_breast_cancer"), "classification")


def diabetes(seed: int = 0) -> RawData:
    return RawData(*_sk("load_diabetes"), "regression")


def classification(seed: int = 0, n_samples: Samples = 1000, n_features: Width = 20,
                   n_informative: Width = 10, n_classes: Classes = 3) -> RawData:
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n_samples, n_features=n_features,
                               n_informative=n_informative, n_classes=n_classes,
                               random_state=seed)
    return RawData(X.astype(np.float32), y, "classification")


def regression(seed: int = 0, n_samples: Samples = 1000, n_features: Width = 20,
               noise: NonNegative = 10.0) -> RawData:
    from sklearn.datasets import make_regression

    X, y = make_regression(n_samples=n_samples, n_features=n_features, noise=noise,
                           random_state=seed)
    return RawData(X.astype(np.float32), y, "regression")


def quadratic(seed: int = 0, n_samples: Samples = 512, n_features: Width = 16,
              condition: Condition = 100.0, noise: NonNegative = 0.01) -> RawData:
    """Least squares whose Hessian (XᵀX/n) has the given condition number: with the `linear`
    model the loss is a quadratic of known conditioning."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n_features, n_features)))
    scales = np.sqrt(np.geomspace(1.0, condition, n_features))
    X = rng.standard_normal((n_samples, n_features)) @ np.diag(scales) @ q.T
    w = rng.standard_normal(n_features)
    y = X @ w + noise * rng.standard_normal(n_samples)
    return RawData(X.astype(np.float32), y, "regression", standardize=False)


def from_file(seed: int = 0, path: str = "", target: str | None = None,
              task: Literal["auto", "classification", "regression"] = "auto",
              x_key: str = "X", y_key: str = "y", drop: list[str] | None = None) -> RawData:
    """A .npz (arrays X and y) or .csv / .parquet (a target column, default the last; every
    other column a feature, but those in `drop`, and each must hold numbers) file.
    A team's job reads its own folder of the data root (`TUNER_DATA_ROOT/<team>/`), and the
    shared one when configured (`TUNER_DATA_SHARED`, addressed as `<shared>/<file>`); `tuner run`
    reads the whole data root. Paths outside are refused, and an error never shows a server
    path or tells another team's file from a missing one."""
    if not path:
        raise DataError("task.dataset.params.path: required for the file dataset")
    full = data_path(path)
    try:
        return _read_file(full, path, target, task, x_key, y_key, drop or [])
    except DataError:
        raise
    except Exception as exc:  # a corrupt or unreadable file: say so, without server paths
        raise DataError(f"task.dataset.params.path: cannot read {path!r}: "
                        f"{type(exc).__name__}: {_scrub(str(exc), full)}") from None


@contextmanager
def team_scope(scope: str | None) -> Iterator[None]:
    """Within: file and folder references (datasets, `hf:` model folders) resolve in the data
    folder of team `scope` (None: the whole data root, for `tuner run`)."""
    token = _SCOPE.set(scope)
    try:
        yield
    finally:
        _SCOPE.reset(token)


def team_data(name: str, params: dict[str, Any], scope: str | None) -> Path | None:
    """The file (`file`) or folder (`imagefolder`, an `hf:` folder) a dataset reads from the
    team's data folder; None: not team data (a built-in dataset, a hub id)."""
    if name == "file":
        with team_scope(scope):
            return data_path(str(params.get("path", "")))
    if name == "imagefolder" or name.startswith("hf:"):
        path = str(params.get("path", "")) if name == "imagefolder" else name[3:]
        with team_scope(scope):
            try:
                return data_path(path, folder=True)
            except DataError:
                if name == "imagefolder":
                    raise
                return None  # a hub id
    return None


def data_digest(name: str, params: dict[str, Any], scope: str | None) -> str | None:
    """What the team's data *is*: the SHA-256 (first 16 hex digits) of a `file` dataset's bytes
    (what `sha256sum` prints), or of a folder's files (`imagefolder`, an `hf:` dataset or model
    folder: their paths below it and their bytes, in path order); for an `hf:` hub dataset,
    the cached version it loads (`tuner.references.hub_revision`). Part of a task's identity:
    runs on the file before and after it was rewritten are measured on other data, and are
    never pooled as repeats. The same bytes give the same digest wherever the file lies and
    whenever it was written. None: nothing to identify beyond the name (built-in and synthetic
    datasets are the service's code, a torchvision dataset is fixed by its release, and a
    trainable brings its own data). Each file's hash is kept by its size and modification time
    (`_digest`): after the first read, a process only lists the folder."""
    return _digest_of("dataset", name, params, scope)


def model_digest(name: str, params: dict[str, Any], scope: str | None) -> str | None:
    """What a model's weights are, where they are data rather than the service's code: the
    digest of an `hf:` model folder in the team's data (its weights and config, as
    `data_digest`), or the hub snapshot an `hf:` hub id (or a pretrained `timm:` model's
    weights) is read from in the cache. None for every other model (built-in code, or a
    torchvision model whose weights its release fixes)."""
    return _digest_of("model", name, params, scope)


def _digest_of(kind: str, name: str, params: dict[str, Any], scope: str | None) -> str | None:
    if kind == "model" and not name.startswith("hf:"):
        root = None
    else:
        root = team_data(name, params if kind == "dataset" else {}, scope)
    if root is not None:
        return digest(root, f"task.{kind}")
    from tuner.references import hub_revision

    return hub_revision(kind, name, params) if name.startswith(("hf:", "timm:")) else None


def check_unchanged(name: str, params: dict[str, Any], scope: str | None,
                    expected: str | None, *, field: str = "task.dataset") -> None:
    """Refuse to train on team data whose bytes are no longer those its task was made from
    (`expected`, the task's digest; None: nothing to check), or on another fetched copy of a
    hub reference. A job's trials on a rewritten file would be stored as runs of a task they
    were not measured on. `field`: `task.model` for a model's weights (`model_digest`)."""
    if expected is None:
        return
    dataset = field == "task.dataset"
    now = (data_digest if dataset else model_digest)(name, params, scope)
    if now != expected:
        other = "data" if dataset else "weights"
        if team_data(name, params if dataset else {}, scope) is None:
            what = f"the cached copy of {name} (another hub revision was fetched)"
        else:
            what = "the data" if dataset else f"the model folder {name}"
        raise DataChanged(f"{field}: {what} changed since the job was submitted (digest "
                          f"{expected}, now {now}): its trials would be measured on other "
                          f"{other} than its task's. Submit the job again: it is a new task",
                          field, what, expected, str(now))



def data_path(path: str, *, field: str = "task.dataset.params.path",
              folder: bool = False) -> Path:
    """`path` resolved in the data folder the current team may read (its own, the shared one
    with `<shared>/...`; `tuner run`: the whole data root): a file, or with `folder` a
    directory. Paths outside are refused, and an error never shows a server path or tells
    another team's file from a missing one."""
    from tuner.config import get_settings

    what = "folder" if folder else "file"
    if not path:
        raise DataError(f"{field}: required")
    settings = get_settings()
    root, scope, shared = settings.data_root.resolve(), _SCOPE.get(), settings.data_shared
    if shared and (path == shared or path.startswith(shared.rstrip("/") + "/")):
        base, rel = (root / shared).resolve(), path[len(shared):].lstrip("/")
    elif scope is not None:
        base, rel = (root / scope).resolve(), path
    else:
        base, rel = root, path
    full = (base / rel).resolve()
    exists = full.is_dir() if folder else full.is_file()
    if scope is not None:  # one answer for outside, missing and another team's
        if not (full.is_relative_to(base) and exists):
            raise DataError(f"{field}: no {what} {path!r} in your team's data folder")
        return full
    if not full.is_relative_to(base):
        raise DataError(f"{field}: {path!r} is outside the data root")
    if not exists:
        raise DataError(f"{field}: no such {what} {path!r} under the data root")
    return full


def _scrub(message: str, full: Path) -> str:
    from tuner.config import get_settings

    for p in (str(full), str(full.parent), str(get_settings().data_root.resolve())):
        message = message.replace(p, "<data>")
    return message[:300]


def _read_file(full: Path, path: str, target: str | None,
               task: Literal["auto", "classification", "regression"], x_key: str,
               y_key: str, drop: list[str]) -> RawData:
    suffix = full.suffix.lower()
    if drop and suffix == ".npz":
        raise DataError("task.dataset.params.drop: names columns of a .csv or .parquet file; "
                        f"{path} holds arrays")
    if suffix == ".npz":
        with np.load(full, allow_pickle=False) as npz:
            missing = [k for k in (x_key, y_key) if k not in npz]
            if missing:
                raise DataError(f"task.dataset.params: {path} has no array {missing[0]!r}; "
                                f"it has {', '.join(npz.files)}")
            X, y = np.asarray(npz[x_key], dtype=np.float32), np.asarray(npz[y_key])
    elif suffix in (".csv", ".parquet"):
        import pandas as pd

        df = pd.read_csv(full) if suffix == ".csv" else pd.read_parquet(full)
        if suffix == ".csv" and len(df.columns) == 1:
            _one_column(str(df.columns[0]), path)
        col = target or str(df.columns[-1])
        if col not in df.columns:
            raise DataError(f"task.dataset.params.target: no column {col!r}; valid choices: "
                            f"{', '.join(map(str, df.columns))}")
        if suffix == ".csv":
            _no_nameless(df, path, [col, *drop])
        X, y = _features(df, col, drop, path), df[col].to_numpy()
        gaps = np.flatnonzero(df[col].isna().to_numpy())
        if len(gaps):  # a text target with a gap failed in NumPy, a numeric one trained on NaN
            raise DataError(f"task.dataset: {path} has no value of the target {col!r} in "
                            f"{count(len(gaps), 'row')} (the first is data row {gaps[0] + 1}, not "
                            f"counting a header); the service does not fill them in: drop "
                            f"those rows")
    else:
        raise DataError(f"task.dataset.params.path: unsupported file type {suffix!r}; "
                        "valid choices: .csv, .npz, .parquet")
    if len(X) != len(y):
        raise DataError(f"task.dataset: {path} has {len(X)} rows of X but {len(y)} targets")
    if task == "auto":
        numeric = np.issubdtype(y.dtype, np.number)
        integral = numeric and bool(np.all(np.mod(y.astype(np.float64), 1) == 0))
        few = len(np.unique(y)) <= MAX_AUTO_CLASSES
        task = "classification" if (not numeric or integral) and few else "regression"
    return RawData(X, y, task)


def _one_column(header: str, path: str) -> None:
    """A CSV read as one column whose name holds another separator (a spreadsheet's export in
    a locale with decimal commas is separated by ';') is refused saying so: it was `has no
    feature left: its columns are the target 'f0;f1;...;price'`."""
    for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
        if sep in header:
            raise DataError(f"task.dataset: {path} reads as one column, {header[:80]!r}: the "
                            f"service reads comma-separated values, and this file looks "
                            f"separated by {name}; save it with commas (and '.' as the decimal "
                            f"point) or as .parquet")


def _no_nameless(df: Any, path: str, named: list[str]) -> None:
    """A column with no name in the header (pandas reads it as `Unnamed: 0`) is most often a
    row index saved with the data (pandas' `to_csv` writes one unless told `index=False`): a
    row number trained on as a feature, which on a file sorted by its target tells the model
    the answer. Refused by name, to be named or left out (it was trained on without a word);
    `named`: the target and params.drop, which name it."""
    nameless = [str(c) for c in df.columns
                if re.fullmatch(r"Unnamed: \d+", str(c)) and str(c) not in named]
    if nameless:
        raise DataError(f"task.dataset: {path} has a column with no name in its header "
                        f"({', '.join(repr(c) for c in nameless)}), most often a row index saved "
                        f"with the data (pandas: to_csv(index=False) leaves it out): give it a "
                        f"name to train on it, or leave it out with params.drop: "
                        f"{json.dumps(nameless)}")


def _features(df: Any, target: str, drop: list[str], path: str) -> np.ndarray:
    """Every column but the target and `drop` as features. A column that is not numbers (text,
    dates) is refused by name: it was left out without a word, so the model saw less than the
    file holds."""
    import pandas as pd

    columns = [str(c) for c in df.columns]
    for name in drop:
        if name not in columns or name == target:
            why = "is the target" if name == target else "is not a column of the file"
            raise DataError(f"task.dataset.params.drop: {name!r} {why}; valid choices: "
                            f"{', '.join(c for c in columns if c != target)}")
    feats = df.drop(columns=[target, *drop])
    if not len(feats.columns):  # a model of no inputs trained on nothing but the class counts
        raise DataError(f"task.dataset: {path} has no feature left: its columns are the target "
                        f"{target!r}" + (f" and params.drop {json.dumps(drop)}" if drop else ""))
    text = [str(c) for c in feats.columns if not pd.api.types.is_numeric_dtype(feats[c])]
    if text:
        names = ", ".join(repr(c) for c in text)
        raise DataError(f"task.dataset: {path} has columns that are not numbers ({names}); "
                        f"the model reads numbers only: encode them, or leave them out with "
                        f"params.drop: {json.dumps(text)}")
    values = np.asarray(feats.to_numpy(dtype=np.float32))  # a value past float32's range: inf
    bad = ~np.isfinite(values)
    if bad.any():  # was "features contain NaN or inf", naming neither the column nor the row
        per_column = bad.sum(axis=0)
        cols = [str(c) for c, k in zip(feats.columns, per_column, strict=True) if k]
        where = ", ".join(f"{c!r} ({count(int(k), 'row')})"
                          for c, k in zip(feats.columns, per_column, strict=True) if k)
        first = int(np.flatnonzero(bad.any(axis=1))[0])
        raise DataError(f"task.dataset: {path} has missing or infinite values in {where}; the "
                        f"first is data row {first + 1}, not counting a header. The service "
                        f"does not fill them in: fill them, drop those rows, or leave the "
                        f"columns out with params.drop: {json.dumps(cols)}")
    return values


# split ---------------------------------------------------------------------------------------

def prepare(raw: RawData, seed: int, val_fraction: float = 0.2) -> DataSplit:
    """Deterministic (seeded, stratified for classification) split, scaling fitted on train."""
    X = np.asarray(raw.X, dtype=np.float32)
    y = np.asarray(raw.y)
    if X.ndim < 2 or len(X) < 4 or not X[0].size:
        raise DataError(f"task.dataset: need at least 4 examples with features, got {X.shape}")
    finite = np.isfinite(X.reshape(len(X), -1))
    if not finite.all():
        rows = np.flatnonzero(~finite.all(axis=1))
        raise DataError(f"task.dataset: the features hold NaN or infinite values in "
                        f"{count(len(rows), 'example')} (the first at index "
                        f"{rows[0]}); the service does not fill them in")
    n_classes: int | None = None
    if raw.kind == "classification":
        classes, y = np.unique(y, return_inverse=True)
        n_classes = len(classes)
        if n_classes < 2:
            raise DataError("task.dataset: classification needs at least 2 classes")
        if n_classes > len(y) // 2:  # a continuous target read as classes learns nothing
            raise DataError(f"task.dataset: {n_classes} classes for {len(y)} examples, fewer "
                            f"than 2 each to train and validate on; a target of measurements "
                            f"is a regression (params.task: regression)")
    else:
        y = y.astype(np.float32)
    idx_train, idx_val = split_indices(y, seed, val_fraction,
                                       stratify=raw.kind == "classification")
    Xtr, Xva = X[idx_train], X[idx_val]
    ytr, yva = y[idx_train], y[idx_val]
    if raw.standardize:
        mean, std = Xtr.mean(axis=0), Xtr.std(axis=0)
        std[std == 0] = 1.0
        Xtr, Xva = (Xtr - mean) / std, (Xva - mean) / std
    if raw.kind == "regression":
        m, s = float(ytr.mean()), float(ytr.std()) or 1.0
        ytr, yva = (ytr - m) / s, (yva - m) / s
        y_dtype = torch.float32
    else:
        y_dtype = torch.long
    info = DataInfo(tuple(int(d) for d in X.shape[1:]),
                    n_classes if n_classes is not None else 1,
                    raw.kind, n_classes, len(idx_train), len(idx_val))
    return DataSplit(torch.as_tensor(Xtr, dtype=torch.float32), torch.as_tensor(ytr, dtype=y_dtype),
                     torch.as_tensor(Xva, dtype=torch.float32), torch.as_tensor(yva, dtype=y_dtype),
                     info)


# The team whose data a file dataset reads (None: the whole data root, for `tuner run`). A
# context variable, not a parameter: a spec's params must never choose it.
_SCOPE: ContextVar[str | None] = ContextVar("tuner_data_scope", default=None)


Split = DataSplit | DiskSplit


def no_skill(data: Split, metric: str) -> float | None:
    """What a model that ignores its inputs scores on this validation set, by `metric`: one
    that predicts the training set's most common class (accuracy) or its class frequencies
    (a classification loss), or its mean (a regression's loss and R²) for every example. A
    search whose best family scores no better learned nothing from the inputs: on a table
    whose label is 93% one class, every family "tied" at 0.93 (2026-12-07). None where the
    labels are not known without reading every example, or the metric is not one of these,
    or it is not a finite number (an answer's JSON holds no NaN)."""
    value = _no_skill(data, metric)
    return value if value is not None and math.isfinite(value) else None


def _no_skill(data: Split, metric: str) -> float | None:
    if isinstance(data, DiskSplit):
        if data.labels is None:
            return None
        y_train, y_val = (torch.as_tensor(np.asarray(y)) for y in data.labels)
    else:
        y_train, y_val = data.y_train.detach().cpu(), data.y_val.detach().cpu()
    if not len(y_train) or not len(y_val):
        return None
    if data.info.kind == "classification":
        counts = torch.bincount(y_train.long(), minlength=int(data.info.n_classes or 0)).double()
        if metric == "val_accuracy":
            return float((y_val.long() == counts.argmax()).double().mean())
        if metric == "val_loss":  # add-one: a class the training set lacks costs a finite loss
            p = (counts + 1) / float(counts.sum() + len(counts))
            if len(p) <= int(y_val.max()):
                return None
            return float(-p.log()[y_val.long()].mean())
        return None
    err = (y_val.double() - y_train.double().mean()) ** 2
    if metric == "val_loss":
        return float(err.mean())
    if metric == "val_r2":  # as the loop computes it (tuner.training.Trainer.evaluate)
        sst = float(((y_val.double() - y_val.double().mean()) ** 2).sum()) or 1.0
        return 1.0 - float(err.sum()) / sst
    return None


def load_dataset(name: str, params: dict[str, Any], seed: int, *,
                 scope: str | None = None) -> Split:
    """The registered dataset `name`, split deterministically from `seed`; `scope`: the team
    whose data folder a file or folder dataset reads. Every failure is a `DataError` naming
    the field. Datasets read from disk (`DiskSplit`) split themselves."""
    import inspect

    from tuner.registry import DATASETS

    params = dict(params)
    try:
        val_fraction = float(params.pop("val_fraction", DEFAULT_VAL_FRACTION))
    except (TypeError, ValueError):
        raise DataError("task.dataset.params.val_fraction: must be a number in (0, 1)") from None
    if not 0 < val_fraction < 1:
        raise DataError(f"task.dataset.params.val_fraction: must be in (0, 1), got {val_fraction}")
    factory = DATASETS.get(name)
    check_params("task.dataset.params", name, factory, params, ("seed", "val_fraction"),
                 DataError)
    _check_size(name, factory, params)
    if "val_fraction" in inspect.signature(factory).parameters:
        params["val_fraction"] = val_fraction
    try:
        with team_scope(scope):
            raw = factory(seed=seed, **params)
    except DataError:
        raise
    except TypeError as exc:
        raise DataError(f"task.dataset.params: {name} does not accept these params ({exc})") from exc
    except (ValueError, ArithmeticError, MemoryError, IndexError, KeyError) as exc:
        raise DataError(f"task.dataset.params: {name} cannot be made from these params: "
                        f"{type(exc).__name__}: {str(exc)[:300]}") from None
    if isinstance(raw, DiskSplit):
        return raw
    if not isinstance(raw, RawData):
        raise DataError(f"task.dataset: factory for {name!r} returned {type(raw).__name__}, "
                        "not tuner.datasets.RawData")
    _check_size(name, None, {"n_samples": len(raw.X), "n_features": int(np.prod(
        np.shape(raw.X)[1:]))})
    try:
        return prepare(raw, seed, val_fraction)
    except DataError:
        raise
    except (ValueError, TypeError) as exc:  # e.g. a split that leaves no training example
        raise DataError(f"task.dataset: cannot split {name} with val_fraction {val_fraction}: "
                        f"{str(exc)[:300]}") from None


def _check_size(name: str, factory: Any, params: dict[str, Any]) -> None:
    """Refuse a dataset bigger than `TUNER_MAX_DATASET_VALUES` (samples x features) before it
    is made, from its params and the factory's defaults (and again once it is loaded)."""
    import inspect

    from tuner.config import get_settings

    defaults = {} if factory is None else {
        k: p.default for k, p in inspect.signature(factory).parameters.items()
        if p.default is not inspect.Parameter.empty}
    n, f = (params.get(k, defaults.get(k)) for k in ("n_samples", "n_features"))
    if not (isinstance(n, int) and isinstance(f, int)):
        return
    limit = get_settings().max_dataset_values
    if n * f > limit:
        raise DataError(f"task.dataset.params: {n} samples x {f} features = {n * f:,} values, "
                        f"more than the limit of {limit:,} (TUNER_MAX_DATASET_VALUES)")
