"""Command-line options as a thin view of a config dataclass: one option per field, with the field's default and help.

A command decorated with `config_options(Config, names)` gets `--field-name` options derived from the dataclass (type,
default, `metadata["help"]`), so a default lives in one place; the command receives them as one dict. Tuple fields
are comma-separated text on the command line (`--seeds 0,1,2`); `field_value` turns such text into the field's type.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from typing import Any, Callable, Sequence

from tunelab.errors import UserError
from tunelab.validate import finite

_SCALARS = (bool, int, float, str)


def _optional(hint) -> tuple[Any, bool]:
    """(inner type, True) for `X | None`, else (hint, False)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


def _tuple_item(hint):
    """The item type of `tuple[X, ...]`, else None."""
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis and args[0] in _SCALARS:
            return args[0]
    return None


def config_fields(cls, names: Sequence[str] | None = None) -> list[tuple[dataclasses.Field, Any]]:
    """(field, resolved type hint) for `names` (default: every init field), in the order asked for."""
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [n for n in names or () if n not in by_name]
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
    return [(by_name[n], hints[n]) for n in (names or list(by_name))]


def field_value(cls, name: str, value: Any, flag: str | None = None) -> Any:
    """`value` as field `name` of `cls` holds it: comma-separated text -> tuple; 'none' -> None where allowed."""
    (_, hint), = config_fields(cls, [name])
    inner, optional = _optional(hint)
    if not isinstance(value, str):
        return value
    if optional and value.strip().lower() == "none":
        return None
    item = _tuple_item(inner)
    flag = flag or option_name(name)
    try:
        if item is not None:
            parsed = tuple(item(v.strip()) for v in value.split(",") if v.strip())
        elif inner in (int, float):
            parsed = inner(value)
        else:
            return value
    except ValueError:
        kind = f"comma-separated {item.__name__}s" if item else inner.__name__
        raise UserError(f"{flag} must be {kind}, got '{value}'") from None
    finite(flag, parsed)  # text options bypass the CLI's own NaN check
    return parsed


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return ...


def option_name(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _parameter(field: dataclasses.Field, hint, flag: str | None = None) -> inspect.Parameter:
    """A keyword-only typer option for one field; tuples and `X | None` travel as text (parsed by `field_value`)."""
    import typer

    inner, optional = _optional(hint)
    default = _default(field)
    help_text = field.metadata.get("help", "")
    if _tuple_item(inner) is not None:
        annotation, default = str, ",".join(map(str, default))
    elif optional:
        annotation = str
        default = "none" if default is None else str(default)
        if not {"default", "none"} & set(help_text.lower().replace(";", " ").replace(":", " ").split()):
            # a None that picks a default (or that the help already explains) is not "off"
            help_text = f"{help_text} ('none': off)".strip()
    elif inner in _SCALARS:
        annotation = inner
    else:
        raise TypeError(f"field {field.name}: no command-line form for {hint}")
    option = typer.Option(default, flag or option_name(field.name), help=help_text or None)
    return inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


def config_options(cls, names: Sequence[str] | None = None, dest: str = "options",
                   flags: dict[str, str] | None = None) -> Callable:
    """Decorator for a typer command: adds an option per field of `cls` in `names` (default: all) and passes their
    values, already in the fields' types, as the dict argument `dest`. `flags` renames options (field -> '--flag')."""
    chosen = config_fields(cls, names)
    flags = flags or {}
    unknown = sorted(set(flags) - {f.name for f, _ in chosen})
    if unknown:
        raise ValueError(f"flags for fields not chosen: {', '.join(unknown)}")

    def decorate(func: Callable) -> Callable:
        own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != dest]
        clash = {p.name for p in own} & {f.name for f, _ in chosen}
        if clash:
            raise ValueError(f"{func.__name__} already has parameter(s) {', '.join(sorted(clash))}")

        @functools.wraps(func)
        def command(**kwargs):
            values = {f.name: field_value(cls, f.name, kwargs.pop(f.name), flags.get(f.name)) for f, _ in chosen}
            return func(**kwargs, **{dest: values})

        signature = inspect.Signature(own + [_parameter(f, hint, flags.get(f.name)) for f, hint in chosen])
        command.__signature__ = signature
        # resolved types, so typer does not evaluate the wrapped function's string annotations against the wrong module
        command.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
        return command

    return decorate
