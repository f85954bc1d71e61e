"""How the commands print: tables and summaries of jobs, leaderboards and recommendations."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from cli.common import esc, out
from tuner.digests import TASK_DIGESTS, digests_apart


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def ref(r: dict[str, Any]) -> str:
    """A model or dataset with its parameters (`file path="houses.csv" target="price"`): two
    tasks of the same names differ in them, and a team's CSVs are all `file`."""
    return " ".join([r["name"], *(f"{k}={json.dumps(v)}" for k, v in
                                  (r.get("params") or {}).items())])


def digests_shown(task: dict[str, Any], tasks: Sequence[dict[str, Any]]) -> list[str]:
    """A listed task's data digest, and the others in which it differs from another listed task
    of the same names, parameters and metric (`tuner tasks`, as /ui/tasks shows them): two tasks
    of one trainable whose plugin code changed read the same without them."""
    def names(t: dict[str, Any]) -> tuple[str, str, str]:
        return ref(t["model"]), ref(t["dataset"]), t["metric"]

    apart = {label for o in tasks if o["id"] != task["id"] and names(o) == names(task)
             for label, _, _ in digests_apart(o, task)}
    return [f"{label} {(task.get(k) or 'none')[:8]}" for k, label in TASK_DIGESTS
            if (k == "data_digest" and task.get(k)) or (k != "data_digest" and label in apart)]


def task_refs(task: dict[str, Any]) -> tuple[str, str]:
    """A job's task (`model`, `model_params`, ...) as its model and its dataset, each with its
    parameters."""
    return (ref({"name": task["model"], "params": task.get("model_params")}),
            ref({"name": task["dataset"], "params": task.get("dataset_params")}))


def params_brief(params: dict[str, Any]) -> str:
    return " ".join(f"{k.split('.', 1)[-1]}={fmt(v)}" for k, v in params.items()
                    if not k.endswith("_on") or v)


def add_columns(table: Table, cols: Sequence[str], rows: Sequence[Sequence[str]],
                keep: set[str], fold: set[str] | None = None) -> None:
    """Columns that fit a terminal without losing what matters: those in `keep` are never cut
    (an id, a count, an interval with its runs: at least as wide as their widest cell), those in
    `fold` wrap (names), and the rest are cut with an ellipsis first."""
    for i, col in enumerate(cols):
        if col in (fold or set()):
            table.add_column(col, overflow="fold", min_width=min(7, len(col)))
        elif col in keep:
            table.add_column(col, no_wrap=True,
                             min_width=max([len(col), *(len(r[i]) for r in rows)]))
        else:
            table.add_column(col, no_wrap=True, overflow="ellipsis")


def optimizer_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for col in ("optimizer", "best", "lr", "schedule", "trials", "done", "pruned", "div", "fail"):
        table.add_column(col, no_wrap=True, min_width=4 if col != "optimizer" else 9,
                         justify="left" if col in ("optimizer", "schedule") else "right")
    for e in rows:
        b = e["best"]
        lr = next((v for k, v in b["params"].items() if k.endswith(".lr")), None) if b else None
        # a family whose best run is the untuned baseline's (adamw) says so: not it tuned
        table.add_row(e["optimizer"] + (" (baseline)" if b and b.get("baseline") else ""),
                      fmt(b["value"]) if b else "-",
                      fmt(lr) if lr is not None else "-", b["schedule"] if b else "-",
                      str(e["trials"]), str(e["complete"]), str(e["pruned"]),
                      str(e["diverged"]), str(e["failed"]))
    return table


def print_leaderboard(summary: dict[str, Any]) -> None:
    out.print(optimizer_table(
        f"Best per optimizer ({summary['metric']}, {summary['direction']})",
        summary["by_optimizer"]))
    c = summary["counts"]
    out.print(f"trials: {c['complete']} complete, {c['pruned']} pruned, "
              f"{c['diverged']} diverged, {c['failed']} failed")
    if summary["best"]:
        b = summary["best"]
        out.print(f"[bold]best trial:[/bold] {esc(b['optimizer'])} + {esc(str(b['schedule']))} → "
                  f"{summary['metric']} = {fmt(b['value'])}  ({esc(params_brief(b['params']))})",
                  markup=True)
    else:  # and why, as a failed job says it (the trials' tracebacks scrolled past above)
        first = next((t for t in summary.get("trials") or []
                      if t["state"] in ("failed", "diverged") and t.get("detail")), None)
        out.print("[yellow]no trial completed[/yellow]" + (
            f"; first {'failure' if first['state'] == 'failed' else 'divergence'} (trial "
            f"{first['number']}): {esc(first['detail'])}" if first else ""), highlight=False,
            markup=True)
    a = summary.get("answer")
    if a:
        print_run_answer(a, summary["metric"])


def print_run_answer(a: dict[str, Any], metric: str) -> None:
    """`tuner run`'s answer (`tuner.results.answer`, or `answer_across_splits` with
    `--splits`): each family's expected value, the verdict, the baseline and, across splits,
    each split's verdict and the configuration to start from; last, the answer in one line."""
    if not (a["ranking"] or a.get("splits")):  # (a first split without a complete trial
        return                                 # still says where the others stand)
    if a["ranking"]:  # the best trial is the luckiest run; the answer is what the runs support
        out.print(f"[bold]expected {metric}[/bold] (each family's best configuration; "
                  "95% interval, runs): " + esc(" · ".join(
                      f"{e['optimizer']} {_expected(e['expected'])}"
                      for e in a["ranking"])), highlight=False, markup=True)
    out.print(f"[bold]answer:[/bold] {esc(a['summary'])}", highlight=False, markup=True)
    if a.get("baseline"):
        out.print(f"[bold]baseline:[/bold] {esc(a['baseline']['summary'])}",
                  highlight=False, markup=True)
    if a.get("splits"):
        print_by_split(a["splits"])
        start = a.get("start_from")
        if start:
            out.print(f"start from: {start['optimizer']} with {start['schedule']}, "
                      f"{params_brief(start['params'])}", highlight=False)
    out.print(f"in short: {a['in_short']}", highlight=False)


def print_by_split(splits: dict[str, Any]) -> None:
    """An answer's `splits`, one clause per split, the answer's first."""
    out.print("by data split (each ranked on its own): " + "; ".join(
        f"training.seed {x['training_seed']}{' (this answer)' if i == 0 else ''}: "
        f"{str(x['verdict']).replace('_', ' ')}: {', '.join(x['leaders'])} "
        f"({x['n_complete_trials']} trials)"
        for i, x in enumerate(splits["per_split"])), highlight=False)


def print_job(summary: dict[str, Any]) -> None:
    p, t = summary["progress"], summary["task"]
    out.print(f"[bold]job {summary['id']}[/bold]  {summary['status']}"
              + (f"  ({esc(summary['error'])})" if summary["error"] else ""), markup=True)
    if summary.get("waiting"):  # why it is not running: no dispatcher, or all busy
        out.print(f"[yellow]waiting:[/yellow] {esc(summary['waiting']['note'])}", markup=True,
                  highlight=False)
    model, dataset = task_refs(t)
    out.print(f"task: {model} on {dataset}, {t['metric']} ({t['direction']})")
    reasons = summary.get("failed_reasons") or {}
    why = "" if set(reasons) <= {"failed"} else ", ".join(  # "4 failed (4 failed)" says nothing
        f"{n} {reason}" for reason, n in reasons.items())
    out.print(f"progress: {p['done']}/{p['n_trials']} done ({p['complete']} complete, "
              f"{p['pruned']} pruned, {p['diverged']} diverged), {p['failed']} failed"
              + (f" ({why})" if why else "") + f", {p['running']} running", highlight=False)
    c = summary.get("confirmation") or {}
    if c.get("note"):
        out.print(c["note"], highlight=False)
    elif c.get("reserved"):
        out.print(f"confirmation: {c['runs']} of {c['reserved']} reserved runs"
                  + (" so far" if summary["status"] in ("queued", "running")
                     else f" (the job ended {summary['status']} before the rest)"),
                  highlight=False)
    for note in summary.get("notes") or []:
        out.print(f"note: {note}", highlight=False)
    if summary["by_optimizer"]:  # none yet (queued), or none ever (failed at its start)
        out.print(optimizer_table("Best per optimizer", summary["by_optimizer"]))
    if summary["best"]:
        b = summary["best"]
        out.print(f"[bold]best trial:[/bold] {b['number']}: {esc(b['optimizer'])} + "
                  f"{esc(str(b['schedule']))} → {fmt(b['value'])}  "
                  f"({esc(params_brief(b['params']))})", markup=True)


def _tie_mark(r: dict[str, Any], leaders: set[str], level: bool = False) -> str:
    """`(tie)` for the leading group; a family tied only with others below the leaders names
    them, so it is not read as tied with the leaders. `level`: the answer measured no noise
    (`not_separated`), so its groups are level on the values seen, not tied within a noise:
    `(level)`, `(level with ...)` (until 2026-12-07 `(tie)`, where the summary said "not
    separated: there is no noise estimate")."""
    tied = r.get("tied_with") or []
    if not tied:
        return ""
    if r["optimizer"] in leaders:
        return " (level)" if level else " (tie)"
    return (f" ({'level' if level else 'tied'} with {', '.join(tied[:2])}"
            f"{f' +{len(tied) - 2}' if len(tied) > 2 else ''})")


def _trials(r: dict[str, Any]) -> str:
    """A family's complete trials, with how many were the untuned baseline's runs: `9 (5
    baseline)` (adamw's 9 read as nine tuned trials), and how many second looks (runs to the
    end of a trial the pruner stopped): `3 (1 second look)`."""
    ev = r.get("evidence") or {}
    n, looks = ev.get("n_baseline_runs") or 0, ev.get("n_second_looks") or 0
    said = [f"{n} baseline"] * bool(n) + [f"{looks} second look{'s' * (looks > 1)}"] * bool(looks)
    return f"{r['n_trials']} ({', '.join(said)})" if said else str(r["n_trials"])


def _expected(x: dict[str, Any]) -> str:
    """A family's expected value, its interval and the runs behind it; a `spread` (no repeats
    anywhere) is the range of its best trials, not a confidence interval, and says so."""
    if x.get("kind") == "spread":
        return f"{fmt(x['value'])} (range {fmt(x['low'])}-{fmt(x['high'])}, no repeats)"
    return f"{fmt(x['value'])} [{fmt(x['low'])}, {fmt(x['high'])}] ×{x.get('n', 1)}"


def lr_decades(robustness: dict[str, Any]) -> str:
    """The decades of learning rate a family's good trials span; `one lr` where its trials
    ran one learning rate (0.00 would read as a measured, narrow range); `≥0.10` where no
    trial outside the range did worse (it is as wide as the learning rates tried, at least)."""
    if robustness.get("n_learning_rates", 2) < 2:
        return "one lr"
    return ("" if robustness.get("bounded", True) else "≥") + f"{robustness['lr_decades']:.2f}"


def _noise(n: dict[str, Any]) -> str:
    """The pooled seed-to-seed sd the intervals rest on, with its degrees of freedom (the
    summary's `to_separate` sd is the two families' own, which may differ)."""
    if n.get("sigma") is None:
        return str(n["source"])
    log = " (log units)" if n.get("scale") == "log" else ""
    return f"pooled sd {fmt(n['sigma'])}{log} over {n['dof']} degrees of freedom: {n['source']}"


def print_recommendation(rec: dict[str, Any]) -> None:
    from tuner.recommend import how_ended

    method = rec["method"]
    title = f"Best optimizer ({method}, {rec.get('source', '')}"
    title += f", {rec.get('metric')} {rec.get('direction')})" if method != "prior" else ")"
    table = Table(title=title)
    cols = ["rank", "optimizer", "schedule"]
    cols += {"direct": ["expected [95%] ×runs", "best", "lr decades", "B/param", "s/epoch", "trials",
                        "jobs"],
             "transfer": ["score", "from split" if rec.get("from_splits") else "from task",
                          "lr decades", "B/param", "trials"],
             "prior": []}[method]
    leaders = set(rec.get("leaders") or [])
    rows = []
    for r in rec["ranking"]:
        row = [str(r.get("rank") or "-"),
               r["optimizer"] + _tie_mark(r, leaders, rec.get("verdict") == "not_separated"),
               r["schedule"] or "-"]
        if method == "direct":
            x = r["expected"]
            row += [_expected(x),
                    fmt(r["best_trial_value"]), lr_decades(r["robustness"]),
                    fmt(r["cost"]["state_bytes_per_param"]),
                    fmt(r["cost"]["seconds_per_epoch"]), _trials(r), str(r["n_jobs"])]
        elif method == "transfer":
            src = r["source_task"]  # a corpus task's id is `ref:<name>`; the team's, a number
            if rec.get("from_splits"):  # the task itself, on another split: which one
                where = f"training.seed {(src.get('budget') or {}).get('training_seed')}"
            else:
                where = (src["task_id"] if src.get("source") != "team history"
                         else f"task {src['task_id']}") + f" ({src['similarity']:.2f})"
            row += [fmt(r["score"]), where,
                    lr_decades(r["robustness"]),
                    fmt(r["cost"]["state_bytes_per_param"]), str(r["n_trials"])]
        rows.append(row)
    # The rank, the interval with its runs and the counts are never cut (a narrow terminal cut
    # `0.9861 [0.9723, 0.9999] ×3` to `... ×`): names wrap, the costs give way first.
    add_columns(table, cols, rows, keep={"rank", "expected [95%] ×runs", "best", "score",
                                         "trials", "jobs"}, fold={"optimizer", "schedule",
                                                                  "from task", "from split"})
    for row in rows:
        table.add_row(*row)
    out.print(table)
    # Each family's configuration on a line of its own: a column of them was squeezed to a few
    # characters in a terminal of ordinary width.
    for r in rec["ranking"]:
        if r.get("params"):
            out.print(f"  {r.get('rank') or '-'}. {r['optimizer']}: {params_brief(r['params'])}"
                      + ("  (the untuned baseline, its only configuration run to the end: its "
                         "defaults, not it tuned)"
                         if (r.get("evidence") or {}).get("baseline_only") else ""),
                      highlight=False)
    for r in rec.get("not_ranked") or []:
        ev = r["evidence"]
        best = ev.get("best_intermediate_value")
        ended = how_ended(ev)
        out.print(f"not ranked: {r['optimizer']}: {ev['n_trials']} "
                  f"{'trial' if ev['n_trials'] == 1 else 'trials'}, none complete"
                  + (f": {ended}" if ended else "") + " "
                  f"(stopped by epoch {ev['max_stop_epoch']}"
                  + (f", best intermediate value {fmt(best)})" if best is not None else ")")
                  + (": already within the best leader's 95% interval when stopped; a complete "
                     "run would tell whether it is as good as the leaders"
                     if r.get("may_lead") else _at_stop(r)), highlight=False)
    for key in ("summary", "explanation", "note"):
        if rec.get(key):
            out.print(("[yellow]" if key == "note" else "") + esc(str(rec[key])), highlight=False,
                      markup=True)
    if rec.get("baseline"):
        out.print(f"baseline: {rec['baseline']['summary']}", highlight=False)
    if rec.get("no_skill"):  # against a model that ignores its inputs
        out.print(f"no skill: {rec['no_skill']['summary']}", highlight=False)
    if method == "direct":
        out.print(f"noise: {_noise(rec['noise'])}", highlight=False)
    for note in rec.get("loop_notes") or []:  # the team's loop, as its jobs noted it
        out.print(f"note: {note}", highlight=False)
    if rec.get("budget"):
        others = ", ".join(f"{b['epochs']} epochs/batch {b['batch_size']}"
                           f"{_budget_parts(b, '/', rec['budget'])} "
                           f"({b['n_complete_trials']} trials)" for b in rec["other_budgets"])
        out.print(f"budget: {rec['budget']['epochs']} epochs, batch size "
                  f"{rec['budget']['batch_size']}{_budget_parts(rec['budget'], ', ')}"
                  + (f"; also in history: {others}" if others else ""), highlight=False)
    if rec.get("splits"):
        print_by_split(rec["splits"])
    this = (rec.get("tasks") or [{}])[0]
    for t in rec.get("other_tasks") or []:
        # What sets it apart: a rewritten data file has the same parameters, only its digest
        # differs (the line named the same model and dataset parameters twice, and no more).
        apart = "".join(f", {label} {theirs} (this task's: {ours})"
                        for label, theirs, ours in (digests_apart(t, this) if this else []))
        out.print(f"other task {t['id']} with this model and dataset, not pooled (ask with "
                  f"--task {t['id']}): model {params_brief(t['model']['params']) or '-'}, "
                  f"dataset {params_brief(t['dataset']['params']) or '-'}{apart}",
                  highlight=False)
    start = rec.get("start_from")
    first = (rec.get("ranking") or [{}])[0].get("optimizer")
    # A direct answer lists each family's configuration; start_from is said when it is not the
    # first listed (a leader leading on every split, before one that does not).
    if start and (method != "direct" or start["optimizer"] != first):
        out.print(f"start from: {start['optimizer']} with {start['schedule']}, "
                  f"{params_brief(start['params'])}", highlight=False)
    out.print(in_short(rec), highlight=False)


def in_short(rec: dict[str, Any]) -> str:
    """The answer in one line, printed last (the paragraphs above it end far from the table):
    `tuner.recommend.in_short`, which a service answer carries as `in_short` (the task page's
    headline)."""
    from tuner.recommend import in_short as words

    return f"in short: {words(rec)}"


def _at_stop(r: dict[str, Any]) -> str:
    """Where a family that never completed stood against the best leader's configuration at
    the epoch it was stopped ('' when the answer does not say)."""
    at = r.get("leader_at_stop")
    if not at:
        return ""
    from tuner.recommend import stop_range

    there = stop_range(at)
    return (f": level with or ahead of {at['optimizer']}'s best configuration then ({there}), "
            f"so not shown "
            f"to be behind it" if r.get("level_at_stop") else
            f"; {at['optimizer']}'s best configuration was at {there} by then")


def _budget_parts(budget: dict[str, Any], sep: str, against: dict[str, Any] | None = None) -> str:
    """The budget's parts past epochs and batch size: early stopping, a precision not fp32, a
    training seed (data split) not 0, another release's training code; and, beside the
    answer's budget (`against`), each part where the two differ, defaults included (`8
    epochs/batch 64` beside `8 epochs, batch size 64, training.seed 1` read as the same)."""
    from tuner.spec import TRAINING_FORMAT

    p, precision = budget.get("early_stopping_patience"), budget.get("precision")
    seed, fmt = budget.get("training_seed"), budget.get("training_format")
    other = against or budget  # alone, nothing differs

    def differs(key: str) -> bool:
        return other.get(key) != budget.get(key)

    return ((f"{sep}early stopping patience {p}" if p is not None else
             f"{sep}no early stopping" if differs("early_stopping_patience") else "")
            + (f"{sep}{precision}" if precision not in (None, "fp32") or differs("precision")
               else "")
            + (f"{sep}training.seed {seed or 0}" if seed or differs("training_seed") else "")
            + (f"{sep}training format {fmt} (another release's)"
               if fmt not in (None, TRAINING_FORMAT) else ""))


def describe_params(params: dict[str, Any]) -> str:
    parts = []
    for name, p in params.items():
        if p["kind"] == "bool":
            parts.append(f"{name} on/off ({p['default']})")
        else:
            scale = " log" if p.get("log") else ""
            parts.append(f"{name} {fmt(p['low'])}–{fmt(p['high'])}{scale} ({fmt(p['default'])})")
    return "\n".join(parts)


