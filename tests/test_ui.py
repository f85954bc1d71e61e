"""The web UI in a real headless Chromium (Debian's chromium + chromedriver, `make browser`):
a job runs through the real service, then the pages are opened with the team's key; the charts
must have rendered with the right number of series, and another team's key must see nothing.
Also: /docs without internet, the figures and exports endpoints, and `tuner plot`."""

from __future__ import annotations

import io
import itertools
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.test_api import Service, service  # noqa: F401  # the real API + dispatcher + Ray
from tuner.client import Client

pytestmark = pytest.mark.usefixtures("ray_session")

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "docs" / "img"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
JOB: dict[str, Any] = {
    "task": {"model": {"name": "mlp", "params": {"hidden": [32]}}, "dataset": {"name": "digits"}},
    "space": {"optimizers": ["adam", "sgd", "momentum", "rmsprop", "adamw"]},
    "training": {"epochs": 5}, "budget": {"n_trials": 12, "parallelism": 2},
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (CHROMIUM and DRIVER):
        pytest.fail("chromium and chromedriver are missing: run `make browser` (the README's "
                    "test command does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--window-size=1400,1000", "--disable-gpu"):
        opts.add_argument(a)
    opts.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=DriverService(DRIVER), options=opts)
    yield driver
    driver.quit()


def _open(driver: Any, url: str, timeout: float = 30.0) -> None:
    driver.get(url)
    deadline = time.monotonic() + timeout
    while driver.execute_script("return document.body && document.body.dataset.ready") != "true":
        assert time.monotonic() < deadline, f"{url} never finished loading"
        time.sleep(0.1)


def _charts(driver: Any) -> dict[str, int]:
    """Chart id -> datasets Chart.js drew (read from the live chart, not from our markup)."""
    return driver.execute_script(
        "const out = {}; for (const c of document.querySelectorAll('canvas')) {"
        " const ch = Chart.getChart(c); if (ch) out[c.id] = ch.data.datasets.length; }"
        " return out;")


def _set_key(driver: Any, base: str, key: str) -> None:
    driver.get(base + "/ui")
    driver.execute_script("sessionStorage.setItem('tuner-api-key', arguments[0])", key)


def test_ui_pages_in_a_real_browser(service: Service, browser: Any) -> None:  # noqa: F811
    client = Client(service.url, service.key_a)
    job = client.submit(JOB)

    # The key form first: nothing is fetched without a key.
    browser.get(service.url + "/ui")
    browser.execute_script("sessionStorage.clear()")
    browser.get(service.url + "/ui")
    assert browser.find_element("id", "key-form").is_displayed()
    browser.find_element("id", "api-key").send_keys(service.key_a)
    browser.find_element("css selector", "#key-form button").click()
    _open(browser, service.url + "/ui")
    # Read in one script: a progress event may replace the row between two WebDriver calls.
    rows = browser.execute_script("return [...document.querySelectorAll('#jobs tr')]"
                                  ".map(r => [r.dataset.job, r.textContent])")
    assert [r[0] for r in rows] == [job["id"]]
    assert browser.find_element("id", "count").text == "1 job"  # it said "1 jobs"
    # the task by its names and parameters, as /ui/tasks names it (a team's CSVs are all `file`)
    assert 'mlp {"hidden":[32]} / digits' in rows[0][1], rows
    assert "completed" not in rows[0][1]  # opened while the job is queued or running
    # The list follows the job's event stream: its row turns completed with no reload.
    deadline = time.monotonic() + 300
    row_text = "return document.querySelector('#jobs tr').textContent"
    while "completed" not in browser.execute_script(row_text):
        assert time.monotonic() < deadline, "the job list never showed the job completed"
        time.sleep(0.5)
    browser.save_screenshot(str(SHOTS / "ui_jobs.png"))
    final = client.job(job["id"])
    assert final["status"] == "completed", final["error"]
    trials = client.trials(job["id"])["data"]
    stopped = sum(t["state"] in ("pruned", "diverged") and any(
        s["value"] is not None for s in t["steps"]) for t in trials)
    task_id = final["task"]["id"]

    _open(browser, f"{service.url}/ui/jobs/{job['id']}")
    # the confirmation race's note with the job's notes, as `tuner status` prints it (the page
    # said nothing of the race, nor of the families it gave a second look)
    assert final["confirmation"]["note"], final["confirmation"]
    assert browser.find_element("id", "confirm-note").text == final["confirmation"]["note"]
    charts = _charts(browser)
    # One best-so-far series; one curve per trial plus one marker series per kind of stop.
    kinds = {t["state"] for t in trials if t["state"] in ("pruned", "diverged")
             and any(s["value"] is not None for s in t["steps"])}
    assert charts == {"best-chart": 1, "curves-chart": len(trials) + len(kinds)}
    curves = browser.find_element("id", "curves-chart")
    assert curves.get_attribute("data-stops") == str(stopped)
    # The legend: each family once, as a line; each kind of stop as its marker (it was an empty
    # box, while the chart draws × and ▲).
    legend = browser.execute_script(
        "const ch = Chart.getChart(document.getElementById('curves-chart'));"
        " return [ch.options.plugins.legend.labels.usePointStyle,"
        " ch.legend.legendItems.map(i => [i.text, i.pointStyle])]")
    assert legend[0] is True
    style = {"pruned": "crossRot", "diverged": "triangle"}
    assert sorted(map(tuple, legend[1])) == sorted(
        [(f, "line") for f in {t["optimizer"] for t in trials}]
        + [(f"{k} (stopped here)", style[k]) for k in kinds]), legend
    families = {r.get_attribute("data-family") for r in
                browser.find_elements("css selector", "#families tr")}
    assert families == {t["optimizer"] for t in trials}
    assert browser.find_element("id", "error").get_attribute("hidden")
    browser.save_screenshot(str(SHOTS / "ui_job.png"))
    # Its trials as a table: every one, with what enqueued it; sorted by a column on a click
    # (the value best first), and back on a second click.
    read_trials = ("return [...document.querySelectorAll('#trials tr')].map(r => "
                   "[...r.children].map(c => c.textContent))")
    shown = browser.execute_script(read_trials)
    assert [r[0] for r in shown] == [f"#{t['number']}" for t in trials]
    for r, t in zip(shown, trials, strict=True):
        assert r[1] == t["optimizer"] and r[4] == str(t["epochs_run"]), (r, t)
        # the learning rate to 4 significant digits, as `tuner recommend` prints it (it was 4
        # fixed decimals: 0.00263 showed as 0.0026)
        lr = next((v for k, v in t["params"].items() if k.endswith(".lr")), None)
        assert r[6] == ("-" if lr is None else
                        browser.execute_script("return fmtParam(arguments[0])", lr)), (r, t)
        assert r[8] == (f"confirms #{t['confirm_of']}" if t["confirm_of"] is not None else
                        "defaults sweep" if t["defaults_sweep"] else "sampler"), (r, t)
        assert r[3] == ("complete" if t["state"] == "complete" else
                        f"{t['state']} at epoch {t['stop_step']}" if t["stop_step"] else
                        f"{t['state']} before its first epoch"), (r, t)
    assert any(r[8].startswith("confirms #") for r in shown)  # the race ran
    browser.find_element("css selector", "#trials-table th[data-key='value']").click()
    by_value = browser.execute_script(read_trials)
    best = max(t["value"] for t in trials if t["value"] is not None)
    assert by_value[0][5] == browser.execute_script(f"return fmt({best})"), by_value[:3]
    assert by_value[-1][5] == "-" or all(t["value"] is not None for t in trials)
    browser.find_element("css selector", "#trials-table th[data-key='value']").click()
    assert browser.execute_script(read_trials)[0][5] != by_value[0][5] or len(
        {t["value"] for t in trials}) == 1

    # A second job on the task, unpruned, its sweep over every family: the task page then
    # ranks all five from the team's history (the small first job leaves most of them pruned).
    second = client.submit({**JOB, "search": {"pruner": "none", "sweep_share": 1.0,
                                              "baseline": True},
                            "budget": {"n_trials": 8, "parallelism": 2}})
    assert client.wait(second["id"])["status"] == "completed"
    # Its first trial is the baseline's run, and the trials say so.
    from tuner.space import is_baseline

    marked = [t for t in client.trials(second["id"])["data"] if t["baseline"]]
    assert [t["number"] for t in marked] == [0], marked
    assert is_baseline(marked[0]["optimizer"], marked[0]["schedule"], marked[0]["params"])
    # Its job page draws the baseline's curve dotted (it was an adamw line like any other)
    _open(browser, f"{service.url}/ui/jobs/{second['id']}")
    dashes = browser.execute_script(
        "return Chart.getChart(document.getElementById('curves-chart')).data.datasets"
        ".filter((d) => d.family).map((d) => [d.label, d.borderDash])")
    assert [d for _, d in dashes if _.startswith("#0 ")] == [[1, 3]], dashes
    assert all(d != [1, 3] for _, d in dashes if not _.startswith("#0 ")), dashes
    # ... and its best run per family names the baseline's run where it is adamw's best
    cells = browser.execute_script("return [...document.querySelectorAll('#families tr')].map("
                                   "(r) => [r.dataset.family, r.children[2].textContent])")
    for _, cell in cells:
        assert cell.endswith("(the untuned baseline)") == (cell.split()[0] == "#0"), cells
    # The learning curves zoom to the trials run to the end, and back: on mlp/breast_cancer
    # the curves that decide the answer lay in 0.93-0.98 of an axis from 0.2 that trials
    # pruned after one epoch set. (Drawn from a figure of such a job.)
    def curve(n: int, state: str, ys: list[float]) -> dict[str, Any]:
        return {"number": n, "optimizer": "adam", "state": state, "color": "#c00",
                "points": [[i + 1, y] for i, y in enumerate(ys)], "baseline": False,
                "confirmation": False, "stop": [len(ys), ys[-1]] if state == "pruned" else None}

    fig = {"metric": "val_accuracy", "y_scale": "linear", "n_trials": 3, "best_so_far": [[1, 0.9]],
           "families": [], "curves": [curve(0, "complete", [0.5, 0.93, 0.96]),
                                      curve(1, "complete", [0.6, 0.95, 0.98]),
                                      curve(2, "pruned", [0.2])]}
    y_range = ("const s = Chart.getChart(document.getElementById('curves-chart')).scales.y; "
               "return [s.min, s.max]")
    browser.execute_script("drawJobFigures(arguments[0])", fig)
    zoom = browser.find_element("id", "curves-zoom")
    assert zoom.is_displayed() and zoom.text == "Zoom to the trials run to the end"
    assert browser.execute_script(y_range)[0] <= 0.2
    zoom.click()
    low, high = browser.execute_script(y_range)
    assert (low, high) == (pytest.approx(0.925), pytest.approx(0.985)), (low, high)
    assert zoom.text == "Show every trial"
    zoom.click()
    assert browser.execute_script(y_range)[0] <= 0.2
    # on a loss's log axis, in decades; none where the complete trials span most of the axis
    loss = {**fig, "y_scale": "log", "curves": [curve(0, "complete", [5.0, 0.02, 0.01]),
                                                curve(1, "pruned", [40.0])]}
    lo, hi = browser.execute_script("const r = zoomRange(arguments[0]); return [r.min, r.max]",
                                    loss)
    assert (lo, hi) == (pytest.approx(0.01 / 10 ** 0.0301, rel=1e-3),  # a tenth of its decades
                        pytest.approx(0.02 * 10 ** 0.0301, rel=1e-3))
    wide = {**fig, "curves": [curve(0, "complete", [0.1, 0.3, 0.9]), curve(1, "pruned", [0.2])]}
    assert browser.execute_script("return zoomRange(arguments[0])", wide) is None
    # ... says the answer at its budget and data split in one line, and links the task page
    # there (it linked the task's default budget and split, which may be another job's)
    from cli.remote import _asked

    asked = _asked(client.job(second["id"]))
    at_job = client.recommend(**asked)
    assert browser.find_element("id", "job-answer").text == (
        "The answer at this job's budget and data split (every job of the task there): "
        + at_job["in_short"])
    link = browser.find_element("id", "task-link").get_attribute("href")
    assert link.split("?", 1)[1] == "&".join(f"{k}={v}" for k, v in asked.items()
                                             if k != "task"), link
    # and the task page answers the budget its query asks (at 99 epochs, a prediction from
    # other budgets and tasks; it answered the default budget whatever the query)
    _open(browser, f"{service.url}/ui/tasks/{task_id}?epochs=99")
    elsewhere = client.recommend(task=task_id, epochs=99)
    assert elsewhere["summary"] != client.recommend(task=task_id)["summary"]
    assert "; ".join(li.text for li in browser.find_elements(
        "css selector", "#verdict li")) == elsewhere["summary"]
    _open(browser, f"{service.url}/ui/tasks/{task_id}")
    rec = client.recommend(task=task_id)
    lrs = client.learning_rates(task_id)
    charts = _charts(browser)
    # the untuned baseline's runs (the second job's) drawn apart from adamw's points, hollow:
    # among them they read as tuned adamw doing worse at lr 1e-3
    assert [p[0] for p in lrs["baseline"]] == [1e-3]
    assert charts == {"ranking-chart": 2, "lr-chart": len(lrs["families"]) + 1}
    assert browser.execute_script(
        "const ds = Chart.getChart(document.getElementById('lr-chart')).data.datasets;"
        "return ds.filter((d) => d.baseline).map((d) => [d.label, d.data.length, d.pointStyle])"
        ) == [["untuned baseline (adamw)", 1, "rectRot"]]
    # ... within the axis (it was set from the families' points: the baseline's lay off it)
    assert browser.execute_script("return Chart.getChart(document.getElementById('lr-chart'))"
                                  ".scales.x.min") < 1e-3
    # every trial is drawn (a family past lrs["per_family"] would be said to be cut; adamw's
    # count holds the baseline's run)
    assert browser.find_element("id", "lr-capped").get_attribute("hidden")
    assert all(len(pts) + (f == "adamw") == lrs["n_trials"][f]
               for f, pts in lrs["families"].items())
    ranked = [r.get_attribute("data-family") for r in
              browser.find_elements("css selector", "#ranking tr")]
    assert ranked == [e["optimizer"] for e in rec["ranking"]]
    # grouped families are "tied" within a measured noise, "level" on the values seen with none
    # measured (`not_separated`: they were "tied" beside a summary saying "not separated")
    word = browser.execute_script("return [tieWord(arguments[0]), tieWord({verdict: "
                                  "'not_separated'}), tieWord({verdict: 'tied'})]", rec)
    assert word[1:] == ["level", "tied"]
    assert browser.find_element("id", "tied-head").text == f"{word[0]} with"
    assert set(ranked) == set(JOB["space"]["optimizers"])
    by_family = {e["optimizer"]: e for e in rec["ranking"]}
    for row in browser.find_elements("css selector", "#ranking tr"):  # barely tuned, said so
        assert ("barely tuned" in row.text) == \
            (row.get_attribute("data-family") in rec["under_tuned"])
        # in the tie only by its interval reaching the best's: not shown to be as good, said so
        assert ("tied only by its interval reaching the best leader's" in row.text) == \
            (row.get_attribute("data-family") in rec["tied_by_width"]), row.text
        # one learning rate tried: no range, said so (not 0.00 decades)
        one = by_family[row.get_attribute("data-family")]["robustness"]["n_learning_rates"] < 2
        assert ("one learning rate ran to the end (no range measured)" in row.text) == one, \
            row.text
        narrow = not one and by_family[row.get_attribute("data-family")]["robustness"][
            "lr_decades"] < 0.005
        assert one or ("one learning rate (others tried did worse)" if narrow else "decades") \
            in row.text, row.text
        # a range no worse trial bounds is as wide as the learning rates tried, at least
        unbounded = not one and not by_family[row.get_attribute("data-family")]["robustness"][
            "bounded"]
        assert ("at least" in row.text and "(every learning rate tried was good)" in row.text) \
            == unbounded, row.text
    # This history may have no leader tied only by its width, so the mark's positive half is
    # checked as well: the page's own row renderer, given this answer with one family marked
    # (and, for the other half, unmarked).
    marked = rec["ranking"][0]["optimizer"]
    for listed in ([marked], []):
        text = browser.execute_script(
            "return rankingRow(arguments[0], arguments[1]).textContent",
            rec["ranking"][0], {**rec, "tied_by_width": listed})
        assert ("; tied only by its interval reaching the best leader's: not shown to be as "
                "good (more runs would tell)" in text) == bool(listed), text
    for bounded in (True, False):  # both halves of the range's mark, whatever this history had
        row = {**rec["ranking"][0], "robustness": {"lr_decades": 0.1, "n_learning_rates": 2,
                                                   "bounded": bounded}}
        text = browser.execute_script("return rankingRow(arguments[0], arguments[1]).textContent",
                                      row, rec)
        assert text.endswith("0.10 decades" if bounded else
                             "at least 0.10 decades (every learning rate tried was good)"), text
    # The tasks list's few words (answerText) say what `brief` says, a scoped winner included
    from tuner.recommend import brief as in_words

    for extra in ({}, {"not_ranked": [{"optimizer": "adam"}]}, {"not_tried": ["nadam"]}):
        winner = {**rec, "verdict": "winner", "leaders": [rec["ranking"][0]["optimizer"]],
                  "not_ranked": [], "not_tried": [], **extra}
        assert browser.execute_script("return answerText(arguments[0])", winner) == \
            in_words(winner)
    for other in ({"method": "prior", "ranking": [{"optimizer": "sgd"}]},
                  {"method": "transfer", "ranking": [{"optimizer": "sgd"}]}):
        assert browser.execute_script("return answerText(arguments[0])", other) == \
            in_words(other)
    # How a family's trials that never completed ended, in the words of `tuner recommend`
    from tuner.recommend import how_ended

    for ev in ({"n_pruned": 2, "n_diverged": 1}, {"n_failed": 3, "n_out_of_memory": 2},
               {"n_failed": 2, "n_interrupted": 1}):
        assert browser.execute_script("return howEnded(arguments[0])", ev) == how_ended(ev)
    # A family stopped early, placed against the best leader's configuration at that epoch
    at = {"optimizer": "adam", "epoch": 1, "low": 0.55, "high": 0.6, "runs": 2}
    assert browser.execute_script(
        "return [atStop(arguments[0]), atStop(arguments[1]), atStop({})]",
        {"leader_at_stop": at, "level_at_stop": True},
        {"leader_at_stop": {**at, "high": 0.55}, "level_at_stop": False}) == [
        "level with or ahead of adam's best configuration at that epoch (0.5500-0.6000): not "
        "shown to be "
        "behind it", "behind adam's best configuration at that epoch (0.5500)", ""]
    one = {**rec["ranking"][0], "evidence": {**rec["ranking"][0]["evidence"], "n_trials": 1,
                                             "n_confirmation_runs": 0, "n_jobs": 1,
                                             "n_baseline_runs": 0, "baseline_only": False,
                                             "n_second_looks": 0}}
    assert browser.execute_script("return rankingRow(arguments[0], arguments[1]).textContent",
                                  one, rec).count("1 trial, 0 confirmation runs, 1 job") == 1
    assert "; the metric's best possible value on every run: this validation set cannot order " \
        "it against the others there" in browser.execute_script(
            "return rankingRow(arguments[0], arguments[1]).textContent", one,
            {**rec, "at_ceiling": [one["optimizer"], "other"]})
    untuned = {**one, "evidence": {**one["evidence"], "baseline_only": True}}
    assert "; its only configuration run to the end is the untuned baseline: its place is that " \
        "of its defaults, not of it tuned" in browser.execute_script(
            "return rankingRow(arguments[0], arguments[1]).textContent", untuned, rec)
    assert "untuned baseline" not in browser.execute_script(
        "return rankingRow(arguments[0], arguments[1]).textContent", one, rec)
    some = {**one, "evidence": {**one["evidence"], "n_trials": 9, "n_baseline_runs": 5}}
    assert "9 trials (5 of the untuned baseline), 0 confirmation runs" in browser.execute_script(
        "return rankingRow(arguments[0], arguments[1]).textContent", some, rec)
    # a second look is a confirmation run of a pruned trial, said so
    looked = {**one, "evidence": {**one["evidence"], "n_confirmation_runs": 1,
                                  "n_second_looks": 1}}
    assert "1 trial, 1 confirmation run (1 a second look at a pruned trial), 1 job" in \
        browser.execute_script("return rankingRow(arguments[0], arguments[1]).textContent",
                               looked, rec)
    assert browser.execute_script(
        "return [barLabel(arguments[0], arguments[2], new Set(['x', arguments[0].optimizer])), "
        "barLabel(arguments[1], arguments[2], new Set()), barLabel(arguments[0], arguments[2], "
        "new Set())]", untuned, one, {**rec, "verdict": "tied"}) == [
        f"{one['optimizer']} (untuned, tied)", one["optimizer"], f"{one['optimizer']} (untuned)"]
    # a measured narrow range of one learning rate is said so (it read "0.00 decades")
    narrow = {**one, "robustness": {**one["robustness"], "n_learning_rates": 3,
                                    "bounded": True, "lr_decades": 0.0}}
    assert browser.execute_script(
        "return rankingRow(arguments[0], arguments[1]).lastChild.textContent", narrow, rec) \
        == "one learning rate (others tried did worse)"
    assert browser.execute_script(
        "return rankingRow(arguments[0], arguments[1]).lastChild.textContent",
        {**narrow, "robustness": {**narrow["robustness"], "lr_decades": 0.31}}, rec) \
        == "0.31 decades"
    barely = {**one, "evidence": {**one["evidence"], "configurations_tried": 1}}
    assert "; barely tuned (1 configuration tried)" in browser.execute_script(
        "return rankingRow(arguments[0], arguments[1]).textContent", barely,
        {**rec, "under_tuned": [one["optimizer"]]})
    # the learning-rate axis labels 1, 2 and 5 of a decade (nine crowded into each other)
    assert browser.execute_script("return [1e-3, 2e-3, 3e-3, 5e-3, 0.8, 1, 2e-5].map(lrTick)") \
        == ["0.001", "0.002", "", "0.005", "", "1", "0.00002"]
    labels = browser.execute_script("return Chart.getChart(document.getElementById('lr-chart'))"
                                    ".scales.x.ticks.map((t) => t.label)")
    leading = {next(c for c in str(s) if c in "123456789") for s in labels if s}
    assert leading and leading <= {"1", "2", "5"}, labels
    # The summary one clause a line (it was one bold paragraph of ten clauses), under the
    # answer in one line, as `tuner recommend` ends
    from tuner.recommend import in_short

    lines = [li.text for li in browser.find_elements("css selector", "#verdict li")]
    assert "; ".join(lines) == rec["summary"] and len(lines) > 1, lines
    assert rec["in_short"] == in_short(rec) and rec["in_short"].startswith(in_words(rec))
    assert browser.find_element("id", "in-short").text == f"In short: {rec['in_short']}"
    assert browser.execute_script("return clauses(arguments[0])", "a (b; c) d; e [f; g]; h") \
        == ["a (b; c) d", "e [f; g]", "h"]
    # ... and against the untuned default, which the second job ran (search.baseline)
    assert rec["baseline"]["verdict"] != "not_run", rec["baseline"]
    assert browser.find_element("id", "baseline").text == \
        f"Against the untuned default: {rec['baseline']['summary']}"
    # ... and against a model that ignores its inputs (predicting digits' most common class)
    assert rec["no_skill"]["verdict"] == "above", rec["no_skill"]
    assert browser.find_element("id", "no-skill").text == \
        f"Against a model that ignores its inputs: {rec['no_skill']['summary']}"
    # ... no notes of a team's loop on a built-in model's answer; an answer about a trainable
    # whose loop never read what its budget sets (`loop_notes`) lists each on a line of its own
    assert not rec.get("loop_notes") and browser.find_elements("css selector", "#loop-notes")
    assert not browser.find_element("id", "loop-notes").is_displayed()
    said = ["digits_loop never read ctx.split_seed in its 4 trials that ran: ...",
            "digits_loop never read ctx.batch_size in its 4 trials that ran: ..."]
    assert browser.execute_script(
        "const u = loopNotes(arguments[0]); return [u.hidden, [...u.children].map("
        "(li) => li.textContent)]", {**rec, "loop_notes": said}) == [False, said]
    # ... and the configuration to train with, which the page never showed
    start, shown_start = rec["start_from"], browser.find_element("id", "start-from").text
    assert shown_start.startswith(f"Start from: {start['optimizer']} with {start['schedule']}, ")
    assert all(f"{k.split('.', 1)[1]}=" in shown_start for k, v in start["params"].items()
               if not k.endswith("_on") or v), (shown_start, start)
    assert shown_start.endswith("(tuner.recipe trains with it)"), shown_start
    # its values as `tuner recommend` prints them: lookahead's k=10.0000 and lr_decay=0.0010
    # (for 0.001002) were fixed decimals
    assert browser.execute_script("return [10, 0.0010022688, 0.70309699, 1.7531e-06, 1.2019e-09, "
                                  "0.001, 'adagrad', true].map(fmtParam)") == [
        "10", "0.001002", "0.7031", "1.753e-6", "1.202e-9", "0.001", "adagrad", "true"]
    # This task ran on one data split: no splits block. (The page's block, given the answer
    # of a task run on three, lists them: test_history's split-0 answer.)
    assert rec["splits"] is None and browser.find_element("id", "splits").get_attribute("hidden")
    splits = {"lead_on_every_split": [], "lead_on_most": {"families": ["adam"], "splits": 2},
              "per_split": [
        {"training_seed": 0, "verdict": "winner", "leaders": ["adam"], "n_complete_trials": 4},
        {"training_seed": 2, "verdict": "tied", "leaders": ["rmsprop", "adam"],
         "n_complete_trials": 4},
        {"training_seed": 1, "verdict": "not_separated", "leaders": ["sgd", "adam"],
         "n_complete_trials": 3}]}
    assert browser.execute_script(
        "const [p, ul] = splitsBlock(arguments[0]).children;"
        "return [p.textContent, ...[...ul.children].map(li => li.textContent)]", splits) == [
        "By data split (each ranked on its own, never pooled): no family leads on every split "
        "(adam on 2 of 3)",
        "training.seed 0 (this answer): winner: adam (4 trials)",
        "training.seed 2: tied: rmsprop, adam (4 trials)",
        "training.seed 1: not separated: sgd, adam (3 trials)"]
    # /ui/tasks shows a winner green, unless another split puts it outside its leaders.
    answer_class = "return answerClass(arguments[0])"
    won = {"verdict": "winner", "leaders": ["adam"]}
    assert browser.execute_script(answer_class, won) == "winner"
    assert browser.execute_script(answer_class, {**won, "splits": splits}) == "split-dependent"
    assert browser.execute_script(answer_class, {**won, "splits": {
        **splits, "lead_on_every_split": ["adam"]}}) == "winner"
    # A transferred answer drawn from the task's own other splits says what its sources are,
    # not "your task 1 ..., similarity 1.00" three times over.
    same = {"task_id": task_id, "model": "mlp", "dataset": "digits", "similarity": 1.0}
    drawn = {"method": "transfer", "from_splits": [0, 1], "similar_tasks": [
        {**same, "budget": {"training_seed": 0}}, {**same, "budget": {"training_seed": 1}}]}
    assert browser.execute_script("return sourceItems(arguments[0])", drawn) == [
        f"this task on training.seed {sd} (another data split at this budget), ranked on its own"
        for sd in (0, 1)]
    assert browser.execute_script("return sourceItems(arguments[0])", {
        **drawn, "from_splits": None})[0] == f"your task {task_id} (mlp / digits), similarity 1.00"
    # Which task this is: its parameters and metric; digits is built in, so no data digest.
    identity = browser.find_element("id", "task-identity").text
    assert identity == (f'task {task_id}: model mlp {{"hidden":[32]}} · dataset digits · '
                        f'metric val_accuracy'), identity
    # What the ranking does not cover is on the page too: families never completed, and those
    # this space never tried (nine of the fourteen here).
    unranked = [r.get_attribute("data-family") for r in
                browser.find_elements("css selector", "#not-ranked tr")]
    assert unranked == [n["optimizer"] for n in rec["not_ranked"]]
    # each with how its trials ended (a diverged one is not one the pruner stopped)
    cells = [r.find_elements("tag name", "td")[1].text for r in
             browser.find_elements("css selector", "#not-ranked tr")]
    assert cells == [f"{n['evidence']['n_trials']} (" + ", ".join(
        f"{n['evidence'][f'n_{end}']} {end}" for end in ("pruned", "diverged", "failed")
        if n["evidence"][f"n_{end}"]) + ")" for n in rec["not_ranked"]], cells
    assert len(rec["not_tried"]) == 9
    assert browser.find_element("id", "not-tried").text.endswith(", ".join(rec["not_tried"]))
    browser.save_screenshot(str(SHOTS / "ui_task.png"))

    # A job whose trials failed says why on its page (the team's loop asks for more memory
    # than there is: each configuration runs twice, then the job's allowance is spent).
    hungry = client.submit({"task": {"trainable": {"name": "memory_hungry"}},
                            "space": {"optimizers": ["adam"]}, "training": {"epochs": 1},
                            "search": {"confirm_top_k": 0}, "budget": {"n_trials": 1}})
    assert client.wait(hungry["id"])["status"] == "failed"
    # Two configurations twice each spend the allowance (tests/test_trainables.py holds the job
    # to that); here the page is held to the job's own record, as once, under load, it ran 5
    # (cause not found: see the 2026-12-06 note).
    n = len([t for t in client.trials(hungry["id"])["data"] if t["state"] == "failed"])
    assert n >= 4
    _open(browser, f"{service.url}/ui/jobs/{hungry['id']}")
    assert browser.find_element("id", "failed-reasons").text == f"{n} failed: {n} out of memory"
    # (failures of the plain kind are said once: "4 failed: 4 failed" said nothing more)
    assert browser.execute_script("return failedText({progress: {failed: 4}, failed_reasons: "
                                  "{failed: 4}})") == "4 failed"
    assert browser.find_element("id", "job-error").text.startswith(
        f"all {n} trials failed: out of memory on cpu: RuntimeError: ")
    # No epoch was reported: no empty axes, but a word saying so.
    assert not browser.find_element("css selector", ".charts").is_displayed()
    assert browser.find_element("id", "no-epochs").text == \
        "No trial reported an epoch: nothing to draw."
    ended = browser.execute_script("return [...document.querySelectorAll('#trials tr')]"
                                   ".map(r => r.children[3].textContent)")
    assert ended == ["out of memory before its first epoch"] * n, ended
    # Its failed trials, one entry per way they failed, the first open with the traceback down
    # to the team's line that asked for the memory, its file under its package's name.
    entries = browser.find_elements("css selector", "#failure-list details")
    assert browser.find_element("id", "failures").is_displayed() and entries
    # (each before its first epoch; the reason in words is the detail's start: not twice)
    said = [re.match(r"(\d+) trials? \(#[\d, #]+\): out of memory on cpu: RuntimeError: ",
                     e.find_element("tag name", "summary").text) for e in entries]
    assert all(said) and sum(int(m[1]) for m in said if m) == n, [e.text for e in entries]
    assert entries[0].get_attribute("open") is not None
    tb = entries[0].find_element("tag name", "pre").text
    assert re.search(r'File "tuner_example_plugin/trainables\.py", line \d+, in memory_hungry\n'
                     r'\s+torch\.empty\(2\*\*48', tb), tb
    assert 'File "/' not in tb and tb.startswith("Traceback (most recent call last):"), tb
    assert f"tuner rerun {hungry['id']} " in entries[0].find_element("css selector", "p.hint").text
    browser.execute_script("document.getElementById('failures').scrollIntoView()")
    browser.save_screenshot(str(SHOTS / "ui_job_failed.png"))
    # Trials failing each their own way (an error naming the trial's lr): the first 20 ways,
    # then where the rest are.
    browser.execute_script(
        "showFailures({data: [...Array(25).keys()].map(i => ({number: i, stop_reason: 'failed',"
        " detail: 'E' + i, epochs_run: 1, traceback: 'T' + i})), count: 25}, 'j1')")
    assert len(browser.find_elements("css selector", "#failure-list details")) == 20
    assert browser.find_element("id", "more-failures").text == \
        "5 more ways these trials failed: tuner trials j1 --state failed --json has every one."

    # The team's tasks, each with the answer its history gives (in the words of `tuner tasks`:
    # tuner.recommend.brief): digits from its own trials, the loop that never fit predicted
    # from similar tasks.
    from tuner.recommend import brief

    hungry_task = client.job(hungry["id"])["task"]["id"]
    _open(browser, f"{service.url}/ui/tasks")
    deadline = time.monotonic() + 30
    read_rows = ("return [...document.querySelectorAll('#tasks tr')].map(r => [r.dataset.task,"
                 " [...r.children].map(c => c.textContent)])")
    rows = browser.execute_script(read_rows)
    while any(cells[5] == "…" for _, cells in rows):
        assert time.monotonic() < deadline, f"the answers never came: {rows}"
        time.sleep(0.2)
        rows = browser.execute_script(read_rows)
    by_task = {int(t): cells for t, cells in rows}
    assert list(by_task) == [hungry_task, task_id]  # the latest job's task first
    digits, never_fit = by_task[task_id], by_task[hungry_task]
    # the model's parameters shown: two tasks of the same names differ in them
    assert digits[:5] == [f"task {task_id}", 'mlp {"hidden":[32]} / digits', "val_accuracy", "2",
                          str(len(trials) + len(client.trials(second["id"])["data"]))], digits
    assert digits[5] == brief(rec), (digits, rec["verdict"])
    # (This task ran on one data split; searched on several, the words say which families lead
    # on every one, as brief does: the page's own words given such an answer.)
    for splits in ({"brief": "on 3 data splits, leading on all: adam"}, None):
        several = {**rec, "splits": splits}
        said = browser.execute_script("return answerText(arguments[0])", several)
        assert said == brief(several) and (said.endswith("leading on all: adam") == bool(splits))
    # ... and of a tie whose leaders are at the metric's ceiling, with one only by overlap
    ceiling = {**rec, "verdict": "tied", "leaders": ["adam", "nadam", "sgd"],
               "tied_by_width": ["sgd"], "at_ceiling": ["adam", "nadam"], "not_ranked": []}
    said = browser.execute_script("return answerText(arguments[0])", ceiling)
    assert said == brief(ceiling) and said.endswith(
        "; 1 only by interval overlap; 2 at the metric's best possible value)"), said
    # ... and of one whose tie leaves families unranked, one of them possibly as good, and of a
    # transfer drawn partly from a task where nothing learned
    stopped = {**ceiling, "at_ceiling": [], "not_ranked": [
        {"optimizer": "rmsprop", "may_lead": True}, {"optimizer": "sgd", "may_lead": False}]}
    said = browser.execute_script("return answerText(arguments[0])", stopped)
    assert said == brief(stopped) and "; 2 more never completed a trial); stopped early yet " \
        "possibly as good: rmsprop" in said, said
    blind_source = {"method": "transfer", "ranking": [{"optimizer": "sgd"}],
                    "learned_nothing_on": ["task 3"], "similar_tasks": [{}, {}]}
    said = browser.execute_script("return answerText(arguments[0])", blind_source)
    assert said == brief(blind_source) and said.endswith(
        "; on 1 of its 2 similar tasks no family beat a model that ignores its inputs"), said
    level = {**ceiling, "verdict": "not_separated", "tied_by_width": []}
    said = browser.execute_script("return answerText(arguments[0])", level)
    assert said == brief(level) and said.startswith(
        "not separated (no noise estimate): adam, nadam, sgd (2 at the metric's best possible "
        "value)"), said
    # ... and of one whose best family is not clear of a model that ignores its inputs
    for verdict, words in (("no_better", "no better than predicting the most common class"),
                           ("not_shown", "not shown to beat predicting the mean")):
        blind = {**rec, "splits": {"brief": "on 2 data splits, leading on all: adam"},
                 "no_skill": {"value": 0.8375528, "verdict": verdict, "predicts":
                              "the training set's " + words.rsplit(" the ", 1)[1]}}
        said = browser.execute_script("return answerText(arguments[0])", blind)
        assert said == brief(blind) and f"; {words} (0.8376); on 2 data splits" in said, said
    # Against the untuned default (the second job ran it), in the words of `tuner tasks`
    from tuner.recommend import against_default

    assert digits[6] == against_default(rec) and digits[6] != "-", (digits, rec["baseline"])
    first = rec["ranking"][0]
    assert digits[7].startswith(f"{first['optimizer']} {first['expected']['value']:.4f} [")
    assert digits[8] == "this task's trials"
    other = client.recommend(task=hungry_task)
    assert other["method"] == "transfer" and never_fit[8] == f"similar tasks ({other['source']})"
    assert never_fit[1] == "trainable:memory_hungry / digits (own pipeline)", never_fit
    assert never_fit[5] == brief(other), (never_fit, other["verdict"], other["summary"])
    assert never_fit[6] == "-"  # a transferred answer measured nothing on the task
    # ... and given answers searched on several splits with the baseline, or without it
    spread = {"optimizer": "adam", "beaten_on": [0, 2], "run_on": [0, 1, 2]}
    for b in ({**rec["baseline"], "verdict": "beaten", "splits": spread},
              {**rec["baseline"], "verdict": "not_run", "splits": None}):
        said = browser.execute_script("return againstText(arguments[0])", {**rec, "baseline": b})
        assert said == against_default({**rec, "baseline": b}), said
    # Two listed tasks of the same names, parameters and metric, whose plugin's code differs:
    # each row names its code digest (the two rows read the same), and a data digest always.
    from tests.test_api import TWIN_TASKS

    names = browser.execute_script(
        "return arguments[0].map((t) => taskRow(t, arguments[0]).children[1].textContent)", TWIN_TASKS)
    assert names == ['trainable:digits_loop {"width":64} / digits (own pipeline) (code ce1c9707)',
                     'trainable:digits_loop {"width":64} / digits (own pipeline) (code 11e1a1cb)',
                     'trainable:digits_loop {"width":48} / digits (own pipeline)',
                     'mlp / digits (own pipeline) (data c771c637)'], names
    assert said == "not run (search.baseline)" and against_default(
        {**rec, "baseline": {"verdict": "beaten", "splits": spread}}) == \
        "beats it on this split; adam beats it on 2 of 3 splits"
    assert browser.find_element("id", "error").get_attribute("hidden")
    browser.save_screenshot(str(SHOTS / "ui_tasks.png"))
    # A page at a time (100 by default, one here): the latest job's task, then a button for more.
    _open(browser, f"{service.url}/ui/tasks?limit=1")
    assert [t for t, _ in browser.execute_script(read_rows)] == [str(hungry_task)]
    assert browser.find_element("id", "count").text == "the 1 with the latest jobs, of 2 tasks"
    more = browser.find_element("id", "more")
    assert more.is_displayed() and more.text == "Show 1 more"
    more.click()
    deadline = time.monotonic() + 30
    while [t for t, _ in browser.execute_script(read_rows)] != [str(hungry_task), str(task_id)]:
        assert time.monotonic() < deadline, browser.execute_script(read_rows)
        time.sleep(0.2)
    assert browser.find_element("id", "count").text == "2 tasks" and not more.is_displayed()

    # Another team's key sees no data: an empty job list, and this job is "not found".
    browser.execute_script("sessionStorage.setItem('tuner-api-key', arguments[0])",
                           service.key_b)
    _open(browser, service.url + "/ui")
    assert browser.find_elements("css selector", "#jobs tr") == []
    _open(browser, service.url + "/ui/tasks")
    assert browser.find_elements("css selector", "#tasks tr") == []
    _open(browser, f"{service.url}/ui/jobs/{job['id']}")
    assert not browser.find_element("id", "error").get_attribute("hidden")
    assert "not found" in browser.find_element("id", "error").text.lower()
    assert _charts(browser) == {}
    _open(browser, f"{service.url}/ui/tasks/{task_id}")
    assert _charts(browser) == {}

    # A refused key brings the key form back.
    browser.execute_script("sessionStorage.setItem('tuner-api-key', 'tk_wrong')")
    browser.get(service.url + "/ui")
    time.sleep(1)
    assert browser.find_element("id", "key-form").is_displayed()

    # /docs renders the API from the bundled Swagger UI (no CDN: this machine has no internet).
    browser.get(service.url + "/docs")
    deadline = time.monotonic() + 30
    while not browser.find_elements("css selector", ".opblock"):
        assert time.monotonic() < deadline, "Swagger UI did not render"
        time.sleep(0.2)
    html = browser.page_source
    assert "cdn.jsdelivr" not in html and "/v1/jobs/{job_id}/figures" in html


def test_a_trial_of_one_epoch_shows_on_the_job_page(tmp_path: Path, browser: Any) -> None:
    """The job page's charts (here `tuner plot`'s offline page, the same script) draw a line of one
    point as a dot: a job of one epoch per trial showed empty charts. Read from Chart.js's own
    resolved elements."""
    from cli.plots import html_page
    from tests.test_figures import _trial
    from tuner.figures import job_figures

    trials = [_trial(0, "adam", [0.5]), _trial(1, "sgd", [0.4, 0.6])]
    for kept, best_radius in ((trials, 0), (trials[:1], 3)):
        page = tmp_path / f"job{len(kept)}.html"
        page.write_text(html_page(job_figures(kept, "val_accuracy", "maximize"), "one epoch"))
        _open(browser, page.as_uri())
        radii = browser.execute_script(
            "return ['best-chart', 'curves-chart'].map((id) => Chart.getChart("
            "document.getElementById(id)).data.datasets.map((d, i) => Chart.getChart("
            "document.getElementById(id)).getDatasetMeta(i).data[0].options.radius));")
        assert radii[0] == [best_radius]
        assert radii[1] == [3, 0][:len(kept)]
    # A loss on a logarithmic value axis (its good trials lay flat on a linear one), an
    # accuracy on a linear one; the task page's charts take the answer's scale the same way.
    axes = "return ['best-chart', 'curves-chart'].map((id) => Chart.getChart(" \
           "document.getElementById(id)).scales.y).map((s) => [s.type, s.options.title.text])"
    assert browser.execute_script(axes) == [["linear", "val_accuracy"]] * 2
    loss = job_figures([_trial(0, "adam", [1.0, 0.1, 0.02])], "val_loss", "minimize")
    page.write_text(html_page(loss, "a loss"))
    _open(browser, page.as_uri())
    assert browser.execute_script(axes) == [["logarithmic", "val_loss (log scale)"]] * 2
    assert browser.execute_script("return [yAxis('log', 'val_loss').type, yAxis(undefined, "
                                  "'val_accuracy').type]") == ["logarithmic", None]
    # Over less than a decade the log axis's labels do not run into each other (Chart.js
    # labelled 0.0051, 0.0052, 0.0053 and 0.0055): none nearer than a tenth of the axis
    page.write_text(html_page(job_figures([_trial(0, "adam", [0.014, 0.0051])], "val_loss",
                                          "minimize"), "a narrow loss"))
    _open(browser, page.as_uri())
    ticks = browser.execute_script(
        "const y = Chart.getChart(document.getElementById('best-chart')).scales.y;"
        "return [y.min, y.max, y.ticks.filter((t) => t.label !== null && t.label !== '')"
        ".map((t) => t.value)]")
    low, high, shown = ticks
    assert len(shown) >= 2, ticks
    gaps = [math.log10(b / a) for a, b in itertools.pairwise(shown)]
    assert min(gaps) >= math.log10(high / low) / 10 - 1e-9, ticks


def test_figures_exports_and_plot(service: Service, tmp_path: Path,  # noqa: F811
                                  browser: Any) -> None:
    client = Client(service.url, service.key_a)
    spec = {**JOB, "budget": {"n_trials": 6, "parallelism": 2}}
    job = client.submit(spec)
    assert client.wait(job["id"])["status"] == "completed"
    trials = client.trials(job["id"])["data"]
    fig = client.figures(job["id"])
    assert [c["number"] for c in fig["curves"]] == [t["number"] for t in trials]
    epochs = sum(sum(s["value"] is not None for s in t["steps"]) for t in trials)
    assert fig["epochs_consumed"] == epochs == fig["best_so_far"][-1][0]
    assert fig["n_trials"] == len(trials)
    bests = [v for _, v in fig["best_so_far"]]  # where it changed (and the last epoch)
    assert bests[:-1] == sorted(set(bests[:-1])) and bests[-1] == max(bests) == max(
        t["value"] for t in trials if t["state"] == "complete")

    # CSV and Parquet: one row per trial, parameters under their public names.
    frame = pd.read_csv(io.BytesIO(client.trials_table(job["id"], "csv")))
    assert list(frame["number"]) == [t["number"] for t in trials]
    assert not any(".one_minus_" in c for c in frame.columns)
    assert {c for c in frame.columns if c.startswith("param.")} == {
        f"param.{k}" for t in trials for k in t["params"]}
    for i, t in enumerate(trials):  # every parameter in its column, under its public name
        for k, v in t["params"].items():
            assert frame[f"param.{k}"][i] == pytest.approx(v), (t["number"], k)
    pq = pd.read_parquet(io.BytesIO(client.trials_table(job["id"], "parquet")))
    assert list(pq["state"]) == [t["state"] for t in trials]
    with service.http(service.key_a) as h:
        r = h.get(f"/v1/jobs/{job['id']}/trials", headers={"Accept": "text/csv"})
        assert r.headers["content-type"].startswith("text/csv") and r.text.startswith("number,")
        assert "traceback" not in r.text.splitlines()[0]  # a row per line
        # one state's trials as a table, as in JSON
        done = pd.read_csv(io.StringIO(h.get(f"/v1/jobs/{job['id']}/trials", params={
            "format": "csv", "state": "complete"}).text))
        assert list(done["number"]) == [t["number"] for t in trials if t["state"] == "complete"]
        bad = h.get(f"/v1/jobs/{job['id']}/trials", params={"format": "xlsx"})
        assert bad.status_code == 422 and "json, csv, parquet" in bad.json()["detail"]
    with service.http(service.key_b) as h:  # another team: not found, in every format
        assert h.get(f"/v1/jobs/{job['id']}/figures").status_code == 404
        assert h.get(f"/v1/jobs/{job['id']}/trials?format=csv").status_code == 404

    env = {**os.environ, "TUNER_URL": service.url, "TUNER_API_KEY": service.key_a}
    tuner = [sys.executable, "-m", "cli"]
    for name in ("job.png", "job.svg", "job.html"):
        out = subprocess.run([*tuner, "plot", job["id"], "--out", str(tmp_path / name)],
                             env=env, capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0, out.stderr
        assert (tmp_path / name).stat().st_size > 5000
    svg = (tmp_path / "job.svg").read_text()
    assert svg.count('id="series-trial-') == sum(bool(c["points"]) for c in fig["curves"])
    bad = subprocess.run([*tuner, "plot", job["id"], "--out", str(tmp_path / "x.txt")], env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and ".png, .svg, .html" in bad.stderr
    # The HTML page draws the same charts offline, with no key.
    _open(browser, (tmp_path / "job.html").as_uri())
    assert _charts(browser)["curves-chart"] >= len(fig["curves"])
    csv = subprocess.run([*tuner, "trials", job["id"], "--csv"], env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert csv.returncode == 0 and len(csv.stdout.strip().splitlines()) == len(trials) + 1


def test_a_job_page_follows_its_job_through_a_restart_of_the_service(
        migrated_url: str, browser: Any) -> None:
    """The job page follows its job's event stream. The service stopped and started again at
    the same address (a deploy) cuts it: the page says it is reconnecting, opens the stream
    again when the service is back, and shows the job's end (here a cancel) with no reload by
    hand."""
    from tests.test_api import free_port
    from tests.test_hostile import serving
    from tests.test_jobs import queue
    from tuner.store.auth import create_api_key, get_or_create_team
    from tuner.store.db import session_factory
    from tuner.store.jobs import set_notes

    job_id = queue(migrated_url, {**JOB, "budget": {"n_trials": 2}}, team="watch")
    with session_factory(migrated_url)() as s:
        key = create_api_key(s, get_or_create_team(s, "watch"))
        s.commit()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # null while the page (re)builds its head, e.g. as it reconnects
    status = "const s = document.querySelector('#job-head .status'); return s && s.textContent"
    with serving(migrated_url, "critical", port=port, poll_s=0.1):
        _set_key(browser, url, key)
        _open(browser, f"{url}/ui/jobs/{job_id}")
        assert browser.execute_script(status) == "queued"  # no dispatcher: it stays queued
        # It says why it waits, and says it again when that changes (a dispatcher started).
        waiting = "const w = document.getElementById('job-waiting'); return w && w.textContent"
        assert browser.execute_script(waiting).startswith(
            "No dispatcher has ever run on this database. Start one (`tuner dispatcher`")
        from tuner.store.dispatchers import dispatcher_seen

        with session_factory(migrated_url)() as s:
            dispatcher_seen(s, "host:1:ui")
        _until(browser, waiting, "1 dispatcher is running, 1 of them free: it is claimed "
               "within seconds.", "the waiting job's page after a dispatcher started")
        notes = "return [...document.querySelectorAll('#job-head .notes li')].map(li => " \
                "li.textContent)"
        assert "planned at submit" in browser.execute_script(notes)[0]
        # The job's start rewrites its notes (the dispatcher orders the sweep): the page's
        # event stream brings them, with nothing else about the job changed.
        with session_factory(migrated_url)() as s:
            set_notes(s, job_id, ["defaults sweep, in this order (settled): adam"])
        deadline = time.monotonic() + 30
        while browser.execute_script(notes) != ["defaults sweep, in this order (settled): adam"]:
            assert time.monotonic() < deadline, "the page never showed the rewritten notes"
            time.sleep(0.2)
    deadline = time.monotonic() + 30
    while "reconnecting" not in browser.find_element("id", "error").text:
        assert time.monotonic() < deadline, "the page never said it lost the service"
        time.sleep(0.2)
    with serving(migrated_url, "critical", port=port, poll_s=0.1):
        assert Client(url, key).cancel(job_id)["status"] == "cancelled"
        deadline = time.monotonic() + 30
        while browser.execute_script(status) != "cancelled":
            assert time.monotonic() < deadline, "the page never showed the job's end"
            time.sleep(0.2)
        _open(browser, f"{url}/ui/jobs/{job_id}")  # the reload the end event made
        assert browser.find_element("id", "error").get_attribute("hidden")
        assert browser.execute_script(waiting) is None  # an ended job waits for nothing


def _until(driver: Any, script: str, want: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (got := driver.execute_script(script)) != want:
        assert time.monotonic() < deadline, f"{what}: the page shows {got!r}, not {want!r}"
        time.sleep(0.2)


def test_a_running_jobs_page_draws_its_trials_as_they_finish(
        migrated_url: str, browser: Any) -> None:
    """The job page of a running job draws its charts, its trials table and its failures again
    as trials finish, and the job's end, without a reload: what the reader set stays (a family
    clicked off in the legend, a column sorted by). Trials are written as the workers write them
    (`record_trial`); no dispatcher runs, so nothing else moves the job."""
    from tests.test_api import free_port
    from tests.test_hostile import serving
    from tests.test_jobs import queue
    from tuner.store.auth import create_api_key, get_or_create_team
    from tuner.store.db import session_factory
    from tuner.store.trials import record_trial
    from tuner.trial import StepRecord, TrialRecord

    job_id = queue(migrated_url, {**JOB, "budget": {"n_trials": 6}}, team="live")
    sessions = session_factory(migrated_url)
    with sessions() as s:
        key = create_api_key(s, get_or_create_team(s, "live"))
        s.commit()

    def finish(number: int, optimizer: str, values: list[float], state: str = "complete",
               traceback: str | None = None) -> None:
        with sessions() as s:
            assert record_trial(s, job_id, TrialRecord(
                number=number, state=state, stop_reason=state, stop_step=len(values),
                optimizer=optimizer, schedule="constant", params={"lr": 0.01 * (number + 1)},
                value=max(values) if values and state != "failed" else None,
                epochs_run=len(values), detail="ValueError: boom" if traceback else "",
                traceback=traceback, steps=[StepRecord(step=i + 1, value=v, best_value=v)
                                            for i, v in enumerate(values)]))

    rows = "return [...document.querySelectorAll('#trials tr')].map(r => r.dataset.trial)"
    curves = ("const ch = Chart.getChart(document.getElementById('curves-chart'));"
              " return ch.data.datasets.map((d, i) => [d.family || d.label,"
              " ch.isDatasetVisible(i)])")
    with serving(migrated_url, "critical", port=free_port(), poll_s=0.1) as url:
        _set_key(browser, url, key)
        _open(browser, f"{url}/ui/jobs/{job_id}")
        assert "No trial has reported an epoch yet: the charts are drawn as trials finish" in \
            browser.find_element("id", "no-epochs").text
        assert browser.execute_script(rows) == []
        browser.execute_script("window.sameLoad = true")
        finish(0, "adam", [0.5, 0.7, 0.8])
        finish(1, "sgd", [0.2, 0.3], state="pruned")
        _until(browser, rows, ["0", "1"], "two trials finished")
        _until(browser, curves, [["adam", True], ["sgd", True], ["pruned (stopped here)", True]],
               "their curves")
        assert not browser.find_elements("id", "no-epochs")
        assert browser.find_element("id", "best-chart").is_displayed()
        # The reader hides adam (its legend entry, as a click does) and sorts by value.
        browser.execute_script(
            "const ch = Chart.getChart(document.getElementById('curves-chart'));"
            " const item = ch.legend.legendItems.find(i => i.text === 'adam');"
            " ch.options.plugins.legend.onClick(null, item, ch.legend);")
        browser.find_element("css selector", "#trials-table th[data-key='value']").click()
        assert browser.execute_script(rows) == ["0", "1"]  # best first
        finish(2, "adam", [0.6, 0.9])
        finish(3, "sgd", [0.4], state="failed", traceback="Traceback ...\nValueError: boom")
        # Every adam trial hidden, the new one too; the table still by value, best first.
        _until(browser, curves, [["adam", False], ["sgd", True], ["adam", False], ["sgd", True],
                                 ["pruned (stopped here)", True]], "the hidden family kept")
        _until(browser, rows, ["2", "0", "1", "3"], "the sort kept")
        _until(browser, "return document.getElementById('failures').hidden", False,
               "the failure shown")
        assert "ValueError: boom" in browser.find_element("id", "failure-list").text
        # The reader closes it; another way of failing comes: both stay closed.
        opened = "return [...document.querySelectorAll('#failure-list details')].map(d => d.open)"
        assert browser.execute_script(opened) == [True]
        browser.execute_script("document.querySelector('#failure-list details').open = false")
        finish(4, "adam", [0.3], state="failed", traceback="Traceback ...\nKeyError: 'x'")
        _until(browser, opened, [False, False], "the failures as the reader left them")
        Client(url, key).cancel(job_id)
        _until(browser, "const s = document.querySelector('#job-head .status');"
                        " return s && s.textContent", "cancelled", "the job's end")
        # ... and, at its end, the answer at its budget and split in one line (read then, not
        # while it runs)
        _until(browser, "const a = document.getElementById('job-answer'); return !!a && "
                        "!a.hidden && a.textContent.includes('adam')", True, "the job's answer")
        assert browser.execute_script("return window.sameLoad") is True  # never reloaded
