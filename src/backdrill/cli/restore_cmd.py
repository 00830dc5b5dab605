"""``backdrill restore …``: one sub-command per kind of backup."""

from __future__ import annotations

import typer

from backdrill.cli.restore_files_cmd import restore_files

app = typer.Typer(help="Restore a backup (during an incident).", no_args_is_help=True)
app.command("files")(restore_files)
