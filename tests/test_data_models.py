"""Datasets (built-in, file, plugin), deterministic splits and model building."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from tuner.config import get_settings
from tuner.datasets import DataInfo, data_digest, load_dataset
from tuner.errors import DataError, ModelError
from tuner.models import build_model
from tuner.registry import DATASETS, MODELS


@pytest.mark.parametrize(("name", "kind", "shape"), [
    ("digits", "classification", (1, 8, 8)), ("iris", "classification", (4,)),
    ("wine", "classification", (13,)), ("breast_cancer", "classification", (30,)),
    ("diabetes", "regression", (10,)), ("classification", "classification", (20,)),
    ("regression", "regression", (20,)), ("quadratic", "regression", (16,)),
])
def test_builtin_datasets(name: str, kind: str, shape: tuple[int, ...]) -> None:
    d = load_dataset(name, {}, seed=0)
    assert d.info.kind == kind and d.info.input_shape == shape
    assert d.info.n_train + d.info.n_val == d.X_train.shape[0] + d.X_val.shape[0]
    assert torch.isfinite(d.X_train).all()


def test_split_is_deterministic_from_seed() -> None:
    a, b, c = (load_dataset("wine", {}, seed=s) for s in (3, 3, 4))
    assert torch.equal(a.X_val, b.X_val) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.X_val, c.X_val)
    assert load_dataset("wine", {"val_fraction": 0.5}, seed=3).info.n_val == 89


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("TUNER_DATA_ROOT", str(root))
    get_settings.cache_clear()
    yield root
    get_settings.cache_clear()


def test_file_dataset_formats(data_root: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    np.savez(data_root / "a.npz", X=X, y=y)
    df = pd.DataFrame(X, columns=["f1", "f2", "f3"]).assign(label=y)
    df.to_csv(data_root / "a.csv", index=False)
    (data_root / "sub").mkdir()
    df.assign(score=X[:, 1] * 1.5).drop(columns="label").to_parquet(data_root / "sub/a.parquet")
    for path in ("a.npz", "a.csv"):
        d = load_dataset("file", {"path": path}, seed=0)
        assert d.info.kind == "classification" and d.info.n_classes == 2
        assert d.info.input_shape == (3,)
    reg = load_dataset("file", {"path": "sub/a.parquet", "target": "score"}, seed=0)
    assert reg.info.kind == "regression"


def test_no_skill_is_what_a_model_that_ignores_its_inputs_scores() -> None:
    """`no_skill`: the training set's most common class (accuracy), its class frequencies (a
    classification loss, add-one), its mean (a regression's loss and R², as the loop computes
    them), scored on the validation set; None for data read from disk."""
    import math

    from tuner.datasets import DataSplit, DiskSplit, no_skill

    info = DataInfo((1,), 2, "classification", 2, 4, 5)
    x4, x5 = torch.zeros(4, 1), torch.zeros(5, 1)
    cls = DataSplit(x4, torch.tensor([0, 0, 0, 1]), x5, torch.tensor([0, 1, 1, 0, 0]), info)
    assert no_skill(cls, "val_accuracy") == pytest.approx(0.6)
    p = [4 / 6, 2 / 6]  # (3 + 1, 1 + 1) over 4 + 2
    assert no_skill(cls, "val_loss") == pytest.approx(
        -(3 * math.log(p[0]) + 2 * math.log(p[1])) / 5)
    rinfo = DataInfo((1,), 1, "regression", None, 3, 3)
    reg = DataSplit(torch.zeros(3, 1), torch.tensor([1.0, 2.0, 3.0]), torch.zeros(3, 1),
                    torch.tensor([1.0, 3.0, 5.0]), rinfo)
    assert no_skill(reg, "val_loss") == pytest.approx(11 / 3)  # (1 + 1 + 9) / 3 about 2
    assert no_skill(reg, "val_r2") == pytest.approx(1 - 11 / 8)  # val's own spread: 8
    huge = DataSplit(reg.X_train, torch.tensor([1e300, -1e300, 1e300], dtype=torch.float64),
                     reg.X_val, torch.tensor([1e300, 1e300, 1e300], dtype=torch.float64), rinfo)
    assert no_skill(huge, "val_loss") is None  # inf: no NaN or inf in an answer's JSON
    disk = DiskSplit(torch.utils.data.TensorDataset(x4), torch.utils.data.TensorDataset(x5), info)
    assert no_skill(disk, "val_accuracy") is None  # labels not known without reading each
    disk.labels = (np.array([0, 0, 0, 1]), np.array([0, 1, 1, 0, 0]))
    assert no_skill(disk, "val_accuracy") == pytest.approx(0.6)
    # What the training loop itself scores for a model whose output is that constant (the
    # training set's log class frequencies, or its mean): the same figures
    from tuner.space import TrialConfig
    from tuner.spec import TrainingSpec
    from tuner.training import Trainer

    class Constant(torch.nn.Module):
        def __init__(self, out: torch.Tensor) -> None:
            super().__init__()
            self.out = torch.nn.Parameter(out)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out.expand(len(x), -1)

    sgd = TrialConfig("sgd", "constant", {"sgd.lr": 0.1})
    for split, metrics in ((load_dataset("wine", {}, seed=1), ("val_accuracy", "val_loss")),
                           (load_dataset("diabetes", {}, seed=1), ("val_r2", "val_loss"))):
        assert isinstance(split, DataSplit)
        if split.info.kind == "classification":
            counts = torch.bincount(split.y_train, minlength=split.info.n_classes).double()
            out = ((counts + 1) / (counts.sum() + len(counts))).log().float()[None, :]
        else:
            out = split.y_train.mean().reshape(1, 1)
        got = Trainer(Constant(out), split, sgd, TrainingSpec(), metrics[0],
                      torch.device("cpu")).evaluate()
        for m in metrics:
            assert no_skill(split, m) == pytest.approx(got[m], rel=1e-4, abs=1e-5), (m, got)
    # A built-in's split: the share of iris's validation set in its training set's top class
    iris = load_dataset("iris", {}, seed=0)
    top = int(np.bincount(iris.y_train.numpy()).argmax())
    assert no_skill(iris, "val_accuracy") == pytest.approx(float(
        (iris.y_val.numpy() == top).mean()))


def test_a_search_on_a_table_with_nothing_to_learn_says_so(data_root: Path) -> None:
    """A team's table whose label is 93% one class and whose columns are noise: every family
    "tied" or "level" at what predicting that class scores, and the answer never said that no
    family had learned anything. It leads with it now, and its one line says it."""
    from tuner.search import run_search
    from tuner.spec import JobSpec

    rng = np.random.default_rng(0)
    pd.DataFrame(rng.standard_normal((300, 4)), columns=list("abcd")).assign(
        label=np.where(rng.random(300) < 0.93, "ok", "fraud")).to_csv(
        data_root / "fraud.csv", index=False)
    spec = JobSpec.model_validate({
        "task": {"model": {"name": "linear"},
                 "dataset": {"name": "file", "params": {"path": "fraud.csv", "target": "label"}}},
        "space": {"optimizers": ["adam", "sgd"], "schedules": ["constant"]},
        "training": {"epochs": 3}, "budget": {"n_trials": 4},
        "search": {"confirm_top_k": 0}})
    answer = run_search(spec).summary()["answer"]
    ns = answer["no_skill"]
    assert ns["predicts"] == "the training set's most common class" and ns["value"] > 0.85
    assert ns["verdict"] == "no_better", (ns, answer["ranking"])
    assert answer["summary"].startswith(ns["clause"]) and ns["clause"].endswith(
        "no family is shown to have learned anything from the inputs")
    assert f"no better than predicting the most common class ({ns['value']:.4g})" in \
        answer["in_short"]


def test_missing_values_in_a_file_are_named_by_column_and_row(data_root: Path) -> None:
    """A gap in a feature said "features contain NaN or inf", naming neither the column nor the
    row; a gap in a text target failed inside NumPy (comparing str and float), and one in a
    numeric target trained on NaN (every trial diverged). Each is refused saying where."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"f1": rng.standard_normal(40), "f2": rng.standard_normal(40),
                       "label": rng.choice(["yes", "no"], 40)})
    gaps = df.copy()
    gaps.loc[[4, 9], "f2"] = np.nan
    gaps.loc[7, "f1"] = np.inf
    gaps.to_csv(data_root / "gaps.csv", index=False)
    gaps.to_parquet(data_root / "gaps.parquet")
    for path in ("gaps.csv", "gaps.parquet"):
        with pytest.raises(DataError, match=re.escape(
                f"task.dataset: {path} has missing or infinite values in 'f1' (1 row), 'f2' "
                f"(2 rows); the first is data row 5, not counting a header. The service does "
                f"not fill them in: fill them, drop those rows, or leave the columns out with "
                f'params.drop: ["f1", "f2"]')):
            load_dataset("file", {"path": path}, seed=0)
    # Leaving out every feature left a model of no inputs (input_shape (0,)), trained anyway.
    with pytest.raises(DataError, match=re.escape(
            "task.dataset: gaps.csv has no feature left: its columns are the target 'label' "
            'and params.drop ["f1", "f2"]')):
        load_dataset("file", {"path": "gaps.csv", "drop": ["f1", "f2"]}, seed=0)
    # A spreadsheet's export in a locale with decimal commas (';' between columns, a BOM): one
    # column named 'f1;f2;label', said as "no feature left: its columns are the target".
    df.to_csv(data_root / "eu.csv", sep=";", decimal=",", index=False, encoding="utf-8-sig")
    df.to_csv(data_root / "tabs.csv", sep="\t", index=False)
    for path, name in (("eu.csv", "semicolons"), ("tabs.csv", "tabs")):
        header = "f1;f2;label" if name == "semicolons" else "f1\tf2\tlabel"
        with pytest.raises(DataError, match=re.escape(
                f"task.dataset: {path} reads as one column, {header!r}: the service reads "
                f"comma-separated values, and this file looks separated by {name}; save it "
                f"with commas (and '.' as the decimal point) or as .parquet")):
            load_dataset("file", {"path": path}, seed=0)
    # A row index saved with the data (pandas' to_csv without index=False): a column with no
    # name, 'Unnamed: 0', was trained on as a feature; on a file sorted by its target it gives
    # the answer away. Refused by name; left out with params.drop, the file loads.
    df.sort_values("label").to_csv(data_root / "indexed.csv")
    with pytest.raises(DataError, match=re.escape(
            "task.dataset: indexed.csv has a column with no name in its header ('Unnamed: 0'), "
            "most often a row index saved with the data (pandas: to_csv(index=False) leaves it "
            'out): give it a name to train on it, or leave it out with params.drop: '
            '["Unnamed: 0"]')):
        load_dataset("file", {"path": "indexed.csv"}, seed=0)
    kept = load_dataset("file", {"path": "indexed.csv", "drop": ["Unnamed: 0"]}, seed=0)
    assert kept.info.input_shape == (2,)
    np.savez(data_root / "empty.npz", X=np.zeros((40, 0)), y=np.arange(40) % 2)
    with pytest.raises(DataError, match=re.escape("need at least 4 examples with features, "
                                                  "got (40, 0)")):
        load_dataset("file", {"path": "empty.npz"}, seed=0)
    no_label = df.copy()
    no_label.loc[[3, 30], "label"] = None
    no_label.to_csv(data_root / "no_label.csv", index=False)
    no_value = df.assign(label=rng.standard_normal(40))
    no_value.loc[12, "label"] = np.nan
    no_value.to_csv(data_root / "no_value.csv", index=False)
    for path, rows, first in (("no_label.csv", "2 rows", 4), ("no_value.csv", "1 row", 13)):
        with pytest.raises(DataError, match=re.escape(
                f"task.dataset: {path} has no value of the target 'label' in {rows} (the first "
                f"is data row {first}, not counting a header); the service does not fill them "
                f"in: drop those rows")):
            load_dataset("file", {"path": path}, seed=0)
    np.savez(data_root / "gaps.npz", X=gaps[["f1", "f2"]].to_numpy(), y=(df["label"] == "yes"))
    with pytest.raises(DataError, match=re.escape(
            "task.dataset: the features hold NaN or infinite values in 3 examples (the first at "
            "index 4); the service does not fill them in")):
        load_dataset("file", {"path": "gaps.npz"}, seed=0)


def test_a_file_column_that_is_not_numbers_is_named_not_left_out(data_root: Path) -> None:
    """Every column but the target is a feature: one that is not numbers (text) was left out
    without a word (the model saw less than the file holds); it is refused by name, and
    `params.drop` leaves out what the team chooses. A true/false column is numbers (0, 1). A
    target forced to classes that leaves fewer than 2 examples a class is refused too (a
    column of measurements read as 200 classes trained to 0 accuracy)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 2)).astype(np.float32)
    df = pd.DataFrame(X, columns=["f1", "f2"]).assign(
        color=rng.choice(["red", "blue"], 60), seen=X[:, 0] > 0, label=(X[:, 1] > 0).astype(int))
    df.to_csv(data_root / "mixed.csv", index=False)
    df.to_parquet(data_root / "mixed.parquet")
    for path in ("mixed.csv", "mixed.parquet"):
        with pytest.raises(DataError, match=re.escape(
                f"task.dataset: {path} has columns that are not numbers ('color'); the model "
                f"reads numbers only: encode them, or leave them out with "
                f'params.drop: ["color"]')):
            load_dataset("file", {"path": path}, seed=0)
        kept = load_dataset("file", {"path": path, "drop": ["color"]}, seed=0)
        assert kept.info.input_shape == (3,)  # f1, f2 and seen (as 0 / 1)
    for drop, why in ((["colour"], "'colour' is not a column of the file"),
                      (["label"], "'label' is the target")):
        with pytest.raises(DataError, match=re.escape(
                f"task.dataset.params.drop: {why}; valid choices: f1, f2, color, seen")):
            load_dataset("file", {"path": "mixed.csv", "drop": drop}, seed=0)
    np.savez(data_root / "a.npz", X=X, y=df["label"].to_numpy())
    with pytest.raises(DataError, match=re.escape("params.drop: names columns of a .csv or")):
        load_dataset("file", {"path": "a.npz", "drop": ["f1"]}, seed=0)
    with pytest.raises(DataError, match=re.escape(
            "task.dataset: 60 classes for 60 examples, fewer than 2 each")):
        load_dataset("file", {"path": "mixed.csv", "target": "f1", "task": "classification",
                              "drop": ["color"]}, seed=0)


def test_file_dataset_refuses_paths_outside_root(data_root: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.csv").write_text("a,b\n1,2\n")
    for bad in ("../secret.csv", str(tmp_path / "secret.csv")):
        with pytest.raises(DataError, match="outside the data root"):
            load_dataset("file", {"path": bad}, seed=0)
    with pytest.raises(DataError, match="no such file"):
        load_dataset("file", {"path": "missing.csv"}, seed=0)
    (data_root / "x.txt").write_text("hi")
    with pytest.raises(DataError, match=r"valid choices: \.csv, \.npz, \.parquet"):
        load_dataset("file", {"path": "x.txt"}, seed=0)


def test_data_digest_is_the_bytes_not_the_name_or_the_time(data_root: Path) -> None:
    """What makes team data a task: a file's or a folder's bytes (a folder's file names too),
    never where it lies or when it was written; built-in data has none."""
    import hashlib
    import os

    (data_root / "a.csv").write_text("f,label\n1,0\n2,1\n")
    (data_root / "b.csv").write_text("f,label\n1,0\n2,1\n")
    first = data_digest("file", {"path": "a.csv"}, None)
    assert first is not None and first == data_digest("file", {"path": "b.csv"}, None)
    assert first == hashlib.sha256((data_root / "a.csv").read_bytes()).hexdigest()[:16]
    os.utime(data_root / "a.csv", ns=(1, 1))
    assert data_digest("file", {"path": "a.csv"}, None) == first
    (data_root / "a.csv").write_text("f,label\n1,1\n2,1\n")  # one label, same size
    assert data_digest("file", {"path": "a.csv"}, None) != first
    assert data_digest("iris", {}, None) is None
    img = data_root / "imgs"
    (img / "cat").mkdir(parents=True)
    (img / "cat" / "1.png").write_bytes(b"\x89PNG one")
    folder = data_digest("imagefolder", {"path": "imgs"}, None)
    (img / "cat" / "1.png").write_bytes(b"\x89PNG two")
    changed = data_digest("imagefolder", {"path": "imgs"}, None)
    (img / "cat" / "1.png").rename(img / "cat" / "2.png")
    renamed = data_digest("imagefolder", {"path": "imgs"}, None)
    assert len({folder, changed, renamed}) == 3 and None not in {folder, changed, renamed}
    # A file three levels down (an hf: folder of shards), rewritten while this process holds
    # the folder's digest in its cache: the cache key sees it.
    deep = data_root / "deep" / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "shard.bin").write_bytes(b"one")
    before = data_digest("hf:deep", {}, None)
    (deep / "shard.bin").write_bytes(b"two")
    assert data_digest("hf:deep", {}, None) != before


def test_team_data_is_read_once_for_every_process_and_then_only_what_changed(
        data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each file's SHA-256 is kept in the service's cache by its size and modification time:
    another process (a dispatcher, each worker) digests the folder without reading it, and a
    file added or rewritten is the only one read again. The digest is the one the earlier
    releases computed (tasks already stored keep theirs)."""
    import hashlib
    import os

    from tuner import digests

    folder = data_root / "shards"
    for name in ("a/b", "a-c", "a b", "z"):  # names whose string and part orders differ
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(name.encode() * 100)

    def old() -> str:  # the earlier releases' folder digest, as they computed it
        h = hashlib.sha256()
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            h.update(f.relative_to(folder).as_posix().encode() + b"\0"
                     + hashlib.sha256(f.read_bytes()).digest())
        return h.hexdigest()[:16]

    reads: list[str] = []
    real = hashlib.file_digest

    def counting(fh: Any, algo: str) -> Any:
        reads.append(Path(fh.name).name)
        return real(fh, algo)

    monkeypatch.setattr(hashlib, "file_digest", counting)
    first = data_digest("hf:shards", {}, None)
    assert first == old() and len(reads) == 4
    assert data_digest("hf:shards", {}, None) == first and len(reads) == 4  # this process
    digests._DIGESTS.clear()  # another process: the store answers, nothing is read
    assert data_digest("hf:shards", {}, None) == first and len(reads) == 4
    (folder / "new").write_bytes(b"added")
    digests._DIGESTS.clear()
    added = data_digest("hf:shards", {}, None)
    assert added != first and reads[4:] == ["new"]
    (folder / "z").write_bytes(b"Z" * 100)  # the same size, rewritten: read again
    digests._DIGESTS.clear()
    rewritten = data_digest("hf:shards", {}, None)
    assert rewritten not in (first, added) and reads[5:] == ["z"]
    (folder / "new").unlink()
    os.utime(folder / "z", ns=(5, 5))  # another time, the same bytes: read again, same digest
    digests._DIGESTS.clear()
    back = data_digest("hf:shards", {}, None)
    assert reads[6:] == ["z"] and back == old()
    # a store cut short, unreadable or not as written only costs a read
    for bad in ("{not json", '{"z": [1, 2]}', '{"z": "x", "a-c": [100, 1, "zz"]}', "[]"):
        for store in (data_root / ".tuner-cache" / "digests").glob("*.json"):
            store.write_text(bad)
        digests._DIGESTS.clear()
        before = len(reads)
        assert data_digest("hf:shards", {}, None) == back and len(reads) > before
    # the store itself is never part of what it digests (`tuner run` reads the whole root)
    digests._DIGESTS.clear()
    whole = data_digest("imagefolder", {"path": "."}, None)
    digests._DIGESTS.clear()
    assert data_digest("imagefolder", {"path": "."}, None) == whole


def test_tuner_data_digest_prints_what_a_task_holds(data_root: Path) -> None:
    """`tuner data digest PATH`: the digest a task on that file or folder holds, so a team can
    tell whether its copy is the data a task was measured on."""
    import hashlib
    import os
    import subprocess
    import sys

    (data_root / "imgs" / "cat").mkdir(parents=True)
    (data_root / "imgs" / "cat" / "1.png").write_bytes(b"\x89PNG one")
    (data_root / "t.csv").write_text("f,label\n1,0\n")
    tuner = str(Path(sys.executable).parent / "tuner")
    env = {**os.environ, "TUNER_DATA_ROOT": str(data_root)}

    def cli(path: Path) -> str:
        return subprocess.run([tuner, "data", "digest", str(path)], env=env, text=True,
                              capture_output=True, check=True, timeout=120).stdout.strip()

    assert cli(data_root / "imgs") == data_digest("imagefolder", {"path": "imgs"}, None)
    assert cli(data_root / "t.csv") == data_digest("file", {"path": "t.csv"}, None) \
        == hashlib.sha256((data_root / "t.csv").read_bytes()).hexdigest()[:16]


def test_the_cli_prints_text_from_elsewhere_as_it_is(data_root: Path) -> None:
    """What the CLI prints from a team's data, its trials or the service is never read as rich
    markup: a column named `[/x]` stopped `tuner run` with a MarkupError (`closing tag '[/x]'
    ... doesn't match any open tag`), and `list[int]` lost its `[int]`."""
    import os
    import subprocess
    import sys

    (data_root / "t.csv").write_text("a,[/x],list[int],y\n1,u,v,0\n2,w,z,1\n")
    (data_root / "job.yaml").write_text("task: {model: {name: linear}, dataset: {name: file, "
                                        "params: {path: t.csv}}}\n")
    run = subprocess.run([str(Path(sys.executable).parent / "tuner"), "run",
                          str(data_root / "job.yaml"), "--trials", "1", "--epochs", "1"],
                         env={**os.environ, "TUNER_DATA_ROOT": str(data_root)}, text=True,
                         capture_output=True, timeout=300, check=False)
    assert run.returncode == 2, run.stderr
    assert "has columns that are not numbers ('[/x]', 'list[int]'); the model reads numbers " \
           "only: encode them, or leave them out with params.drop: [\"[/x]\", \"list[int]\"]" \
        in " ".join(run.stderr.split()), run.stderr


def test_a_first_read_cut_short_keeps_what_it_hashed(data_root: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A first digest of a large folder (in a submission the client gives up on, a worker
    stopped) keeps what it hashed as it goes: the next try reads only the rest."""
    import hashlib

    from tuner import digests

    folder = data_root / "big"
    folder.mkdir()
    for i in range(6):
        (folder / f"{i}.bin").write_bytes(bytes([i]) * 1000)
    reads: list[str] = []
    real = hashlib.file_digest

    def stops_at_the_fourth(fh: Any, algo: str) -> Any:
        reads.append(Path(fh.name).name)
        if len(reads) == 4:
            raise OSError("cut short")
        return real(fh, algo)

    monkeypatch.setattr(hashlib, "file_digest", stops_at_the_fourth)
    monkeypatch.setattr(digests, "DIGEST_SAVE_EVERY_S", 0.0)
    with pytest.raises(DataError, match=r"task\.dataset: cannot read '3\.bin' in your data "
                                        r"folder \(OSError\)"):
        data_digest("hf:big", {}, None)
    digest = data_digest("hf:big", {}, None)
    assert reads == ["0.bin", "1.bin", "2.bin", "3.bin", "3.bin", "4.bin", "5.bin"]
    digests._DIGESTS.clear()
    monkeypatch.setattr(hashlib, "file_digest", real)
    (digests._store_file(folder)).unlink()
    assert data_digest("hf:big", {}, None) == digest  # the same as read in one go


def _gated(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[str]]:
    """SHA-256 reads that wait for the test's go (a slow disk under a large folder), and the
    names of the files read."""
    import hashlib
    import threading

    gate, reads, real = threading.Event(), [], hashlib.file_digest

    def slow(fh: Any, algo: str) -> Any:
        reads.append(Path(fh.name).name)
        assert gate.wait(30), "the test never let the read go on"
        return real(fh, algo)

    monkeypatch.setattr(hashlib, "file_digest", slow)
    return gate, reads


def test_a_first_read_longer_than_the_wait_goes_on_in_the_background(
        data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A submission waits for a new folder's digest at most `waiting_at_most`: then it says how
    far the read got, and the read goes on; the same submission again finds it further on or
    done, never starts a second read, and gets the digest a read in one go gives."""
    import time

    from tuner import digests
    from tuner.digests import DataPending, waiting_at_most

    folder = data_root / "big"
    folder.mkdir()
    for i in range(4):
        (folder / f"{i}.bin").write_bytes(bytes([i]) * 1500)
    gate, reads = _gated(monkeypatch)
    with waiting_at_most(0.05):
        with pytest.raises(DataPending) as first:
            data_digest("hf:big", {}, None)
        assert first.value.progress() == {"field": "task.dataset", "stage": "reading",
                                          "read_bytes": 0, "total_bytes": 6000,
                                          "elsewhere": False, "seconds": 0.0}
        assert str(first.value).startswith(
            "task.dataset: still reading your data to identify it (0 B of 6.0 KB read, 0%); "
            "nothing is created until it is done: send the same submission again")
        with pytest.raises(DataPending):
            data_digest("hf:big", {}, None)  # the same read, not a second one
        deadline = time.monotonic() + 30
        while not reads and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reads == ["0.bin"]
        gate.set()
        while True:
            try:
                found = data_digest("hf:big", {}, None)
                break
            except DataPending as pending:
                assert time.monotonic() < deadline and pending.done_bytes <= 6000
    assert reads == ["0.bin", "1.bin", "2.bin", "3.bin"]  # each file once
    assert not digests._RUNS
    digests._DIGESTS.clear()
    digests._store_file(folder).unlink()
    assert data_digest("hf:big", {}, None) == found  # as read in one go, without waiting


def test_one_process_reads_a_folder_at_a_time(data_root: Path) -> None:
    """While another process reads a folder (it holds the folder's lock file), a submission
    says so, and waits for it rather than read the same bytes at the same time."""
    import fcntl
    import os

    from tuner import digests
    from tuner.digests import DataPending, waiting_at_most

    folder = data_root / "shared-read"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"a" * 100)
    lock = digests._store_file(folder).with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # the other process's read
    try:
        with waiting_at_most(0.2), pytest.raises(DataPending,
                                                 match="another process of the service is "
                                                       "reading it") as pending:
            data_digest("hf:shared-read", {}, None)
        assert pending.value.elsewhere
    finally:
        os.close(fd)
    with waiting_at_most(30):
        assert data_digest("hf:shared-read", {}, None) == digests.path_digest(folder)


@pytest.mark.parametrize("name", ["linear", "mlp", "cnn", "transformer"])
def test_models_run_forward_on_digits(name: str) -> None:
    d = load_dataset("digits", {}, seed=0)
    model = build_model(name, {}, d.info)
    assert model(d.X_val[:5]).shape == (5, 10)


def test_a_plugins_code_is_part_of_its_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    """A task on a team's plugin holds the digest of its code (its distribution's release and
    the source file of its factory's module): an edited file or a new release is another
    task, and a machine with other code refuses to run the job's trials. A standard reference
    holds its library's release; the service's own models and datasets have none."""
    from tuner.errors import ModelError
    from tuner.registry import Entry, check_code
    from tuner.spec import JobSpec, TaskSpec
    from tuner.tasks import inspect_task

    plugin = JobSpec.model_validate({"task": {"model": {"name": "tiny_mlp"},
                                              "dataset": {"name": "moons"}}})
    f = inspect_task(plugin)
    assert f.code_digest is not None and f.code_digest == plugin.task.code_digest()
    assert f.fingerprint == plugin.task.fingerprint(f.kind, code_digest=f.code_digest)
    assert f.fingerprint != plugin.task.fingerprint(f.kind)
    builtin = JobSpec.model_validate({"task": {"model": {"name": "mlp"},
                                               "dataset": {"name": "iris"}}})
    assert inspect_task(builtin).code_digest is None
    # A standard reference is its library's release: torchvision for torchvision models.
    vision = MODELS.code_digest("torchvision:resnet18")
    assert vision is not None and vision == MODELS.code_digest("torchvision:vit_b_16")
    assert vision != DATASETS.code_digest("hf:some/dataset") != MODELS.code_digest("hf:org/m")
    with monkeypatch.context() as m:
        m.setattr("tuner.registry._version", lambda dist: "0.0.1")  # another release
        assert MODELS.code_digest("torchvision:resnet18") != vision
    # An edit to the factory's module, and a new release, are other code.
    (tmp_path / "team_models.py").write_text("def net(info):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = Entry("net", "team_models:net", source="team-models", version="1.0")
    first = entry.code_digest()
    (tmp_path / "team_models.py").write_text("def net(info):\n    return 1\n")
    edited = entry.code_digest()
    released = Entry("net", "team_models:net", source="team-models", version="1.1").code_digest()
    assert len({first, edited, released}) == 3
    monkeypatch.setitem(MODELS._discover(), "net", entry)
    task = TaskSpec.model_validate({"model": {"name": "net"}, "dataset": {"name": "iris"}})
    assert task.code_digest() is not None
    check_code(task, task.code_digest())
    with pytest.raises(ModelError, match=r"plugin code on this machine .* is not the code the "
                                         r"job was submitted with"):
        check_code(task, first)


def test_transformer_reads_tabular_as_tokens_and_cnn_refuses() -> None:
    info = DataInfo((13,), 3, "classification", 3, 100, 20)
    assert build_model("transformer", {}, info)(torch.randn(2, 13)).shape == (2, 3)
    with pytest.raises(ModelError, match=r"cnn needs image-shaped input \(C, H, W\)"):
        build_model("cnn", {}, info)
    with pytest.raises(ModelError, match=r"task.model.params.width: mlp has no parameter "
                                         r"'width'; its parameters: hidden, dropout, activation"):
        build_model("mlp", {"width": 3}, info)


@pytest.mark.parametrize(("params", "said"), [
    # Each was accepted until 2026-12-06 and trained another model than asked: "64" as the
    # layers 6 and 4, {} as no hidden layer, 64.7 as 64 (and another task than 64), true as
    # a width of 1, 0 as a layer of no units, a negative dropout as none.
    ({"hidden": "64"}, "hidden: should be a list, got '64'"),
    ({"hidden": {}}, "hidden: should be a list, got {}"),
    ({"hidden": [64.7]}, "hidden.0: should be a valid integer, got 64.7"),
    ({"hidden": [True]}, "hidden.0: should be a valid integer, got True"),
    ({"hidden": [32, 0]}, "hidden.1: should be greater than or equal to 1, got 0"),
    ({"dropout": -0.5}, "dropout: should be greater than or equal to 0, got -0.5"),
    ({"dropout": "0.5"}, "dropout: should be a valid number, got '0.5'"),
])
def test_a_builtin_models_params_are_checked_against_its_signature(
        params: dict[str, Any], said: str) -> None:
    info = DataInfo((13,), 3, "classification", 3, 100, 20)
    with pytest.raises(ModelError, match=re.escape(f"task.model.params.{said}")):
        build_model("mlp", params, info)
    with pytest.raises(ModelError, match=re.escape("task.model.params.kernel_size: should be a "
                                                   "valid integer, got 2.5")):
        build_model("cnn", {"kernel_size": 2.5}, DataInfo((1, 8, 8), 10, "classification",
                                                          10, 100, 20))
    # What they mean, written as such, builds; so does a plugin's model, unchecked here.
    build_model("mlp", {"hidden": [64], "dropout": 0.5}, info)
    build_model("mlp", {"hidden": (64, 32), "dropout": 0}, info)


def test_a_builtin_datasets_params_are_checked_against_its_signature() -> None:
    with pytest.raises(DataError, match=re.escape(
            "task.dataset.params.n_samples: should be a valid integer, got '300'")):
        load_dataset("classification", {"n_samples": "300"}, seed=0)
    with pytest.raises(DataError, match=re.escape(
            "task.dataset.params.n_classes: should be greater than or equal to 2, got 1")):
        load_dataset("classification", {"n_classes": 1}, seed=0)
    with pytest.raises(DataError, match=re.escape(
            "task.dataset.params.noise: classification has no parameter 'noise'; its "
            "parameters: n_samples, n_features, n_informative, n_classes")):
        load_dataset("classification", {"noise": 1.0}, seed=0)
    assert load_dataset("classification", {"n_samples": 300, "n_classes": 2},
                        seed=0).info.n_classes == 2


def test_plugin_entry_points_are_registered() -> None:
    assert MODELS.entries()["tiny_mlp"].source == "tuner-example-plugin"
    assert "moons" in DATASETS.names()
    d = load_dataset("moons", {"n_samples": 200}, seed=1)
    assert d.info.n_classes == 2 and d.info.input_shape == (2,)
    model = build_model("tiny_mlp", {"width": 8}, d.info)
    assert model(d.X_val).shape == (d.X_val.shape[0], 2)


def test_a_trial_reruns_only_on_the_data_its_job_read(data_root: Path) -> None:
    """`tuner rerun` on a team file: the copy here must be the bytes the job's task was made
    from (its digest); a changed copy is refused before any training, saying so."""
    from tuner.datasets import data_digest
    from tuner.errors import DataError
    from tuner.objective import Provenance
    from tuner.search import prepare_rerun
    from tuner.space import TrialConfig
    from tuner.spec import JobSpec

    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 3))
    pd.DataFrame(X, columns=["a", "b", "c"]).assign(y=(X[:, 0] > 0).astype(int)).to_csv(
        data_root / "t.csv", index=False)
    params = {"path": "t.csv", "target": "y"}
    digest = data_digest("file", params, None)
    spec = JobSpec.model_validate({"task": {"model": {"name": "linear"},
                                            "dataset": {"name": "file", "params": params}},
                                   "training": {"epochs": 2}})
    config = TrialConfig("adam", "constant", {"adam.lr": 0.01})
    rec = prepare_rerun(spec, config, 7, Provenance(data_digest=digest)).run()
    assert rec.state == "complete" and rec.seed == 7 and len(rec.steps) == 2
    with (data_root / "t.csv").open("a") as f:
        f.write("0.1,0.2,0.3,1\n")
    with pytest.raises(DataError, match=r"^task\.dataset: the data here is not what the job "
                                        rf"trained on \(digest {digest}, here [0-9a-f]+\): rerun it "
                                        r"with a copy of the files the job read$"):
        prepare_rerun(spec, config, 7, Provenance(data_digest=digest))
