"""The shipped reference corpus: what it holds, that it is read-only data, and that
`tuner corpus build` makes a corpus file the service reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tuner import corpus as reference
from tuner.space import FAMILIES


def test_shipped_corpus_covers_the_suite_with_equal_budgets_and_confirmations() -> None:
    c = reference.load()
    assert c is not None and len(c.tasks) == len(reference.SUITE) >= 24
    assert {t.spec["task"]["model"]["name"] for t in c.tasks} == {"linear", "mlp", "cnn",
                                                                   "transformer"}
    for t in c.tasks:
        search = [x for x in t.trials if not x.confirmation]
        families = {x.optimizer for x in search} | set(t.unfinished)
        assert families == set(FAMILIES), t.id  # every family tried on every task
        oracle = t.oracle()
        assert set(oracle) <= {x.optimizer for x in search}
        for fam in oracle:  # each family's best re-run over 3 new seeds (a run that diverged
            # is not a complete trial: 1 of 361 configurations completed only 1 of its 3)
            assert 1 <= sum(x.confirmation and x.optimizer == fam for x in t.trials) <= 3
        r = t.ranking()
        assert r["noise"]["sigma"] is not None and r["verdict"] in ("winner", "tied")
    from dataclasses import FrozenInstanceError

    with pytest.raises(FrozenInstanceError):  # frozen records: nothing in-process edits them
        c.tasks[0].trials[0].value = 0.0  # type: ignore[misc]


def test_corpus_build_writes_a_file_the_service_reads(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "corpus.json"
    proc = subprocess.run([sys.executable, "-m", "cli", "corpus", "build", "--tasks",
                           "linear-iris", "--trials-per-family", "1", "--confirm-seeds", "1",
                           "--processes", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    raw = json.loads(out.read_text())
    assert [t["id"] for t in raw["tasks"]] == ["linear-iris"]
    assert raw["built"]["trials_per_family"] == 1
    # Each family's search begins at its literature defaults (never at the starts learned from
    # the corpus itself), so the build repeats the shipped corpus's first trial of each family.
    shipped = reference.load()
    assert shipped is not None
    firsts = {}
    for t in sorted(shipped.get("linear-iris").trials, key=lambda t: t.number):
        if not t.confirmation:
            firsts.setdefault(t.optimizer, t.config_key)
    built = {r["o"]: r["k"] for r in raw["tasks"][0]["trials"] if not r["c"]}
    assert built and built == {f: firsts[f] for f in built}
    monkeypatch.setenv("TUNER_REFERENCE_CORPUS", str(out))
    c = reference.load()
    assert c is not None and c.tasks[0].name == "linear/iris"
    shown = subprocess.run([sys.executable, "-m", "cli", "corpus", "show"], capture_output=True,
                           text=True, timeout=120, check=False,
                           env={**__import__("os").environ, "TUNER_REFERENCE_CORPUS": str(out)})
    assert shown.returncode == 0 and "linear-iris" in shown.stdout
    bad = subprocess.run([sys.executable, "-m", "cli", "corpus", "build", "--tasks", "nope",
                          "--out", str(tmp_path / "x.json")], capture_output=True, text=True,
                         timeout=120, check=False)
    assert bad.returncode == 2 and "unknown corpus task 'nope'" in bad.stderr


def test_corpus_starts_lists_where_the_sweep_starts_each_family() -> None:
    proc = subprocess.run([sys.executable, "-m", "cli", "corpus", "starts", "--json"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    starts = reference.sweep_starts(reference.load())
    assert [(s["optimizer"], s["schedule"], s["params"]) for s in shown] == [
        (s.optimizer, s.schedule, s.params) for s in starts]
    assert sorted(s["optimizer"] for s in shown) == sorted(FAMILIES)
    table = subprocess.run([sys.executable, "-m", "cli", "corpus", "starts"],
                           capture_output=True, text=True, timeout=120, check=False)
    assert table.returncode == 0 and starts[0].optimizer in table.stdout
    folio = subprocess.run([sys.executable, "-m", "cli", "corpus", "starts", "--kind",
                            "portfolio", "--json"],
                           capture_output=True, text=True, timeout=120, check=False)
    assert folio.returncode == 0, folio.stderr
    chosen = reference.sweep_starts(reference.load(), "portfolio")
    assert [(s["optimizer"], s["cover"]) for s in json.loads(folio.stdout)] == [
        (s.optimizer, s.cover) for s in chosen]
    bad = subprocess.run([sys.executable, "-m", "cli", "corpus", "starts", "--kind", "best"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2
    assert "unknown start kind 'best'; valid choices: corpus, portfolio" in bad.stderr
