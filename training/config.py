"""The one loader of training's YAML configuration: SFT/DPO recipes, quantisation recipes, pipeline and
sweep specs.

Every config is a dataclass whose fields carry ``metadata={"help": ...}``. Precedence follows TRL's
``TrlParser``: dataclass defaults < the YAML file < command-line overrides. Every refused key or value
goes through one message builder, so each error names the file, the key, and the fix, and suggests
the nearest valid name ("Did you mean ...").

>>> from dataclasses import dataclass, field
>>> @dataclass
... class Demo:
...     steps: int = field(default=1, metadata={"help": "Updates."})
>>> load_config(Demo, {"steps": 2}, parse_overrides(["steps=3"]), Origin("Demo recipe")).steps
3
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from training.errors import RecipeError, TrainingError

T = TypeVar("T")


@dataclass(frozen=True)
class Origin:
    """Where a configuration comes from, for error messages, and what it raises.

    Args:
        source: the file or place named first in every message, e.g. ``Recipe configs/dpo.yaml``.
        error: the exception class raised for a refused key or value.
        foreign: keys that belong to a sibling config, mapped to its name (e.g. ``beta`` -> ``DPO
            recipes (task: dpo)``), so that such a key is refused as misplaced rather than unknown.
    """

    source: str
    error: type[TrainingError] = RecipeError
    foreign: Mapping[str, str] = field(default_factory=dict)

    def fail(self, message: str) -> TrainingError:
        return self.error(f"{self.source}: {message}")


def did_you_mean(word: Any, choices: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the nearest of ``choices``, or an empty string when none is near."""
    near = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" Did you mean {near[0]!r}?" if near else ""


def check_choice(
    name: str, value: Any, allowed: Iterable[str], error: Callable[[str], Exception] = RecipeError
) -> None:
    """Refuse ``value`` unless it is one of ``allowed``, listing them and suggesting the nearest.

    ``error`` makes the exception from the message: an exception class, or ``Origin.fail``.
    """
    allowed = list(allowed)
    if value not in allowed:
        listing = " or ".join([", ".join(allowed[:-1]), allowed[-1]] if len(allowed) > 1 else allowed)
        raise error(f"{name} is {value!r}; use {listing}.{did_you_mean(value, allowed)}")


def read_yaml(
    path: str | Path, what: str, error: type[TrainingError] = RecipeError, example: str = "configs/"
) -> dict[str, Any]:
    """The mapping a YAML file holds; ``what`` names the file's role in messages (e.g. ``Recipe``).

    ``example`` is where a missing file's message sends the user for a model to copy.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path} does not exist; check the path (see {example} for examples).")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as problem:
        raise error(f"{what} {path} is not valid YAML: {problem}") from problem
    if not isinstance(data, dict):
        raise error(f"{what} {path} must be a mapping of keys to values, not a {type(data).__name__}.")
    return data


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["adapter.r=8", "beta=0.2"]`` -> nested dict; values are parsed as YAML scalars.

    A key given twice is an error naming both items, since neither can silently win.
    """
    nested: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not key:
            raise RecipeError(f"Override {item!r} is not key=value, e.g. learning_rate=1e-4 or adapter.r=8.")
        if key in seen:
            raise RecipeError(
                f"{key} is given twice on the command line ({seen[key]!r} and {item!r}); keep one."
            )
        seen[key] = item
        target = nested
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = yaml.safe_load(raw) if raw.strip() else None
    return nested


def merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``; sections (nested mappings) merge key by key."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def given(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` without the None ones, in sections too: a command-line flag left out overrides nothing."""
    kept = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            value = given(value)
        if value is not None and value != {}:
            kept[key] = value
    return kept


def load_config(cls: type[T], data: Mapping[str, Any], overrides: Mapping[str, Any], origin: Origin) -> T:
    """``cls`` built from its defaults < ``data`` (a parsed YAML file) < ``overrides``."""
    return build(cls, merge(data, overrides), origin)


def build(cls: type[T], data: Any, origin: Origin, where: str = "") -> T:
    """Instantiate dataclass ``cls`` from ``data``, recursing into section dataclasses and lists of them.

    ``where`` is the dotted prefix of a nested section (``adapter.``), so messages name the full key.
    """
    if not isinstance(data, Mapping):
        raise origin.fail(f"{where.rstrip('.') or 'the file'} must be a mapping of keys to values.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _refuse_unknown(fields, data, origin, where)
    for name, spec in fields.items():
        required = spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
        if required and name not in data:
            raise origin.fail(f"{where}{name} is missing; add it. {spec.metadata.get('help', '')}".rstrip())
    hints = typing.get_type_hints(cls)
    values = {key: _convert(hints[key], value, origin, f"{where}{key}") for key, value in data.items()}
    try:
        return cls(**values)
    except TrainingError as error:
        raise origin.fail(str(error)) from None


def check_keys(cls: type, data: Mapping[str, Any], origin: Origin, where: str = "") -> None:
    """Refuse the first key of ``data`` (nested for sections) that ``cls`` does not have; values unchecked.

    For partial configs, such as a sweep's grid of dotted keys, that are not built on their own.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _refuse_unknown(fields, data, origin, where)
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        if dataclasses.is_dataclass(hints[key]) and isinstance(value, Mapping):
            check_keys(hints[key], value, origin, f"{where}{key}.")


def _refuse_unknown(fields: Mapping[str, Any], data: Mapping[str, Any], origin: Origin, where: str) -> None:
    for key in data:
        if key in fields:
            continue
        if not where and key in origin.foreign:
            raise origin.fail(f"{key!r} belongs to {origin.foreign[key]}; remove it.")
        known = [where + name for name in fields]
        raise origin.fail(f"unknown key {where + str(key)!r}.{did_you_mean(where + str(key), known)}")


def _convert(hint: Any, value: Any, origin: Origin, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return build(hint, value, origin, f"{key}.")
    args = typing.get_args(hint)
    if typing.get_origin(hint) is list and args and dataclasses.is_dataclass(args[0]):
        if not isinstance(value, list):
            raise origin.fail(f"{key} must be a list.")
        return [build(args[0], item, origin, f"{key}.{i}.") for i, item in enumerate(value)]
    numbers = [t for t in (float, int) if t is hint or t in args]
    if numbers and isinstance(value, int | str) and not isinstance(value, bool):
        try:
            return numbers[0](value)  # YAML reads 1e-4 (no dot) as a string
        except ValueError:
            raise origin.fail(f"{key} must be a number, not {value!r}.") from None
    return value
