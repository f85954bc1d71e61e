"""A job's figures as data (tuner.figures): what /ui and `tuner plot` draw, bounded for a job
of thousands of trials."""

from __future__ import annotations

from typing import Any

from tuner.figures import job_figures


def _trial(number: int, family: str, values: list[float], state: str = "complete"
           ) -> dict[str, Any]:
    return {"number": number, "optimizer": family, "schedule": "constant", "state": state,
            "stop_step": len(values), "value": max(values) if state == "complete" else None,
            "steps": [{"step": i + 1, "value": v} for i, v in enumerate(values)]}


def test_the_best_so_far_is_a_step_function_of_every_epoch() -> None:
    trials = [_trial(0, "adam", [0.5, 0.7, 0.6]), _trial(1, "sgd", [0.4, 0.65], "pruned"),
              _trial(2, "adam", [0.6, 0.8])]
    fig = job_figures(trials, "val_accuracy", "maximize")
    # where the best changed, and after the last of the 7 epochs; the rest are the same steps
    assert fig["best_so_far"] == [[1, 0.5], [2, 0.7], [7, 0.8]]
    assert fig["epochs_consumed"] == 7 and fig["n_trials"] == 3
    flat = job_figures(trials[:2], "val_accuracy", "maximize")["best_so_far"]
    assert flat == [[1, 0.5], [2, 0.7], [5, 0.7]]  # the best held to the last epoch
    loss = job_figures([_trial(0, "adam", [2.0, 1.0, 1.5])], "val_loss", "minimize")
    assert loss["best_so_far"] == [[1, 2.0], [2, 1.0], [3, 1.0]]
    # A trial cancelled before it ran has no configuration and nothing to draw: it was a curve
    # of no points, in the legend as "#3 null (failed)", and counted among the trials drawn.
    never = {"number": 3, "optimizer": None, "schedule": None, "state": "failed",
             "stop_step": 0, "value": None, "steps": []}
    with_never = job_figures([*trials, never], "val_accuracy", "maximize")
    assert [c["number"] for c in with_never["curves"]] == [0, 1, 2]
    assert with_never["n_trials"] == 3 and with_never["best_so_far"] == fig["best_so_far"]


def test_a_large_job_draws_each_familys_best_curve_and_the_latest() -> None:
    trials = [_trial(n, "adam" if n < 6 else "sgd", [0.1 * (n % 6) + 0.1]) for n in range(10)]
    fig = job_figures(trials, "val_accuracy", "maximize", curves_limit=4)
    # adam's best is trial 5 (0.6), sgd's trial 9 (0.4); then the latest others, 8 and 7
    assert [c["number"] for c in fig["curves"]] == [5, 7, 8, 9] and fig["n_trials"] == 10
    early_best = [_trial(0, "adam", [0.9]), *(_trial(n, "adam", [0.1]) for n in range(1, 10))]
    kept = job_figures(early_best, "val_accuracy", "maximize", curves_limit=3)["curves"]
    assert [c["number"] for c in kept] == [0, 8, 9]  # the best, however early
    assert {f["optimizer"]: f["n_trials"] for f in fig["families"]} == {"adam": 6, "sgd": 4}
    assert fig["epochs_consumed"] == 10  # every trial counts in the best so far
    whole = job_figures(trials, "val_accuracy", "maximize")
    assert len(whole["curves"]) == 10 and whole["best_so_far"] == fig["best_so_far"]


def test_tuner_plot_says_what_every_line_and_mark_is() -> None:
    """The PNG/SVG legend of `tuner plot`: one entry per family, one per kind of stop, and the
    dashed line of a confirmation run (drawn dashed and never said, where /ui's caption says
    it)."""
    from cli.plots import draw

    trials = [_trial(0, "adam", [0.5, 0.7]), _trial(1, "sgd", [0.4], "pruned"),
              {**_trial(2, "adam", [0.6, 0.72]), "confirm_of": 0},
              {**_trial(3, "adamw", [0.2, 0.3]), "baseline": True}]
    fig = job_figures(trials, "val_accuracy", "maximize")
    assert [c["confirmation"] for c in fig["curves"]] == [False, False, True, False]
    assert [c["baseline"] for c in fig["curves"]] == [False, False, False, True]
    # the job page's best trial per family says where it is the untuned baseline's run
    assert {f["optimizer"]: f["best"]["baseline"] for f in fig["families"] if f["best"]} == \
        {"adam": False, "adamw": True}
    figure = draw(fig, "t")
    legend = figure.axes[1].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == \
        ["sgd", "adam", "adamw", "pruned (stopped here)", "confirmation run",
         "baseline (AdamW 1e-3, cosine)"]
    styles = {ln.get_gid(): ln.get_linestyle() for ln in figure.axes[1].get_lines()}
    assert (styles["series-trial-2"], styles["series-trial-3"]) == ("--", ":")
    plain = draw(job_figures(trials[:2], "val_accuracy", "maximize"), "t").axes[1].get_legend()
    assert "confirmation run" not in [t.get_text() for t in plain.get_texts()]


def test_a_trial_of_one_epoch_is_drawn_as_a_dot() -> None:
    """A line through one point draws nothing: a job of one epoch per trial (or a trial pruned
    after its first) showed an empty chart."""
    from cli.plots import draw

    trials = [_trial(0, "adam", [0.5]), _trial(1, "sgd", [0.4, 0.6])]
    figure = draw(job_figures(trials, "val_accuracy", "maximize"), "t")
    lines = {ln.get_gid(): ln for ax in figure.axes for ln in ax.get_lines() if ln.get_gid()}
    assert lines["series-trial-0"].get_marker() == "o"
    assert lines["series-trial-1"].get_marker() in ("None", None, "")
    one = draw(job_figures(trials[:1], "val_accuracy", "maximize"), "t")
    best = [ln for ln in one.axes[0].get_lines() if ln.get_gid() == "series-best"]
    assert len(best) == 1 and best[0].get_marker() == "o"  # the best so far of one epoch


def test_a_loss_is_drawn_on_a_log_axis() -> None:
    """A loss (every drawn value above 0) on a logarithmic axis, as the answer ranks it: on a
    linear one a house-price regression's good trials at 0.02 lay flat under a 1.0 start. An
    accuracy, or a loss that reaches 0 (no logarithm), stays linear; /ui reads `y_scale` and
    `tuner plot` draws with it."""
    from cli.plots import draw

    loss = job_figures([_trial(0, "adam", [1.0, 0.1, 0.02]), _trial(1, "sgd", [0.9, 0.5])],
                       "val_loss", "minimize")
    assert loss["y_scale"] == "log"
    axes = draw(loss, "t").axes
    assert [ax.get_yscale() for ax in axes] == ["log", "log"]
    assert axes[0].get_ylabel() == "val_loss (log scale)"
    accuracy = job_figures([_trial(0, "adam", [0.5, 0.7])], "val_accuracy", "maximize")
    assert accuracy["y_scale"] == "linear"
    assert [ax.get_yscale() for ax in draw(accuracy, "t").axes] == ["linear", "linear"]
    zero = job_figures([_trial(0, "adam", [0.3, 0.0])], "val_loss", "minimize")
    assert zero["y_scale"] == "linear"


def test_epochs_are_labelled_whole() -> None:
    """Both axes of epochs tick at whole epochs: a job of 4 epochs was labelled 1.5, 2.5 and
    3.5 between them."""
    from cli.plots import draw

    trials = [_trial(0, "adam", [0.5, 0.6, 0.7, 0.8]), _trial(1, "sgd", [0.4, 0.6, 0.65, 0.7])]
    for ax in draw(job_figures(trials, "val_accuracy", "maximize"), "t").axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks


def test_a_jobs_task_is_named_with_its_parameters() -> None:
    """`tuner status` and `tuner plot`'s title name the task with its model's and dataset's
    parameters: two digits_loop tasks of widths 48 and 64 both read `trainable:digits_loop on
    digits (own pipeline)`."""
    from cli.render import task_refs

    task = {"model": "trainable:digits_loop", "model_params": {"width": 48},
            "dataset": "file", "dataset_params": {"path": "houses.csv", "target": "price"}}
    assert task_refs(task) == ('trainable:digits_loop width=48',
                               'file path="houses.csv" target="price"')
    assert task_refs({"model": "mlp", "dataset": "digits"}) == ("mlp", "digits")
