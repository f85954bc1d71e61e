"""Standard references: torchvision, timm and Hugging Face models and datasets, image folders.

A spec names them with a prefix, no plugin needed:

    model:   torchvision:<name> | timm:<name> | hf:<hub id or path in your data folder>
    dataset: torchvision:<Name> | hf:<hub id or path in your data folder> | imagefolder

Models get their classifier head sized to the data (`num_classes`); `pretrained: true` loads
weights that `tuner data fetch` put in the cache first. Datasets read from disk sample by sample
(`DiskSplit`): they train through a DataLoader, with standard image augmentation as params.

Trials never download. `tuner data fetch REF` fills the cache (`TUNER_CACHE_ROOT`, default
`<TUNER_DATA_ROOT>/.tuner-cache`) on a machine with network access; a reference whose data is not
there fails when it is submitted, with an error naming that command.

The libraries are optional extras (`pip install 'optimizer-tuner[vision]'` for torchvision,
timm and Pillow; `[hf]` for transformers and datasets) and imported only when a reference
needs them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tuner.datasets import DataInfo, DiskSplit, data_path, split_indices
from tuner.errors import DataError, ModelError

# prefix -> (the extra that installs it, the modules it needs); what each prefix is, is said
# once, in the registry's help (tuner.registry)
MODEL_PREFIXES: dict[str, tuple[str, tuple[str, ...]]] = {
    "torchvision": ("vision", ("torchvision",)),
    "timm": ("vision", ("timm", "torchvision")),
    "hf": ("hf", ("transformers",)),
}
DATASET_PREFIXES: dict[str, tuple[str, tuple[str, ...]]] = {
    "torchvision": ("vision", ("torchvision", "PIL")),
    "hf": ("hf", ("datasets",)),
}
IMAGE_MEAN, IMAGE_STD = 0.5, 0.5


# where fetched data lives -------------------------------------------------------------------

def cache_root() -> Path:
    """Fetched datasets, weights and hub files: readable by every team (public data)."""
    from tuner.config import get_settings

    s = get_settings()
    return (s.cache_root or s.data_root / ".tuner-cache").resolve()


def hub_dir() -> Path:
    """Hugging Face hub files (transformers, datasets, timm weights)."""
    return cache_root() / "hf"


def torchvision_dir() -> Path:
    """torchvision datasets."""
    return cache_root() / "torchvision"


def checkpoints_dir() -> Path:
    """torchvision weights (torch hub's checkpoints layout)."""
    return cache_root() / "torch" / "hub" / "checkpoints"


def fetch_hint(ref: str, kind: str) -> str:
    return f"run `tuner data fetch {kind} {ref}` on a machine with network access"


def require(prefix: str, kind: str) -> None:
    """The prefix's libraries are installed (found, not imported), or a clear error."""
    table = MODEL_PREFIXES if kind == "model" else DATASET_PREFIXES
    extra, modules = table[prefix]
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        err = ModelError if kind == "model" else DataError
        raise err(f"task.{kind}.name: {prefix}: references need {', '.join(missing)}, which "
                  f"is not installed here; install the extra: pip install "
                  f"'optimizer-tuner[{extra}]'")


def import_torchvision() -> Any:
    """torchvision, also on a CPU-only torch. PyPI's torchvision wheel is built against CUDA
    torch: beside the CPU build its C++ ops (nms, roi_align: detection only) cannot load, and
    its import then fails on registering fake kernels for two of them. Declaring those two op
    schemas first lets the pure-Python part (models, transforms, datasets) import; the C++
    ops stay unavailable, which classification never uses. With a matching build nothing is
    changed."""
    try:
        import torchvision
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
        for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        for op in ("nms", "qnms"):
            with contextlib.suppress(RuntimeError):  # already declared
                torch.library.define(f"torchvision::{op}",
                                     "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        import torchvision
    return torchvision


def import_torchvision_if_installed() -> None:
    """`import_torchvision` when torchvision is installed: transformers and timm import it."""
    if importlib.util.find_spec("torchvision") is not None:
        import_torchvision()


# models -------------------------------------------------------------------------------------

def _image_channels(info: DataInfo, ref: str) -> int:
    if len(info.input_shape) != 3:
        raise ModelError(f"task.model: {ref} needs image input (C, H, W); this dataset gives "
                         f"{tuple(info.input_shape)}")
    if info.kind != "classification":
        raise ModelError(f"task.model: {ref} is an image classifier; this dataset is "
                         f"{info.kind}")
    return info.input_shape[0]


class _RepeatChannels(nn.Module):
    """Grey images into a 3-channel model."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, 3, -1, -1)


def _resize_head(model: nn.Module, n_outputs: int, ref: str) -> nn.Module:
    """Replace the last linear layer (the classifier) by one with `n_outputs` outputs."""
    last: tuple[nn.Module, str, nn.Linear] | None = None
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                last = (parent, child_name, child)
    if last is None:
        raise ModelError(f"task.model: {ref} has no linear classifier to size to the data")
    parent, child_name, lin = last
    if lin.out_features != n_outputs:
        setattr(parent, child_name, nn.Linear(lin.in_features, n_outputs))
    return model


def torchvision_model(name: str, info: DataInfo, pretrained: bool = False,
                      **kwargs: Any) -> nn.Module:
    """`torchvision:<name>` with `num_classes` from the data; `pretrained: true` loads the
    default weights from the cache and replaces the classifier."""
    ref = f"torchvision:{name}"
    require("torchvision", "model")
    channels = _image_channels(info, ref)
    tv = import_torchvision()
    if name not in tv.models.list_models():
        from tuner.errors import unknown

        raise ModelError("task.model.name: " + unknown("torchvision model", name,
                                                        sorted(tv.models.list_models())))
    if pretrained:
        weights = _torchvision_weights(name)
        model = tv.models.get_model(name, weights=None, **kwargs)
        model.load_state_dict(weights.get_state_dict(model_dir=str(checkpoints_dir()),
                                                     progress=False))
        model = _resize_head(model, info.n_outputs, ref)
    else:
        model = tv.models.get_model(name, weights=None, num_classes=info.n_outputs, **kwargs)
    return nn.Sequential(_RepeatChannels(), model) if channels == 1 else model


def timm_model(name: str, info: DataInfo, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """`timm:<name>` with `num_classes` and `in_chans` from the data."""
    ref = f"timm:{name}"
    require("timm", "model")
    channels = _image_channels(info, ref)
    import_torchvision()
    import timm

    if name not in timm.list_models():
        raise ModelError(f"task.model.name: unknown timm model {name!r}; `timm.list_models()` "
                         "lists the valid names")
    if pretrained:
        _timm_weights(name)
    model: nn.Module = timm.create_model(name, pretrained=pretrained,
                                         num_classes=info.n_outputs, in_chans=channels,
                                         cache_dir=hub_dir(), **kwargs)
    return model


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


def _not_cached(ref: str) -> ModelError:
    return ModelError(f"task.model.params.pretrained: the weights of {ref} are not in the "
                      f"cache; {fetch_hint(ref, 'model')}")


def _torchvision_weights(name: str) -> Any:
    """The default weights of torchvision model `name`, present in `checkpoints_dir()`."""
    tv = import_torchvision()
    weights = tv.models.get_model_weights(name).DEFAULT
    if not (checkpoints_dir() / Path(weights.url).name).is_file():
        raise _not_cached(f"torchvision:{name}")
    return weights


def _in_hub_cache(repo: str, files: Sequence[str]) -> Path | None:
    """The first of `files` the hub cache holds for `repo` (in the snapshot its `refs/main`
    names, as every library reading the cache offline resolves it), or None."""
    from huggingface_hub import try_to_load_from_cache

    for f in files:
        found = try_to_load_from_cache(repo, f, cache_dir=hub_dir())
        if isinstance(found, str):
            return Path(found)
    return None


def _hub_cached(repo: str | None) -> bool:
    return repo is not None and _in_hub_cache(repo, WEIGHT_FILES) is not None


def _timm_weights(name: str) -> None:
    import_torchvision()
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    if not _hub_cached(getattr(cfg, "hf_hub_id", None) if cfg is not None else None):
        raise _not_cached(f"timm:{name}")


def _hf_weights(name: str) -> None:
    source = Path(_hf_source(name, "model"))
    found = any((source / f).is_file() for f in WEIGHT_FILES) if source.is_absolute() \
        else _hub_cached(name)
    if not found:
        ref = f"hf:{name}"
        raise ModelError(f"task.model.name: {ref} is not in your data folder or the cache "
                         f"(no weights; `pretrained: false` needs only its config); "
                         f"{fetch_hint(ref, 'model')}")


def _snapshot(repo: str) -> str | None:
    """The commit of the hub snapshot the cache resolves `repo` to; None when nothing of it
    is cached."""
    found = _in_hub_cache(repo, ("config.json", *WEIGHT_FILES))
    return None if found is None else found.parent.name


def _cached_dataset(name: str) -> str | None:
    """The cached version a hub dataset loads from offline: `<config>/<version>/<hash>` of
    the newest folder under the dataset's name in the cache whose `dataset_info.json` names
    its config folder, the one `datasets` picks when no config is asked for (its hash names
    the hub revision it was fetched at); None when none is cached."""
    import json

    from datasets.naming import camelcase_to_snakecase

    *org, base = name.split("/")
    root = hub_dir() / "___".join([*org, camelcase_to_snakecase(base)])

    def loadable(p: Path) -> bool:
        try:
            info = json.loads((p / "dataset_info.json").read_text())
        except (OSError, ValueError):
            return False
        return isinstance(info, dict) and info.get("config_name") == p.parts[-3]

    found = [p for p in root.glob("*/*/*") if p.is_dir() and loadable(p)]
    if not found:
        return None
    return max(found, key=lambda p: p.stat().st_mtime).relative_to(root).as_posix()


def hub_revision(kind: str, name: str, params: dict[str, Any]) -> str | None:
    """Which fetched copy of a hub reference a run reads from the cache: the snapshot commit
    of an `hf:` model (or of a `timm:` model's pretrained weights), the cached version of an
    `hf:` dataset (first 16 hex digits; a dataset's folder name hashed). Part of its task's
    identity: `tuner data fetch` again after the repository changed upstream gives other
    weights or data under the same name, which are never pooled with the old ones. None: not
    a hub reference, not cached (the submission fails elsewhere), or its library missing.
    Call it for a name that is not a folder in the team's data."""
    import hashlib

    prefix, _, rest = name.partition(":")
    try:
        if prefix == "hf" and kind == "model":
            found = _snapshot(rest)
        elif prefix == "timm" and kind == "model" and params.get("pretrained"):
            import_torchvision()
            import timm

            cfg = timm.models.get_pretrained_cfg(rest)
            repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
            found = _snapshot(repo) if repo else None
        elif prefix == "hf" and kind == "dataset":
            version = _cached_dataset(rest)
            found = None if version is None else hashlib.sha256(version.encode()).hexdigest()
        else:
            return None
    except (ImportError, ValueError, RuntimeError, OSError):
        return None  # its library missing, not a valid hub id, or its cache changing under us
    return None if found is None else found[:16]


def check_available(kind: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The submit-time check of a reference, without loading it: its libraries are installed
    and, for `pretrained`, its weights are on disk. Returns the params to build it with on the
    meta device (without its weights)."""
    prefix, _, rest = name.partition(":")
    require(prefix, kind)
    if kind != "model" or not params.get("pretrained", prefix == "hf"):
        return params
    {"torchvision": _torchvision_weights, "timm": _timm_weights, "hf": _hf_weights}[prefix](rest)
    return {**params, "pretrained": False}


class _Logits(nn.Module):
    """A transformers image classifier as a plain module: pixels in, logits out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model(pixel_values=x).logits
        return out


def hf_model(name: str, info: DataInfo, pretrained: bool = True, **kwargs: Any) -> nn.Module:
    """`hf:<hub id or folder>`: an image-classification model, its head sized to the data
    (`ignore_mismatched_sizes`). A folder in the team's data folder is read from there; a hub
    id from the cache only. `pretrained: false` builds it from its config, weights random."""
    ref = f"hf:{name}"
    require("hf", "model")
    channels = _image_channels(info, ref)
    import_torchvision_if_installed()  # transformers imports it when present
    from transformers import AutoConfig, AutoModelForImageClassification

    source = _hf_source(name, "model")
    common: dict[str, Any] = {"cache_dir": hub_dir(), "local_files_only": True}
    try:
        with _hf_offline():
            config = AutoConfig.from_pretrained(source, num_labels=info.n_outputs, **common)
            if getattr(config, "num_channels", channels) != channels:
                config.num_channels = channels
            if pretrained:
                model = AutoModelForImageClassification.from_pretrained(
                    source, config=config, ignore_mismatched_sizes=True, **common, **kwargs)
            else:
                model = AutoModelForImageClassification.from_config(  # type: ignore[no-untyped-call]
                    config, **kwargs)
    except OSError as exc:
        raise ModelError(f"task.model.name: {ref} is not in your data folder or the cache; "
                         f"{fetch_hint(ref, 'model')} ({str(exc).splitlines()[0][:200]})") from None
    except ValueError as exc:  # not an image classifier
        raise ModelError(f"task.model.name: {ref} is not an image-classification model: "
                         f"{str(exc)[:200]}") from None
    return _Logits(model)


def _hf_source(name: str, kind: str) -> str:
    """A folder in the team's data folder when one is there by that name, else the hub id.
    A hub id is never read as a local path: the libraries would take one relative to the
    worker's working directory, outside every team's folder."""
    err = ModelError if kind == "model" else DataError
    if name.startswith("/") or ".." in Path(name).parts:
        raise err(f"task.{kind}.name: hf:{name}: give a hub id (org/name) or a folder relative "
                  "to your data folder")
    try:
        return str(data_path(name, field=f"task.{kind}.name", folder=True))
    except DataError:
        if Path(name).exists():
            raise err(f"task.{kind}.name: hf:{name} is not in your data folder or the cache; "
                      f"{fetch_hint(f'hf:{name}', kind)}") from None
        return name


# datasets -----------------------------------------------------------------------------------

AUGMENTATIONS = ("hflip", "vflip", "crop", "rotate", "color")


def image_transforms(size: int | None, channels: int, augment: Sequence[str],
                     train: bool) -> Callable[[Any], torch.Tensor]:
    """PIL image -> normalized tensor (C, size, size); `augment` on the training split only."""
    tv = import_torchvision()
    t = tv.transforms
    unknown_aug = [a for a in augment if a not in AUGMENTATIONS]
    if unknown_aug:
        raise DataError(f"task.dataset.params.augment: unknown {unknown_aug[0]!r}; valid "
                        f"choices: {', '.join(AUGMENTATIONS)}")
    steps: list[Any] = [t.Grayscale(1) if channels == 1 else t.Lambda(_rgb)]
    if size:
        steps.append(t.Resize((size, size)))
    if train:
        table = {"hflip": t.RandomHorizontalFlip(), "vflip": t.RandomVerticalFlip(),
                 "crop": t.RandomCrop(size, padding=max(1, size // 8)) if size else None,
                 "rotate": t.RandomRotation(15), "color": t.ColorJitter(0.2, 0.2, 0.2)}
        for a in augment:
            if table[a] is None:
                raise DataError("task.dataset.params.augment: crop needs image_size")
            steps.append(table[a])
    steps += [t.ToTensor(), t.Normalize([IMAGE_MEAN] * channels, [IMAGE_STD] * channels)]
    composed: Callable[[Any], torch.Tensor] = t.Compose(steps)
    return composed


def _rgb(img: Any) -> Any:
    return img.convert("RGB")


class Samples(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Examples `indices` of `source` (whose item i is (x, target)), each x transformed when
    read: decoding and augmentation happen in the DataLoader's workers."""

    def __init__(self, source: Any, indices: np.ndarray, transform: Callable[[Any], Any],
                 target_dtype: torch.dtype = torch.long) -> None:
        self.source, self.indices, self.transform = source, indices, transform
        self.target_dtype = target_dtype

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = int(self.indices[i])
        try:
            x, y = self.source[j]
        except Exception as exc:  # a file that is not an image, cut short, unreadable
            root = getattr(self.source, "root", None)
            why = str(exc).replace(f"{root}{os.sep}", "") if root else str(exc)
            raise DataError(f"task.dataset: {self._name(j)} cannot be read "
                            f"({type(exc).__name__}: {why}); fix or remove it") from exc
        return self.transform(x), torch.as_tensor(y, dtype=self.target_dtype)

    def _name(self, j: int) -> str:
        """Example `j` as the team knows it: its file under the folder, when there is one."""
        samples, root = getattr(self.source, "samples", None), getattr(self.source, "root", None)
        if samples is not None and root is not None:
            return repr(os.path.relpath(samples[j][0], root))
        return f"example {j}"


class _Columns:
    """Item i of a Hugging Face dataset as (x, y)."""

    def __init__(self, ds: Any, x: str, y: str) -> None:
        self.ds, self.x, self.y = ds, x, y

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        row = self.ds[i]
        return row[self.x], row[self.y]


def _as_tensor(x: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32))


def _image_split(source: Any, targets: np.ndarray, classes: int, seed: int,
                 val_fraction: float, image_size: int | None, grayscale: bool,
                 augment: Sequence[str], first: Any) -> DiskSplit:
    channels = 1 if grayscale else 3
    train_t = image_transforms(image_size, channels, augment, train=True)
    val_t = image_transforms(image_size, channels, (), train=False)
    idx_train, idx_val = split_indices(targets, seed, val_fraction, stratify=True)
    shape = tuple(val_t(first).shape)
    info = DataInfo(shape, classes, "classification", classes, len(idx_train), len(idx_val))
    return DiskSplit(Samples(source, idx_train, train_t), Samples(source, idx_val, val_t), info,
                     labels=(targets[idx_train], targets[idx_val]))


def imagefolder(seed: int = 0, path: str = "", image_size: int | None = 32,
                grayscale: bool = False, augment: Sequence[str] = (),
                val_fraction: float = 0.2) -> DiskSplit:
    """A folder of class folders of images (`<path>/<class>/<image>`) in the team's data
    folder, read from disk as it trains."""
    require("torchvision", "dataset")
    if not path:
        raise DataError("task.dataset.params.path: required for imagefolder (a folder of "
                        "class folders in your data folder)")
    root = data_path(path, folder=True)
    tv = import_torchvision()
    try:
        folder = tv.datasets.ImageFolder(str(root))
    except (FileNotFoundError, OSError) as exc:
        raise DataError(f"task.dataset.params.path: {path!r} has no class folders with "
                        f"images: {str(exc).replace(str(root), path)[:200]}") from None
    if len(folder.classes) < 2:
        raise DataError(f"task.dataset.params.path: {path!r} has {len(folder.classes)} class "
                        "folder(s); classification needs at least 2")
    first = folder.loader(folder.samples[0][0])
    return _image_split(folder, np.asarray(folder.targets), len(folder.classes),
                        seed, val_fraction, image_size, grayscale, augment, first)


def torchvision_dataset(name: str, seed: int = 0, image_size: int | None = None,
                        grayscale: bool | None = None, augment: Sequence[str] = (),
                        val_fraction: float = 0.2) -> DiskSplit:
    """`torchvision:<Name>`: its training split from the cache, validation held out of it
    (the test split stays untouched)."""
    ref = f"torchvision:{name}"
    require("torchvision", "dataset")
    tv = import_torchvision()
    cls = getattr(tv.datasets, name, None)
    valid = sorted(n for n in tv.datasets.__all__ if n[0].isupper() and n not in (
        "ImageFolder", "DatasetFolder", "VisionDataset", "FakeData"))
    if cls is None or name not in valid:
        from tuner.errors import unknown

        raise DataError("task.dataset.name: " + unknown("torchvision dataset", name, valid))
    try:
        ds = _torchvision_train(cls, torchvision_dir(), download=False)
    except RuntimeError as exc:  # "Dataset not found or corrupted"
        raise DataError(f"task.dataset.name: {ref} is not in the cache "
                        f"({str(exc)[:120]}); {fetch_hint(ref, 'dataset')}") from None
    targets = getattr(ds, "targets", None)
    targets = np.asarray(targets if targets is not None else [ds[i][1] for i in range(len(ds))])
    first = ds[0][0]
    if grayscale is None:
        grayscale = getattr(first, "mode", "RGB") == "L"
    classes = len(getattr(ds, "classes", None) or np.unique(targets))
    return _image_split(ds, targets, classes, seed, val_fraction, image_size, grayscale,
                        augment, first)


def _torchvision_train(cls: Any, root: Path, download: bool) -> Any:
    try:
        return cls(str(root), train=True, download=download)
    except TypeError:
        return cls(str(root), split="train", download=download)


def hf_dataset(name: str, seed: int = 0, split: str = "train", x: str | None = None,
               y: str = "label", image_size: int | None = 32, grayscale: bool = False,
               augment: Sequence[str] = (), val_fraction: float = 0.2) -> DiskSplit:
    """`hf:<hub id or folder>`: a saved dataset (`save_to_disk`) or a data folder in the
    team's data folder, or a hub dataset from the cache. `x`: the input column (an image, or
    numbers), default `image` when there is one; `y`: the label column."""
    ref = f"hf:{name}"
    require("hf", "dataset")
    import datasets as hfd

    source = _hf_source(name, "dataset")
    try:
        if any((Path(source) / f).is_file() for f in ("dataset_dict.json", "state.json")):
            loaded = hfd.load_from_disk(source)
            ds = loaded[split] if isinstance(loaded, hfd.DatasetDict) else loaded
        else:
            with _hf_offline():
                ds = hfd.load_dataset(source, split=split, cache_dir=str(hub_dir()))
    except KeyError:
        raise DataError(f"task.dataset.params.split: {ref} has no split {split!r}") from None
    except (FileNotFoundError, ConnectionError, ValueError) as exc:
        raise DataError(f"task.dataset.name: {ref} is not in your data folder or the cache; "
                        f"{fetch_hint(ref, 'dataset')} ({str(exc).splitlines()[0][:160]})") \
            from None
    columns = list(ds.column_names)
    x = x or ("image" if "image" in columns else "img" if "img" in columns else None)
    for field, col in (("x", x), ("y", y)):
        if col is None or col not in columns:
            raise DataError(f"task.dataset.params.{field}: {ref} has no column {col!r}; "
                            f"valid choices: {', '.join(columns)}")
    assert x is not None
    feature = ds.features[y]
    targets = np.asarray(ds[y])
    if hasattr(feature, "num_classes"):
        classes = int(feature.num_classes)
    elif np.issubdtype(targets.dtype, np.integer):
        classes = int(targets.max()) + 1
    else:
        raise DataError(f"task.dataset.params.y: {ref} column {y!r} holds {feature}; hf "
                        "datasets train as classification: give an integer label column")
    columns_view = _Columns(ds, x, y)
    if type(ds.features[x]).__name__ == "Image":
        return _image_split(columns_view, targets, classes, seed, val_fraction,
                            image_size, grayscale, augment, ds[0][x])
    idx_train, idx_val = split_indices(targets, seed, val_fraction, stratify=True)
    shape = tuple(_as_tensor(ds[0][x]).shape)
    if not shape:
        raise DataError(f"task.dataset.params.x: {ref} column {x!r} holds one number per "
                        "example; give a column of arrays (or images)")
    info = DataInfo(shape, classes, "classification", classes, len(idx_train), len(idx_val))
    return DiskSplit(Samples(columns_view, idx_train, _as_tensor),
                     Samples(columns_view, idx_val, _as_tensor), info,
                     labels=(targets[idx_train], targets[idx_val]))


class _hf_offline:
    """Hugging Face's libraries without network for one call: a trial never downloads (and
    a missing file fails at once instead of after the hub client's retries)."""

    _FLAGS = (("huggingface_hub.constants", "HF_HUB_OFFLINE"),
              ("datasets.config", "HF_HUB_OFFLINE"), ("datasets.config", "HF_DATASETS_OFFLINE"))

    def __enter__(self) -> None:
        import importlib

        self._prev: list[tuple[Any, str, Any]] = []
        for module, flag in self._FLAGS:
            if importlib.util.find_spec(module.split(".")[0]) is None:
                continue
            mod = importlib.import_module(module)
            self._prev.append((mod, flag, getattr(mod, flag)))
            setattr(mod, flag, True)

    def __exit__(self, *exc: object) -> None:
        for mod, flag, value in self._prev:
            setattr(mod, flag, value)


# fetch --------------------------------------------------------------------------------------

def fetch(kind: str, ref: str) -> Path:
    """Download `ref` (a model's weights or a dataset) into the cache; where it went."""
    prefix, sep, name = ref.partition(":")
    table = MODEL_PREFIXES if kind == "model" else DATASET_PREFIXES
    if not sep or prefix not in table:
        raise (ModelError if kind == "model" else DataError)(
            f"{kind} reference {ref!r}: valid prefixes: "
            f"{', '.join(p + ':' for p in sorted(table))}")
    require(prefix, kind)
    if kind == "dataset" and prefix == "torchvision":
        tv = import_torchvision()
        cls = getattr(tv.datasets, name, None)
        if cls is None:
            raise DataError(f"unknown torchvision dataset {name!r}")
        _torchvision_train(cls, torchvision_dir(), download=True)
        return torchvision_dir()
    if kind == "dataset":
        import datasets as hfd

        hfd.load_dataset(name, cache_dir=str(hub_dir()))
        return hub_dir()
    if prefix == "torchvision":
        tv = import_torchvision()
        weights = tv.models.get_model_weights(name).DEFAULT
        weights.get_state_dict(model_dir=str(checkpoints_dir()), progress=True)
        return cache_root() / "torch"
    if prefix == "timm":
        import_torchvision()
        import timm

        timm.create_model(name, pretrained=True, cache_dir=hub_dir())
        return hub_dir()
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name, cache_dir=hub_dir()))
