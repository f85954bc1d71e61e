"""Standard references with no plugin: an image folder read from disk with augmentation,
torchvision and Hugging Face models and datasets (made here, nothing downloaded), the
submit-time checks, `tuner data fetch`, and a torchvision resnet18 on an image folder through
the service."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.conftest import DATA_ROOT
from tuner.datasets import DiskSplit, check_unchanged, load_dataset
from tuner.errors import DataError, SpecError
from tuner.search import run_search
from tuner.spec import JobSpec
from tuner.tasks import inspect_task

TEAM = "refs"
CLASSES = 3


def _image_folder(root: Path, per_class: int = 60, size: int = 12) -> None:
    """`per_class` PNGs per class; each class is brighter in its own colour channel."""
    from PIL import Image

    if root.is_dir():
        return
    rng = np.random.default_rng(0)
    for c in range(CLASSES):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            a = (rng.random((size, size, 3)) * 110).astype(np.uint8)
            a[..., c] += 120
            Image.fromarray(a).save(root / f"class{c}" / f"{i}.png")


@pytest.fixture(scope="module")
def images() -> str:
    """An image folder in team `refs`'s data folder (and the whole root, for `tuner run`)."""
    _image_folder(DATA_ROOT / TEAM / "imgs")
    return "imgs"


def image_spec(model: str = "torchvision:resnet18", **changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "task": {"model": {"name": model},
                 "dataset": {"name": "imagefolder",
                             "params": {"path": "imgs", "image_size": 16,
                                        "augment": ["hflip", "crop"]}}},
        "space": {"optimizers": ["adam", "sgd"], "schedules": ["constant"],
                  # sgd at a tiny rate learns nothing: the pruner has a loser to stop
                  "overrides": {"sgd.lr": {"low": 1e-7, "high": 1e-6}}},
        "training": {"epochs": 3, "batch_size": 32},
        "search": {"pruner": "asha", "confirm_top_k": 0},
        "budget": {"n_trials": 3}}
    for k, v in changes.items():
        raw[k] = {**raw.get(k, {}), **v}
    return raw


def test_an_unknown_reference_names_the_valid_prefixes(images: str) -> None:
    with pytest.raises(ValueError, match=r"unknown model reference prefix 'tf:'; valid "
                                         r"choices: hf:, timm:, torchvision:"):
        JobSpec.model_validate({"task": {"model": {"name": "tf:resnet"},
                                         "dataset": {"name": "digits"}}})
    with pytest.raises(ValueError, match=r"unknown dataset reference prefix 'kaggle:'; valid "
                                         r"choices: hf:, torchvision:"):
        JobSpec.model_validate({"task": {"model": {"name": "mlp"},
                                         "dataset": {"name": "kaggle:cats"}}})
    with pytest.raises(ValueError, match=r"unknown model 'resnet'.*torchvision:<name>"):
        JobSpec.model_validate({"task": {"model": {"name": "resnet"},
                                         "dataset": {"name": "digits"}}})
    with pytest.raises(SpecError, match=r"task\.model\.name: unknown torchvision model "
                                        r"'resnet1'.*resnet18"):
        inspect_task(JobSpec.model_validate(image_spec("torchvision:resnet1")), scope=TEAM)


def test_an_image_folder_is_read_from_disk_split_and_augmented(images: str) -> None:
    from tuner.datasets import team_scope

    with team_scope(TEAM):
        data = load_dataset("imagefolder", {"path": images, "image_size": 16,
                                            "augment": ["hflip", "crop", "color"]}, seed=3,
                            scope=TEAM)
    assert isinstance(data, DiskSplit)
    info = data.info
    assert (info.input_shape, info.n_classes, info.n_train, info.n_val) == ((3, 16, 16), 3,
                                                                            144, 36)
    # stratified: 12 validation images of each class
    val_targets = [int(data.val[i][1]) for i in range(info.n_val)]
    assert np.bincount(val_targets).tolist() == [12, 12, 12]
    # its labels known without decoding an image: what a model that ignores its inputs
    # scores (the training set's most common class: a third of the validation set)
    from tuner.datasets import no_skill

    assert data.labels is not None and data.labels[1].tolist() == val_targets
    assert no_skill(data, "val_accuracy") == pytest.approx(1 / 3)
    # augmentation on the training split only: two reads of one image differ, of a
    # validation image are equal
    torch.manual_seed(0)
    reads = [data.train[0][0] for _ in range(4)]
    assert any(not torch.equal(reads[0], r) for r in reads[1:])
    assert torch.equal(data.val[0][0], data.val[0][0])
    with pytest.raises(DataError, match=r"augment: unknown 'mixup'; valid choices: hflip, "
                                        r"vflip, crop, rotate, color"):
        load_dataset("imagefolder", {"path": images, "augment": ["mixup"]}, 0, scope=TEAM)
    # another team's folder reads as missing, as a missing one does
    for scope in ("other", TEAM):
        with pytest.raises(DataError, match=r"no folder '(imgs|nope)' in your team's data"):
            load_dataset("imagefolder", {"path": "imgs" if scope == "other" else "nope"}, 0,
                         scope=scope)


def test_resnet18_and_timm_on_an_image_folder_through_tuner_run(images: str) -> None:
    """`tuner run` reads the whole data root: the folder is `refs/imgs` there."""
    for model in ("torchvision:resnet18", "timm:resnet18"):
        raw = image_spec(model, budget={"n_trials": 2})
        raw["task"]["dataset"]["params"]["path"] = f"{TEAM}/{images}"
        f = inspect_task(JobSpec.model_validate(raw))
        assert f.n_params > 11_000_000 and f.input_shape == [3, 16, 16] and f.n_classes == 3
        result = run_search(JobSpec.model_validate(raw))
        assert {r.state for r in result.records} <= {"complete", "pruned"}, [
            r.detail for r in result.records]
        done = [r for r in result.records if r.state == "complete"]
        assert done and all(len(r.steps) == 3 and r.seconds_per_epoch > 0 for r in done)


def _hf_folders() -> None:
    """A tiny transformers ResNet (saved model folder) and two saved datasets (images,
    number arrays) in team `refs`'s data folder."""
    import datasets as hfd

    from tuner.references import import_torchvision

    base = DATA_ROOT / TEAM
    if (base / "tiny-resnet").is_dir():
        return
    import_torchvision()
    from PIL import Image
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    ResNetForImageClassification(ResNetConfig(
        num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
        num_labels=7)).save_pretrained(base / "tiny-resnet")
    rng = np.random.default_rng(0)
    images, labels = [], []
    for i in range(90):
        a = (rng.random((12, 12, 3)) * 110).astype(np.uint8)
        a[..., i % 3] += 120
        images.append(Image.fromarray(a))
        labels.append(i % 3)
    hfd.Dataset.from_dict({"image": images, "label": labels}, features=hfd.Features(
        {"image": hfd.Image(), "label": hfd.ClassLabel(names=["r", "g", "b"])})
    ).save_to_disk(str(base / "hf-images"))
    x = rng.standard_normal((120, 6)).astype(np.float32)
    hfd.Dataset.from_dict({"features": x.tolist(), "label": (x[:, 0] > 0).astype(int).tolist()}
                          ).save_to_disk(str(base / "hf-numbers"))


def test_hugging_face_model_and_datasets_from_the_team_folder() -> None:
    _hf_folders()
    raw = image_spec("hf:tiny-resnet", budget={"n_trials": 2})
    raw["task"]["dataset"] = {"name": "hf:hf-images", "params": {"image_size": 16}}
    f = inspect_task(JobSpec.model_validate(raw), scope=TEAM)
    assert (f.input_shape, f.n_classes, f.n_train) == ([3, 16, 16], 3, 72)
    # The team's model folder and dataset folder are part of the task: other weights under the
    # same name are another task, and a job cannot train on them once submitted.
    assert f.model_digest and f.data_digest and f.model_digest != f.data_digest
    copy = DATA_ROOT / TEAM / "tiny-resnet-retrained"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(DATA_ROOT / TEAM / "tiny-resnet", copy)
    raw["task"]["model"]["name"] = "hf:tiny-resnet-retrained"
    same = inspect_task(JobSpec.model_validate(raw), scope=TEAM)
    assert same.model_digest == f.model_digest  # the same bytes under another name
    weights = next(p for p in copy.iterdir() if p.suffix == ".safetensors")
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\1")
    retrained = inspect_task(JobSpec.model_validate(raw), scope=TEAM)
    assert retrained.model_digest != f.model_digest
    assert retrained.fingerprint != same.fingerprint
    with pytest.raises(DataError, match=r"task\.model: the model folder .* changed since"):
        check_unchanged("hf:tiny-resnet-retrained", {}, TEAM, same.model_digest,
                        field="task.model")
    shutil.rmtree(copy)
    raw["task"]["model"]["name"] = "hf:tiny-resnet"
    # `tuner run` reads the whole data root
    raw["task"]["model"]["name"] = f"hf:{TEAM}/tiny-resnet"
    raw["task"]["dataset"]["name"] = f"hf:{TEAM}/hf-images"
    result = run_search(JobSpec.model_validate(raw))
    assert any(r.state == "complete" and len(r.steps) == 3 for r in result.records), [
        r.detail for r in result.records]
    # numbers: a column of arrays trains the built-in models
    numbers = {"task": {"model": {"name": "mlp"},
                        "dataset": {"name": "hf:hf-numbers", "params": {"x": "features"}}}}
    f = inspect_task(JobSpec.model_validate(numbers), scope=TEAM)
    assert (f.input_shape, f.n_classes) == ([6], 2)
    with pytest.raises(SpecError, match=r"task\.dataset\.params\.x: hf:hf-numbers has no column "
                                        r"'pixels'; valid choices: features, label"):
        inspect_task(JobSpec.model_validate(
            {"task": {"model": {"name": "mlp"}, "dataset": {
                "name": "hf:hf-numbers", "params": {"x": "pixels"}}}}), scope=TEAM)


def test_missing_references_fail_at_submit_naming_the_fetch_command(images: str) -> None:
    cases = [
        (image_spec(), r"task\.dataset(\.name)?: "
         r"torchvision:CIFAR10 is not in the cache.*tuner data fetch dataset torchvision:CIFAR10"),
        (image_spec("torchvision:resnet18"), r"task\.model\.params\.pretrained: the weights of "
         r"torchvision:resnet18 are not in the cache.*tuner data fetch model "
         r"torchvision:resnet18"),
        (image_spec("hf:someorg/vit-tiny"), r"task\.model\.name: hf:someorg/vit-tiny is not in "
         r"your data folder or the cache.*tuner data fetch model hf:someorg/vit-tiny"),
        (image_spec(), r"task\.dataset\.name: hf:someorg/cats is not in your data folder or "
         r"the cache.*tuner data fetch dataset hf:someorg/cats"),
    ]
    cases[0][0]["task"]["dataset"] = {"name": "torchvision:CIFAR10"}
    cases[1][0]["task"]["model"]["params"] = {"pretrained": True}
    cases[3][0]["task"]["dataset"] = {"name": "hf:someorg/cats"}
    for raw, message in cases:
        with pytest.raises(SpecError, match=message):
            inspect_task(JobSpec.model_validate(raw), scope=TEAM)


def _idx(path: Path, array: np.ndarray) -> None:
    """An MNIST-format (IDX) file."""
    dims = struct.pack(">" + "I" * array.ndim, *array.shape)
    code = 0x08  # unsigned byte
    path.write_bytes(struct.pack(">HBB", 0, code, array.ndim) + dims + array.tobytes())


def test_a_torchvision_dataset_reads_from_the_cache(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision's own MNIST reader on MNIST-format files written here (as `tuner data
    fetch` would leave them): the digit's class is a bright square in one of 4 places."""
    from tuner.config import get_settings

    monkeypatch.setenv("TUNER_CACHE_ROOT", str(tmp_path))
    get_settings.cache_clear()
    raw = tmp_path / "torchvision" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 80), ("t10k", 8)):
        y = (np.arange(n) % 4).astype(np.uint8)
        x = (rng.random((n, 28, 28)) * 60).astype(np.uint8)
        for i, c in enumerate(y):
            r, q = divmod(int(c), 2)
            x[i, r * 14:r * 14 + 14, q * 14:q * 14 + 14] += 150
        _idx(raw / f"{prefix}-images-idx3-ubyte", x)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", y)
    try:
        spec = {"task": {"model": {"name": "cnn", "params": {"channels": [4]}},
                         "dataset": {"name": "torchvision:MNIST", "params": {"image_size": 14}}},
                "space": {"optimizers": ["adam"], "schedules": ["constant"]},
                "training": {"epochs": 2, "batch_size": 16}, "budget": {"n_trials": 1},
                "search": {"confirm_top_k": 0}}
        f = inspect_task(JobSpec.model_validate(spec))
        assert (f.input_shape, f.n_classes, f.n_train) == ([1, 14, 14], 10, 64)
        (rec,) = run_search(JobSpec.model_validate(spec)).records
        assert rec.state == "complete" and len(rec.steps) == 2
    finally:
        get_settings.cache_clear()


def test_tuner_data_fetch_says_what_went_wrong() -> None:
    tuner = [str(Path(sys.executable).parent / "tuner")]
    bad = subprocess.run([*tuner, "data", "fetch", "model", "keras:resnet"],
                         check=False, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert "valid prefixes: hf:, timm:, torchvision:" in bad.stderr
    # no network here: the library's reason, exit 1, no traceback
    offline = subprocess.run([*tuner, "data", "fetch", "dataset", "torchvision:MNIST"],
                             check=False, capture_output=True, text=True, timeout=300,
                             env={**os.environ,
                                  "TUNER_CACHE_ROOT": str(DATA_ROOT / ".fetch-test")})
    if offline.returncode == 0:
        pytest.skip("this machine reaches the network: MNIST was fetched")
    assert offline.returncode == 1, offline.stderr[-2000:]
    assert "could not fetch torchvision:MNIST" in offline.stderr
    assert "Traceback" not in offline.stderr


def _through_the_service(url: str, spec: dict[str, Any]) -> Any:
    """Submit `spec` for team TEAM, run it to its end on a dispatcher; the job row."""
    from tests.test_jobs import dispatcher, job_of
    from tuner.store.auth import get_or_create_team
    from tuner.store.db import session_factory
    from tuner.store.jobs import create_job

    js = JobSpec.model_validate(spec)
    with session_factory(url)() as s:
        team = get_or_create_team(s, TEAM)
        job_id = create_job(s, team.id, js, inspect_task(js, scope=TEAM))[0].id
    # A heartbeat grace of 20 s (the service's default), not the test dispatcher's 3: two
    # ResNet-18 trials on the suite's shared cores starved a worker's heartbeat past 3 s once,
    # and its trial was failed as lost while it trained (nothing here kills a worker).
    dispatcher(url, grace_period=20).run(once=True)
    return job_of(url, job_id)


@pytest.mark.usefixtures("ray_session")
def test_resnet18_on_an_image_folder_through_the_service(migrated_url: str,
                                                          images: str) -> None:
    from tests.test_jobs import assert_consistent_with_optuna
    from tuner.recommendations import recommend
    from tuner.store.db import session_factory

    job = _through_the_service(migrated_url, image_spec(budget={"n_trials": 4,
                                                               "parallelism": 2}))
    job_id = job.id
    assert job.status == "completed", job.error
    recs = assert_consistent_with_optuna(migrated_url, job_id)
    # Which trials ASHA stops depends on which of the 2 parallel trials reaches a rung first,
    # and a sampled Adam rate may diverge: pruning itself is tested in test_search; here, every
    # trial ends in a state the service records whole, its curve up to where it stopped.
    states = [(r.state, r.detail) for r in recs]
    assert {r.state for r in recs} <= {"complete", "pruned", "diverged"}, states
    done = [r for r in recs if r.state == "complete"]
    assert done and all([s.step for s in r.steps] == [1, 2, 3] for r in done), states
    stopped = [r for r in recs if r.state != "complete"]
    assert all(r.stop_step <= 3 and [s.step for s in r.steps] == list(
        range(1, r.stop_step + 1)) for r in stopped), states
    assert job.task.model_name == "torchvision:resnet18"
    assert job.task.n_params > 11_000_000 and job.task.n_classes == 3
    with session_factory(migrated_url)() as s:
        rec = recommend(s, job.team_id, task_id=job.task_id)
    assert rec["method"] == "direct" and rec["ranking"][0]["optimizer"] == "adam"


def _broken_folder() -> str:
    """An image folder with one file that is not an image (each epoch of every trial reads
    it)."""
    root = DATA_ROOT / TEAM / "broken"
    _image_folder(root, per_class=8)
    (root / "class1" / "scan.png").write_bytes(b"not an image")
    return "broken"


UNREADABLE = ("task.dataset: 'class1/scan.png' cannot be read (UnidentifiedImageError: cannot "
              "identify image file")


@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_file_that_is_not_an_image_stops_a_local_run_at_its_first_trial(
        num_workers: int) -> None:
    """A file in the team's folder that is not an image failed every trial with PIL's
    traceback, and `tuner run` went on to the next; the run stops at the first, naming it
    (read in a DataLoader worker process too, whose error PyTorch raises again with the
    worker's traceback in its message)."""
    spec = image_spec("cnn", task={"dataset": {"name": "imagefolder", "params": {
        "path": f"{TEAM}/{_broken_folder()}", "image_size": 12}}}, budget={"n_trials": 6},
        training={"num_workers": num_workers})
    seen: list[Any] = []
    with pytest.raises(DataError) as exc:
        run_search(JobSpec.model_validate(spec), on_trial=seen.append)
    assert str(exc.value).startswith(UNREADABLE), exc.value
    assert "fix or remove it" in str(exc.value) and str(DATA_ROOT) not in str(exc.value)
    assert [(r.state, r.stop_reason) for r in seen] == [("failed", "data_error")]
    assert "Traceback" not in str(exc.value) and "\n" not in str(exc.value)  # one line


@pytest.mark.usefixtures("ray_session")
def test_a_file_that_is_not_an_image_ends_the_job_at_its_first_trial(migrated_url: str) -> None:
    """Through the service such a job ran every trial of its budget, and as many again (a failed
    trial gives its ticket back, up to n_trials failures), each failing the same way; on a large
    folder each one after reading up to that file. The first trial that cannot read the data
    ends the job, which says why; the trials beside it are stopped."""
    from tests.test_jobs import assert_consistent_with_optuna
    from tuner.store.recorder import STOPPED_FOR_DATA

    job = _through_the_service(migrated_url, image_spec(
        "cnn", task={"dataset": {"name": "imagefolder", "params": {
            "path": _broken_folder(), "image_size": 12}}},
        budget={"n_trials": 6, "parallelism": 2}))
    job_id = job.id
    assert job.status == "failed", job.error
    assert (job.error or "").startswith("the task's data cannot be read: " + UNREADABLE), \
        job.error
    assert "every trial reads the same files, so the job stopped there" in (job.error or "")
    recs = assert_consistent_with_optuna(migrated_url, job_id)
    stops = [(r.number, r.state, r.stop_reason, r.detail[:120]) for r in recs]
    assert len(recs) <= 6, stops  # the budget at most (12 failures before), the sweep's
    unreadable = [r for r in recs if r.stop_reason == "data_error"]  # at most the 2 in flight
    assert 1 <= len(unreadable) <= 2 and all(r.detail.startswith(UNREADABLE)
                                             for r in unreadable), stops
    assert all((r.state, r.stop_reason, r.detail) == ("failed", "cancelled", STOPPED_FOR_DATA)
               for r in recs if r not in unreadable), stops


def test_a_hub_id_is_never_read_from_the_workers_directory(images: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The Hugging Face libraries take a name that exists as a local folder as that folder:
    relative to the worker's working directory, outside every team's data folder."""
    (tmp_path / "secrets" / "x").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    for kind, ref in (("dataset", {"model": {"name": "mlp"}, "dataset": {"name": "hf:secrets"}}),
                      ("model", {"model": {"name": "hf:secrets"},
                                 "dataset": {"name": "imagefolder", "params": {"path": "imgs"}}})):
        with pytest.raises(SpecError, match=rf"task\.{kind}(\.name)?: hf:secrets is not in your "
                                            r"data folder or the cache"):
            inspect_task(JobSpec.model_validate({"task": ref}), scope=TEAM)


def _hub_model(hub: Path, repo: str, commit: str, seed: int) -> None:
    """What `tuner data fetch model hf:<repo>` leaves in the hub cache: a snapshot folder
    named by its commit, and `refs/main` naming that commit."""
    from tuner.references import import_torchvision

    import_torchvision()
    from transformers import ResNetConfig, ResNetForImageClassification

    folder = hub / f"models--{repo.replace('/', '--')}"
    torch.manual_seed(seed)
    ResNetForImageClassification(ResNetConfig(
        num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
        num_labels=7)).save_pretrained(folder / "snapshots" / commit)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(commit)


def _hub_dataset(hub: Path, built: Path, name: str, version: str) -> None:
    """What `tuner data fetch dataset hf:<name>` leaves in the cache for `datasets` to load
    offline: `<org>___<name>/<config>/<version>/<hash>/` with the prepared arrow file (built
    here by datasets' own parquet builder from `built`'s parquet file, then named as a hub
    dataset's would be)."""
    import json

    import datasets as hfd

    if not any(built.glob("parquet/*/*/*")):
        hfd.load_dataset("parquet", data_files={"train": str(built / "train.parquet")},
                         cache_dir=str(built))
    prepared = next(p for p in built.glob("parquet/*/*/*") if p.is_dir())
    org, base = name.split("/")
    target = hub / f"{org}___{base}" / "default" / "0.0.0" / version
    target.mkdir(parents=True)
    info = json.loads((prepared / "dataset_info.json").read_text())
    (target / "dataset_info.json").write_text(json.dumps(
        {**info, "config_name": "default", "dataset_name": base}))
    shutil.copy(prepared / "parquet-train.arrow", target / f"{base}-train.arrow")


def test_a_hub_reference_fetched_again_is_another_task(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A hub model and a hub dataset are read from the cache by name; `tuner data fetch`
    again after the repository changed upstream puts other weights (data) under that name.
    Which copy a task trained on is part of the task: another one is a new task, and a job
    whose copy changed under it refuses to train."""
    import datasets as hfd
    from PIL import Image

    from tuner.config import get_settings
    from tuner.objective import Provenance

    monkeypatch.setenv("TUNER_CACHE_ROOT", str(tmp_path / "cache"))
    get_settings.cache_clear()
    hub = tmp_path / "cache" / "hf"
    rng = np.random.default_rng(0)
    images = []
    for i in range(60):
        a = (rng.random((12, 12, 3)) * 110).astype(np.uint8)
        a[..., i % 3] += 120
        images.append(Image.fromarray(a))
    (tmp_path / "built").mkdir()
    hfd.Dataset.from_dict({"image": images, "label": [i % 3 for i in range(60)]},
                          features=hfd.Features({"image": hfd.Image(), "label": hfd.ClassLabel(
                              names=["r", "g", "b"])})
                          ).to_parquet(str(tmp_path / "built" / "train.parquet"))
    first, second = "1" * 40, "2" * 40
    _hub_model(hub, "someorg/tiny-resnet", first, seed=0)
    _hub_dataset(hub, tmp_path / "built", "someorg/cats", "a" * 40)
    raw = image_spec("hf:someorg/tiny-resnet", budget={"n_trials": 1},
                     space={"optimizers": ["adam"], "schedules": ["constant"], "overrides": {}},
                     training={"epochs": 2, "batch_size": 16})
    raw["task"]["dataset"] = {"name": "hf:someorg/cats", "params": {"image_size": 16}}
    try:
        f = inspect_task(JobSpec.model_validate(raw), scope=TEAM)
        assert f.model_digest == first[:16]  # the snapshot's commit, as the hub shows it
        assert f.data_digest and (f.input_shape, f.n_classes) == ([3, 16, 16], 3)
        assert inspect_task(JobSpec.model_validate(raw), scope=TEAM).fingerprint == f.fingerprint
        made = Provenance(f.data_digest, f.model_digest)
        task = JobSpec.model_validate(raw).task
        made.check(task, TEAM)
        # trains from the cache, offline
        (rec,) = run_search(JobSpec.model_validate(raw)).records
        assert rec.state == "complete" and len(rec.steps) == 2, rec.detail

        _hub_model(hub, "someorg/tiny-resnet", second, seed=1)  # fetched again: new weights
        refetched = inspect_task(JobSpec.model_validate(raw), scope=TEAM)
        assert refetched.model_digest == second[:16] and refetched.fingerprint != f.fingerprint
        with pytest.raises(DataError, match=r"task\.model: the cached copy of "
                                            r"hf:someorg/tiny-resnet \(another hub revision was "
                                            r"fetched\) changed since the job was submitted"):
            made.check_model(task, TEAM)

        _hub_dataset(hub, tmp_path / "built", "someorg/cats", "b" * 40)  # the newest loads
        os.utime(hub / "someorg___cats" / "default" / "0.0.0" / ("b" * 40), (2e9, 2e9))
        again = inspect_task(JobSpec.model_validate(raw), scope=TEAM)
        assert again.data_digest != f.data_digest and again.fingerprint != refetched.fingerprint
        with pytest.raises(DataError, match=r"task\.dataset: the cached copy of hf:someorg/cats "
                                            r"\(another hub revision was fetched\) changed"):
            made.check_data(task, TEAM)
        # a newer folder `datasets` would not load without a config asked for (its info names
        # another config than its folder) is not the copy a run reads
        other = hub / "someorg___cats" / "default-0a1b" / "0.0.0" / ("c" * 40)
        other.mkdir(parents=True)
        (other / "dataset_info.json").write_text('{"config_name": "default"}')
        os.utime(other, (3e9, 3e9))
        assert inspect_task(JobSpec.model_validate(raw), scope=TEAM).data_digest \
            == again.data_digest

        # a pretrained timm model is identified by the snapshot of its weights on the hub
        from tuner.references import hub_revision

        assert hub_revision("model", "timm:resnet18", {"pretrained": True}) is None
        (hub / "models--timm--resnet18.a1_in1k" / "refs").mkdir(parents=True)
        (hub / "models--timm--resnet18.a1_in1k" / "refs" / "main").write_text("3" * 40)
        (hub / "models--timm--resnet18.a1_in1k" / "snapshots" / ("3" * 40)).mkdir(parents=True)
        (hub / "models--timm--resnet18.a1_in1k" / "snapshots" / ("3" * 40) / "config.json"
         ).write_text("{}")
        assert hub_revision("model", "timm:resnet18", {"pretrained": True}) == "3" * 16
        assert hub_revision("model", "timm:resnet18", {}) is None  # random weights: code only
    finally:
        get_settings.cache_clear()
