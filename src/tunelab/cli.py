"""The `tunelab` command. Each capability mounts its own typer app from `tunelab/<capability>/cli.py`."""

from __future__ import annotations

import importlib
import sys

import typer
from typer.core import TyperGroup

from tunelab import __version__
from tunelab.errors import UserError, one_line

# (module holding a typer `app`, sub-command name). A capability not yet present is simply not mounted.
CAPABILITY_APPS = [
    ("tunelab.align.cli", "align"),
    ("tunelab.adapters.cli", "adapters"),
    ("tunelab.active.cli", "active"),
    ("tunelab.text2sql.cli", "sql"),
    ("tunelab.cortex.cli", "cortex"),
]


class _RootGroup(TyperGroup):
    """The root group, with its --help flag defaulting to False instead of unset.

    typer checks an unset flag's value through pydantic (about a third of `tunelab <sub-command> --help`'s time);
    a bool default skips that check, and every real command still gets typer's full checks of its own options.
    """

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.default = False
        return option


app = typer.Typer(
    cls=_RootGroup,
    name="tunelab",
    help="Research methods as working software: alignment (EPA, DPO, PoFT), adapters (BoRA), "
    "active learning (VAPAL), text-to-SQL agents (Interactive-T2S) and cortical mapping (V4).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tunelab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
    verbose: bool = typer.Option(False, "--verbose", help="Also show third-party warnings, log lines and "
                                 "weight-loading bars (off by default)."),
) -> None:
    """tunelab: `tunelab <capability> <verb> --help` for details."""
    from tunelab import library_output

    if verbose or library_output.verbose():
        library_output.show_libraries()
    else:
        library_output.quiet_libraries()


def _mount() -> None:
    from tunelab.data.cli import app as data_app
    from tunelab.models.cli import app as models_app
    from tunelab.demo import demo_command

    app.add_typer(models_app, name="models", help="List, install and check the embedded offline models.")
    app.add_typer(data_app, name="data", help="Inspect datasets: built-in corpora, files, hub names.")
    app.command("demo")(demo_command)
    for module_name, name in CAPABILITY_APPS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):  # the capability itself is absent
                continue
            raise
        app.add_typer(module.app, name=name)


_mount()


def main(argv: list[str] | None = None) -> int:
    """Entry point: user mistakes become one line on stderr and exit code 2."""
    try:
        code = _checked(typer.main.get_command(app)).main(args=argv, standalone_mode=False)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:  # an optional library whose extra is not installed
        from tunelab.extras import missing_message

        message = missing_message(err, _command(sys.argv[1:] if argv is None else argv))
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except _click_exceptions() as err:  # usage errors: unknown option, missing argument, bad value
        print(f"error: {one_line(err.format_message())} (see --help)", file=sys.stderr)
        return 2
    # under standalone_mode=False a command's `raise typer.Exit(n)` comes back as its return value
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


def _checked(group):
    """The command tree with one check before every command runs: no float option may be NaN or infinite."""
    stack = [group]
    while stack:
        command = stack.pop()
        stack.extend(getattr(command, "commands", {}).values())
        if command.callback is not None and not getattr(command.callback, "_finite_checked", False):
            command.callback = _finite_floats(command.callback, {p.name: p.opts[0] for p in command.params if p.opts})
    return group


def _finite_floats(callback, flags: dict[str, str]):
    import functools

    from tunelab.validate import finite

    @functools.wraps(callback)
    def run(*args, **kwargs):
        for name, value in kwargs.items():
            finite(flags.get(name, name), value)
        return callback(*args, **kwargs)

    run._finite_checked = True
    return run


def _command(argv: list[str]) -> str | None:
    """The sub-command a command line asks for (`sql` in `tunelab sql schema db.sqlite`)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def _click_exceptions() -> tuple[type[BaseException], ...]:
    """typer vendors its own click in recent releases; accept both kinds of usage error."""
    kinds = []
    for module_name in ("typer._click.exceptions", "click.exceptions"):
        try:
            kinds.append(importlib.import_module(module_name).ClickException)
        except (ImportError, AttributeError):
            pass
    return tuple(kinds)


if __name__ == "__main__":
    sys.exit(main())
