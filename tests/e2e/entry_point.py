"""Parse many command lines with one installed click program, in one interpreter, running none.

Run by the program's own environment's Python (Meltano's, dbt's, the tap's), as
``<python> entry_point.py PROGRAM RESULTS [--fragments]`` with a JSON list of argument lists
on stdin. Each list is parsed as the command line of the ``console_scripts`` entry point named
PROGRAM, the way click does before it runs anything: the entry point's click command (or, when
the entry point is a plain function such as Meltano's ``main``, the ``cli`` command of its
module) makes its context from the arguments, then each subcommand in turn
(``resolve_command``, then the subcommand's ``make_context``). An unknown command or option, a
missing or extra argument, a value a choice or type refuses: each exits 2 with click's own
message. ``--help`` would stop click before most of that, which is why it is not used.

Nothing is run: no command's callback, and no parameter's callback either (the tap's
``--discover`` and ``--test`` act in theirs, ``--version`` prints); a file or path parameter is
taken as the path it names, not opened or looked up (the user's files are not here). With
``--fragments`` a missing argument is no error: inline code names a command, and the text
around it says the rest.

RESULTS gets a JSON list of ``[exit code, output, parsed]``, ``parsed`` being the names of the
command and its subcommands and the values of all their parameters (``{"command": ["meltano",
"config", "set"], "params": {...}}``), or null when the parse failed. One start for many
commands: Meltano takes a second to import, a parse a millisecond. Nothing here imports the
program before it parses.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import click


def click_command(program: str) -> click.Command:
    """The click command of ``program``'s entry point."""
    [entry] = entry_points(group="console_scripts", name=program)
    loaded = entry.load()
    if isinstance(loaded, click.Command):
        return loaded
    command = getattr(sys.modules[loaded.__module__], "cli", None)
    if not isinstance(command, click.Command):
        raise TypeError(f"{program}: {entry.value} is not a click command, nor its module's cli")
    return command


def inert(command: click.Command) -> click.Command:
    """``command`` with no parameter callback, its file and path parameters plain strings."""
    for param in command.params:
        param.callback = None
        if isinstance(param.type, click.File | click.Path):
            param.type = click.STRING
    return command


def described(ctx: click.Context) -> dict[str, Any]:
    """The names of ``ctx``'s command and its parents', and all their parameters' values."""
    chain = [ctx]
    while chain[-1].parent is not None:
        chain.append(chain[-1].parent)
    params: dict[str, Any] = {}
    for level in reversed(chain):
        params |= level.params
    return {"command": [level.info_name for level in reversed(chain)], "params": params}


def parse(command: click.Command, program: str, argv: list[str]) -> click.Context:
    """The context of the (sub)command ``argv`` ends in, every level parsed."""
    ctx = inert(command).make_context(program, argv)
    while isinstance(ctx.command, click.Group) and not ctx.command.chain:
        rest = [*ctx._protected_args, *ctx.args]  # the subcommand and its arguments
        if not rest:
            if ctx.command.invoke_without_command:
                break
            raise click.UsageError("Missing command.", ctx)
        name, sub, rest = ctx.command.resolve_command(ctx, rest)
        assert sub is not None  # resolve_command raised otherwise
        ctx = inert(sub).make_context(name, rest, parent=ctx)
    return ctx


def run(command: click.Command, program: str, argv: list[str], fragments: bool) -> list[Any]:
    """``[exit code, output, parsed]`` of parsing ``argv`` (see the docstring)."""
    output = io.StringIO()
    parsed: dict[str, Any] | None = None
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        try:
            parsed = described(parse(command, program, argv))
            code = 0
        except click.MissingParameter as err:
            if fragments and err.ctx is not None:
                parsed, code = described(err.ctx), 0
            else:
                err.show()
                code = err.exit_code
        except click.ClickException as err:
            err.show()
            code = err.exit_code
        except click.exceptions.Exit as exit_:  # --help or --version, where a document has it
            code = exit_.exit_code
        except Exception as err:
            print(f"{type(err).__name__}: {err}")
            code = 1
    return [code, output.getvalue(), parsed]


if __name__ == "__main__":
    name, results, arguments = sys.argv[1], sys.argv[2], json.load(sys.stdin)
    cli = click_command(name)
    with Path(results).open("w", encoding="utf-8") as file:
        runs = [run(cli, name, argv, "--fragments" in sys.argv[3:]) for argv in arguments]
        json.dump(runs, file, default=str)
