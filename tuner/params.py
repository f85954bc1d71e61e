"""The parameters of the built-in models and datasets, checked against their signatures before
they are built: a width of "64" (a string, read as the layers 6 and 4), a dict for a list of
widths, 64.7 for a width, true for a width of 1, a layer of width 0 or a negative dropout
were each accepted and trained as something else than asked (until 2026-12-06). Plugins keep
their own checks: their annotations are theirs to mean."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from tuner.errors import TunerError

Width = Annotated[int, Field(ge=1)]  # a layer's width, a count of layers or heads
Probability = Annotated[float, Field(ge=0, lt=1)]  # dropout
NonNegative = Annotated[float, Field(ge=0)]
Samples = Annotated[int, Field(ge=2)]
Classes = Annotated[int, Field(ge=2)]
Condition = Annotated[float, Field(ge=1)]  # a condition number

# Modules whose factories are checked here: the built-ins.
CHECKED = ("tuner.models", "tuner.datasets")


@functools.cache
def _params_model(factory: Callable[..., Any], skip: tuple[str, ...]
                  ) -> tuple[type[BaseModel], list[str]]:
    """A pydantic model of the factory's parameters but `skip`, and their names (built once:
    every trial builds its model)."""
    hints = typing.get_type_hints(factory, include_extras=True)
    fields: dict[str, Any] = {}
    for pname, p in inspect.signature(factory).parameters.items():
        if pname in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        fields[pname] = (hints.get(pname, Any), ... if p.default is p.empty else p.default)
    model = create_model(f"{factory.__name__}_params",
                         __config__=ConfigDict(strict=True, extra="forbid"), **fields)
    return model, list(fields)


def check_params(field: str, name: str, factory: Callable[..., Any], params: dict[str, Any],
                 skip: tuple[str, ...], error: type[TunerError]) -> None:
    """Raise `error(message)` naming the field (`task.model.params.hidden.0: ...`) when
    `params` do not fit the built-in factory's signature, strictly: no string read as a number
    or a list, no fraction as an integer, no boolean as a width, each bound its annotation
    sets, and no parameter the factory does not have. `skip`: the arguments the service
    passes itself (the data's shape, the seed)."""
    if getattr(factory, "__module__", None) not in CHECKED:
        return
    model, fields = _params_model(factory, skip)
    try:
        model.model_validate(params)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in (field, *err["loc"]))
        if err["type"] == "extra_forbidden":
            raise error(f"{where}: {name} has no parameter {err['loc'][0]!r}; its "
                        f"parameters: {', '.join(fields) or 'none'}") from None
        said = ("should be a list" if "Sequence" in err["msg"] else
                f"{err['msg'][0].lower()}{err['msg'][1:]}".removeprefix("input "))
        more = len(exc.errors()) - 1
        given = repr(err["input"])
        given = given if len(given) <= 80 else given[:77] + "..."  # a list of 10,000 widths
        raise error(f"{where}: {said}, got {given}"
                    + (f" ({more} more error{'s' if more > 1 else ''})" if more else "")) from None
