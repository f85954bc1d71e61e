"""What every benchmark script shares."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def save(out: Path, results: dict[str, Any]) -> None:
    """Write a script's JSON result (the file docs/benchmarks.md quotes)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
