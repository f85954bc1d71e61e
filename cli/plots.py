"""`tuner plot`: a job's figures (tuner.figures) as PNG/SVG (matplotlib) or as a standalone HTML
page that draws them with the same script and Chart.js as /ui, inlined (works offline)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tuner.figures import families_in

SUFFIXES = (".png", ".svg", ".html")
STATIC = Path(__file__).resolve().parents[1] / "api" / "static"
STOP_MARKERS = {"pruned": "x", "diverged": "^"}


def write_figures(fig: dict[str, Any], path: Path, title: str) -> None:
    if path.suffix.lower() == ".html":
        path.write_text(html_page(fig, title))
    else:
        draw(fig, title).savefig(path, dpi=120, bbox_inches="tight")


def draw(fig: dict[str, Any], title: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    figure, (best, curves) = plt.subplots(1, 2, figsize=(13, 4.8))
    figure.suptitle(title)
    metric = fig["metric"]
    if fig["best_so_far"]:
        x, y = zip(*fig["best_so_far"], strict=True)
        best.step(x, y, where="post", color="#333", gid="series-best", **_lone(x))
    best.set(xlabel="epochs consumed", ylabel=metric, title=f"best {metric} so far")
    for c in fig["curves"]:
        if c["points"]:
            x, y = zip(*c["points"], strict=True)
            curves.plot(x, y, color=c["color"], lw=1.4 if c["state"] == "complete" else 0.9,
                        ls=":" if c.get("baseline") else "--" if c["confirmation"] else "-",
                        gid=f"series-trial-{c['number']}",
                        **_lone(x))
        if c["stop"] and c["stop"][1] is not None:
            curves.plot(*c["stop"], marker=STOP_MARKERS[c["state"]], color="black", ms=7,
                        mfc=c["color"], ls="none")
    colors = {c["optimizer"]: c["color"] for c in fig["curves"]}
    handles = [Line2D([], [], color=colors[f], label=f) for f in families_in(fig["curves"])]
    handles += [Line2D([], [], marker=m, color="black", ls="none", label=f"{s} (stopped here)")
                for s, m in STOP_MARKERS.items() if any(c["state"] == s for c in fig["curves"])]
    if any(c["confirmation"] and c["points"] for c in fig["curves"]):  # as /ui's caption says
        handles.append(Line2D([], [], color="black", ls="--", label="confirmation run"))
    if any(c.get("baseline") and c["points"] for c in fig["curves"]):
        handles.append(Line2D([], [], color="black", ls=":", label="baseline (AdamW 1e-3, cosine)"))
    curves.legend(handles=handles, fontsize=8, ncol=2)
    curves.set(xlabel="epoch", ylabel=metric, title="every trial's learning curve")
    for ax in (best, curves):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs: no 1.5 or 2.5
        if fig.get("y_scale") == "log":  # a loss, as /ui draws it
            ax.set_yscale("log")
            ax.set_ylabel(f"{metric} (log scale)")
    figure.tight_layout()
    return figure


def _lone(x: tuple[Any, ...]) -> dict[str, Any]:
    """A line of one point (a trial of one epoch) is drawn as a dot, else it would not show."""
    return {"marker": "o", "ms": 4} if len(x) == 1 else {}


def html_page(fig: dict[str, Any], title: str) -> str:
    page = (STATIC / "ui" / "job.html").read_text()
    chart_js = (STATIC / "vendor" / "chart.umd.min.js").read_text()
    ui_js = (STATIC / "ui" / "ui.js").read_text()
    css = (STATIC / "ui" / "ui.css").read_text()
    data = json.dumps(fig).replace("</", "<\\/")
    safe_title = title.replace("&", "&amp;").replace("<", "&lt;")
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{safe_title}</title><style>{css}</style>"
            f"<script>{chart_js}</script><script>window.TUNER_FIGURES = {data};</script>"
            f"</head><body data-page=\"static\"><h1>{safe_title}</h1>"
            f"<p id=\"error\" class=\"error\" hidden></p>{page}"
            f"<script>{ui_js}</script></body></html>")
