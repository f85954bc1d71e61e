"""A job's trials as a table (CSV or Parquet): one row per trial, its fields as columns and each
parameter as a `param.<name>` column (empty where a family does not have it)."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from tuner.trial import TRIAL_FIELDS

TABLE_LIMIT = 1_000_000  # rows read for an export or a figure (every trial of any real job)
FORMATS = ("csv", "parquet")
# One column per field but the params (a column each) and a failed trial's traceback (many
# lines; the JSON trials answer it): a row per line of CSV for grep and awk.
FIXED = tuple(f for f in TRIAL_FIELDS if f not in ("params", "traceback"))


def trials_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    records = []
    for r in rows:
        d = {f: r.get(f) for f in FIXED}
        d.update({f"param.{k}": v for k, v in sorted((r.get("params") or {}).items())})
        records.append(d)
    frame = pd.DataFrame.from_records(records, columns=None if records else list(FIXED))
    params = sorted(c for c in frame.columns if c.startswith("param."))
    return frame[[*FIXED, *params]]


def trials_table(rows: Iterable[Mapping[str, Any]], fmt: str) -> bytes:
    """The rows (`trial_json` without steps) as CSV or Parquet bytes."""
    if fmt not in FORMATS:
        raise ValueError(f"format: unknown {fmt!r}; valid choices: {', '.join(FORMATS)}")
    frame = trials_frame(rows)
    if fmt == "csv":
        return frame.to_csv(index=False).encode()
    buf = io.BytesIO()
    # Parameter columns mix types across families (a bool here, a float there): as objects
    # pyarrow would refuse them, so each parameter column is stored as text when it is mixed.
    for c in frame.columns:
        kinds = {type(v) for v in frame[c] if _present(v)}
        if c.startswith("param.") and (len(kinds) > 1 or kinds - {int, float, bool, str}):
            frame[c] = frame[c].map(lambda v: json.dumps(v) if _present(v) else None)
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def _present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))
