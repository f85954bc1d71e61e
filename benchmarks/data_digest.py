"""What identifying a team's data folder costs: the digest (`tuner.datasets.data_digest`) of a
folder of files, against reading and hashing every file each time (what every process did
before each file's SHA-256 was kept in the service's cache). Interleaved repeats; medians;
ratios against the full read in the same process.

    .venv/bin/python -m benchmarks.data_digest            # 2,000 files x 256 KiB (500 MiB)
    .venv/bin/python -m benchmarks.data_digest --smoke

Cases, each timed from a process's point of view (its in-memory cache cleared):
- `full read`: every file read and hashed (the baseline; the first digest of a folder costs
  this once, plus writing the store);
- `other process`: a dispatcher or worker digesting a folder that was digested before;
- `one file added`: the same after one more file was written into the folder.
The page cache holds the files in every case, so `full read` is the hashing alone: reading
from a disk or a network share makes it slower and the other two cases no slower.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._common import interleaved, save

OUT = Path(__file__).parent / "results" / "data_digest.json"


def full_read(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        with f.open("rb") as fh:
            h.update(f.relative_to(folder).as_posix().encode() + b"\0"
                     + hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()[:16]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--kib", type=int, default=256, help="size of each file")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    if a.smoke:
        a.files, a.kib, a.repeats = 50, 4, 2
    from tuner import datasets, digests
    from tuner.config import get_settings

    before = os.environ.get("TUNER_DATA_ROOT")
    with tempfile.TemporaryDirectory(prefix="digest-bench-") as tmp:
        root = Path(tmp)
        os.environ["TUNER_DATA_ROOT"] = str(root)
        get_settings.cache_clear()
        folder = root / "shards"
        folder.mkdir()
        for i in range(a.files):
            (folder / f"{i:06d}.bin").write_bytes(os.urandom(a.kib * 1024))
        first = datasets.data_digest("hf:shards", {}, None)
        assert first == full_read(folder)
        added = [0]

        def timed(fn: Callable[[], Any]) -> float:
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0

        def other_process() -> float:
            digests._DIGESTS.clear()
            return timed(lambda: datasets.data_digest("hf:shards", {}, None))

        def one_added() -> float:
            added[0] += 1
            (folder / f"added-{added[0]}.bin").write_bytes(os.urandom(a.kib * 1024))
            digests._DIGESTS.clear()
            return timed(lambda: datasets.data_digest("hf:shards", {}, None))

        runs = interleaved({"full read": lambda: timed(lambda: full_read(folder)),
                            "other process": other_process, "one file added": one_added},
                           a.repeats)
        assert datasets.data_digest("hf:shards", {}, None) == full_read(folder)
        if before is None:
            os.environ.pop("TUNER_DATA_ROOT")
        else:
            os.environ["TUNER_DATA_ROOT"] = before
        get_settings.cache_clear()
    base = statistics.median(runs["full read"])
    results: dict[str, Any] = {
        "files": a.files, "kib_per_file": a.kib, "repeats": a.repeats,
        "cases": {k: {"median_s": statistics.median(v), "runs_s": v,
                      "ratio_to_full_read": statistics.median(v) / base}
                  for k, v in runs.items()}}
    print(f"{a.files} files x {a.kib} KiB, {a.repeats} repeats (medians)")
    print(f"{'case':<16} {'seconds':>9} {'vs full read':>13}")
    for k, c in results["cases"].items():
        print(f"{k:<16} {c['median_s']:>9.3f} {c['ratio_to_full_read']:>13.3f}")
    save(a.out, results)
    print(f"wrote {a.out}", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
