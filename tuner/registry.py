"""Name → factory tables for models and datasets, extended by installed plugins.

Built-ins are referenced as `module:attr` strings and imported on first use, so listing names
stays cheap. Plugins come from the entry-point groups `tuner.models` and `tuner.datasets`:
installed code only, never an import path taken from a request. Standard references are a
prefix and a name (`torchvision:resnet18`, `hf:<hub id>`: `tuner.references`): the factory of
the prefix gets the name as its first argument.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import ModelError, UnknownName

if TYPE_CHECKING:
    from tuner.spec import TaskSpec


@dataclass
class Entry:
    name: str
    target: str  # "module:attr"
    help: str = ""
    source: str = "builtin"  # or the plugin distribution's name
    version: str = ""  # a plugin distribution's version
    _loaded: Callable[..., Any] | None = field(default=None, repr=False)

    def code_digest(self) -> str:
        """What a plugin's code is: the SHA-256 (first 16 hex digits) of its distribution's
        name and version and of the source file of the module its factory lives in. An edit
        to that file, or a new release, is other code; an edit to a module it imports is not
        seen (name a version in the params, or release, when such an edit changes training)."""
        module = importlib.import_module(self.target.partition(":")[0])
        h = hashlib.sha256(f"{self.source}=={self.version}\0".encode())
        path = getattr(module, "__file__", None)
        if path:
            h.update(Path(path).read_bytes())
        return h.hexdigest()[:16]

    def load(self) -> Callable[..., Any]:
        if self._loaded is None:
            module, _, attr = self.target.partition(":")
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
            self._loaded = obj
        return self._loaded


class Registry:
    """A named table of factories: built-ins first, then the entry-point group's plugins."""

    def __init__(self, kind: str, group: str, builtins: list[Entry],
                 prefixes: Sequence[Entry] = ()) -> None:
        self.kind = kind
        self.group = group
        self._builtins = {e.name: e for e in builtins}
        # "torchvision:<name>" -> the factory taking the name first
        self._prefixes = {e.name.partition(":")[0]: e for e in prefixes}
        self._plugins: dict[str, Entry] | None = None

    def _discover(self) -> dict[str, Entry]:
        if self._plugins is None:
            found: dict[str, Entry] = {}
            for ep in entry_points(group=self.group):
                if ep.name in self._builtins:
                    continue  # a plugin never shadows a built-in
                dist = ep.dist.name if ep.dist is not None else "plugin"
                release = ep.dist.version if ep.dist is not None else ""
                found[ep.name] = Entry(ep.name, ep.value, f"plugin from {dist}", dist, release)
            self._plugins = found
        return self._plugins

    def entries(self) -> dict[str, Entry]:
        """Built-ins, plugins and the reference prefixes (listed as `prefix:<name>`)."""
        return {**self._builtins, **self._discover(),
                **{e.name: e for e in self._prefixes.values()}}

    def names(self) -> list[str]:
        return sorted(self.entries())

    def check(self, name: str) -> None:
        if name in self._builtins or name in self._discover():
            return
        prefix, sep, rest = name.partition(":")
        if sep and prefix in self._prefixes and rest and "<" not in rest:
            return
        if sep and self._prefixes:  # an unknown prefix: name the valid ones
            raise UnknownName(f"task.{self.kind}.name", f"{self.kind} reference prefix",
                              prefix + ":", [f"{p}:" for p in self._prefixes])
        raise UnknownName(f"task.{self.kind}.name", self.kind, name, self.names())

    def get(self, name: str) -> Callable[..., Any]:
        self.check(name)
        prefix, sep, rest = name.partition(":")
        if sep and prefix in self._prefixes:
            return functools.partial(self._prefixes[prefix].load(), rest)
        return self.entries()[name].load()

    def refresh(self) -> None:
        self._plugins = None

    def code_digest(self, name: str) -> str | None:
        """A plugin's `Entry.code_digest`; for a reference (`prefix:name`) the digest of the
        release of the library that builds it (a torchvision or timm upgrade may change a
        model's default weights, a transformers upgrade its code); None for a built-in (the
        service's own code: `tuner.spec.TRAINING_FORMAT`)."""
        prefix, sep, _ = name.partition(":")
        if sep and prefix in self._prefixes:
            libraries = REFERENCE_LIBRARIES[(self.kind, prefix)]
            return hashlib.sha256(" ".join(f"{lib}=={_version(lib)}" for lib in libraries)
                                  .encode()).hexdigest()[:16]
        entry = self._discover().get(name)
        return entry.code_digest() if entry is not None else None


# The libraries whose release decides what a standard reference is.
REFERENCE_LIBRARIES: dict[tuple[str, str], tuple[str, ...]] = {
    ("model", "torchvision"): ("torchvision",), ("model", "timm"): ("timm",),
    ("model", "hf"): ("transformers",), ("dataset", "torchvision"): ("torchvision",),
    ("dataset", "hf"): ("datasets",),
}


@functools.cache
def _version(distribution: str) -> str:
    """A distribution's release, read once per process: the library a process imported does not
    change under it."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "absent"


def check_code(task: TaskSpec, expected: str | None) -> None:
    """Refuse to run a job's trials with other plugin code than its task was made with
    (`expected`, the task's `code_digest`; None: nothing to check): a worker with another
    release of the team's package (or of torchvision, timm, transformers, datasets behind a
    reference) would store its runs as repeats of runs they are not."""
    if expected is None:
        return
    now = task.code_digest()
    if now != expected:
        raise ModelError(f"task: the plugin code on this machine (the team's plugins and the "
                         f"libraries of standard references; digest {now}) is not the code the "
                         f"job was submitted with ({expected}): install the same releases where "
                         f"the service checks jobs and on every worker, then submit the job "
                         f"again (other code is a new task)")


def plugins_digest(model: str | None, dataset: str | None, trainable: str | None) -> str | None:
    """The code a task runs beyond the service's own, as one digest: the team's plugins (its
    model, dataset or trainable) and the libraries behind standard references; None when it
    runs none."""
    parts = [f"{kind}:{d}" for kind, reg, name in (("model", MODELS, model),
                                                   ("dataset", DATASETS, dataset),
                                                   ("trainable", TRAINABLES, trainable))
             if name and (d := reg.code_digest(name))]
    if not parts:
        return None
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


MODELS = Registry("model", "tuner.models", prefixes=[
    Entry("torchvision:<name>", "tuner.references:torchvision_model",
          "torchvision.models by name, head sized to the data; params: pretrained (extra: vision)",
          "reference"),
    Entry("timm:<name>", "tuner.references:timm_model",
          "timm models by name, head and input channels sized to the data; params: pretrained "
          "(extra: vision)", "reference"),
    Entry("hf:<name>", "tuner.references:hf_model",
          "Hugging Face image classifier: hub id (cached) or folder in your data folder; params: "
          "pretrained (extra: hf)", "reference"),
], builtins=[
    Entry("linear", "tuner.models:linear", "logistic / linear regression (one linear layer)"),
    Entry("mlp", "tuner.models:mlp", "multi-layer perceptron; params: hidden=[128], dropout=0"),
    Entry("cnn", "tuner.models:cnn", "small conv net for image-shaped input (C, H, W); "
          "params: channels=[16, 32]"),
    Entry("transformer", "tuner.models:transformer", "small encoder for sequence input (L, d); "
          "params: d_model=32, heads=4, layers=2"),
])

# A team's own training loop (tuner.trainable): installed entry points only, no built-ins.
TRAINABLES = Registry("trainable", "tuner.trainables", builtins=[])

DATASETS = Registry("dataset", "tuner.datasets", prefixes=[
    Entry("torchvision:<name>", "tuner.references:torchvision_dataset",
          "torchvision.datasets by name (MNIST, CIFAR10...), from the cache; params: image_size, "
          "grayscale, augment (extra: vision)", "reference"),
    Entry("hf:<name>", "tuner.references:hf_dataset",
          "Hugging Face dataset: hub id (cached) or folder in your data folder; params: split, x, "
          "y, image_size, augment (extra: hf)", "reference"),
], builtins=[
    Entry("digits", "tuner.datasets:digits", "scikit-learn 8x8 digits, 10 classes, (1, 8, 8)"),
    Entry("iris", "tuner.datasets:iris", "scikit-learn iris, 3 classes, 4 features"),
    Entry("wine", "tuner.datasets:wine", "scikit-learn wine, 3 classes, 13 features"),
    Entry("breast_cancer", "tuner.datasets:breast_cancer",
          "scikit-learn breast cancer, 2 classes, 30 features"),
    Entry("diabetes", "tuner.datasets:diabetes", "scikit-learn diabetes, regression, 10 features"),
    Entry("classification", "tuner.datasets:classification",
          "synthetic classification (make_classification); params: n_samples, n_features, "
          "n_classes"),
    Entry("regression", "tuner.datasets:regression",
          "synthetic regression (make_regression); params: n_samples, n_features, noise"),
    Entry("quadratic", "tuner.datasets:quadratic",
          "synthetic least squares with a known condition number; params: condition, n_features"),
    Entry("file", "tuner.datasets:from_file",
          ".npz / .csv / .parquet under TUNER_DATA_ROOT; params: path, target, task, drop"),
    Entry("imagefolder", "tuner.references:imagefolder",
          "<path>/<class>/<image> folders in your data folder, read from disk; params: path, "
          "image_size=32, grayscale, augment (extra: vision)"),
])
