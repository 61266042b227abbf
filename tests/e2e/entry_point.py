"""Run one installed program's entry point on many argument lists, in one interpreter.

Run by the program's own environment's Python (Meltano's, dbt's, the tap's), as
``<python> entry_point.py PROGRAM RESULTS`` with a JSON list of argument lists on stdin. Each
list is given to the ``console_scripts`` entry point named PROGRAM as its command line (what
the installed command calls); it writes a JSON list of ``[exit code, output]`` to the file
RESULTS (a program's own subprocesses, such as a plugin ``meltano invoke`` starts, write to
this process's stdout). The caller adds
``--help`` where the program's parse should stop: click exits 0 after the help, or 2 naming
an unknown command or option. One start for many commands: Meltano takes a second to start
and ten milliseconds a parse after that. Nothing here imports the program before it runs.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from importlib.metadata import entry_points


def run(program: str, argv: list[str]) -> tuple[int, str]:
    """The exit code and output of ``program`` given ``argv``."""
    [entry] = entry_points(group="console_scripts", name=program)
    main = entry.load()
    output = io.StringIO()
    sys.argv = [program, *argv]
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            if isinstance(exit_.code, str):
                print(exit_.code)
        except Exception as err:  # noqa: BLE001 - what a user would see, reported
            print(f"{type(err).__name__}: {err}")
            code = 1
    return code, output.getvalue()


if __name__ == "__main__":
    name, results, arguments = sys.argv[1], sys.argv[2], json.load(sys.stdin)
    with open(results, "w", encoding="utf-8") as file:
        json.dump([run(name, argv) for argv in arguments], file)
