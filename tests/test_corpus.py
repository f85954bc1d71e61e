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


def test_a_transfer_from_the_corpus_says_where_its_source_learned_nothing() -> None:
    """linear-quadratic-c1e4 (8 epochs): every family ends at a worse loss than predicting the
    mean. A new team's answer drawn from it said nothing of that (the corpus kept no value to
    compare with); each corpus task now carries it (`tuner corpus annotate`)."""
    from tuner.datasets import load_dataset, no_skill
    from tuner.recommend import in_short
    from tuner.recommendations import corpus_answer

    c = reference.load()
    assert c is not None and all(t.no_skill is not None for t in c.tasks)
    verdicts = {t.id: t.ranking()["no_skill"]["verdict"] for t in c.tasks}
    assert [k for k, v in verdicts.items() if v != "above"] == ["linear-quadratic-c1e4"]
    blind = c.get("linear-quadratic-c1e4")
    assert verdicts[blind.id] == "no_better"
    # the value kept is what the data gives (the split of the task's training.seed)
    data = load_dataset("quadratic", blind.spec["task"]["dataset"]["params"],
                        blind.spec.get("training", {}).get("seed", 0))
    assert blind.no_skill == pytest.approx(no_skill(data, blind.metric), rel=1e-12)
    near = c.get("linear-quadratic-c10")
    rec = corpus_answer(near.profile(), near.metric, c)
    assert rec is not None and rec["similar_tasks"][0]["corpus_task"] == blind.id
    assert ("on linear-quadratic-c1e4 no family did better than a model that ignores its "
            "inputs, so its order says little of which optimizer learns") in rec["summary"]
    assert rec["learned_nothing_on"] == [blind.id]
    assert in_short(rec).endswith(f"; on 1 of its {len(rec['similar_tasks'])} similar tasks no "
                                  f"family beat a model that ignores its inputs"), in_short(rec)
    # a transfer whose sources all learned something says nothing of it
    clear = c.get("linear-iris")
    assert "ignores its inputs" not in (corpus_answer(clear.profile(), clear.metric, c)
                                        or {}).get("summary", "")


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
    assert raw["tasks"][0]["no_skill"] == pytest.approx(1 / 3)  # the most common class: 10/30
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
    assert "0.3333 (above)" in shown.stdout  # the no-skill column
    # An older file without the value is brought up to date in place, and only once.
    del raw["tasks"][0]["no_skill"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(raw))
    cmd = [sys.executable, "-m", "cli", "corpus", "annotate", "--file", str(old)]
    filled = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert filled.returncode == 0, filled.stderr
    assert "linear-iris: no skill 0.3333" in filled.stdout and "1 tasks annotated" in filled.stdout
    assert json.loads(old.read_text())["tasks"][0]["no_skill"] == pytest.approx(1 / 3)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0 and "every task already has" in again.stdout
    (tmp_path / "junk.json").write_text('{"format": 9}')
    junk = subprocess.run([*cmd[:-1], str(tmp_path / "junk.json")], capture_output=True,
                          text=True, timeout=120, check=False)
    assert junk.returncode == 2 and "not a reference corpus file" in junk.stderr
    assert (tmp_path / "junk.json").read_text() == '{"format": 9}'
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
