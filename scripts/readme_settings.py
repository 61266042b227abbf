"""Write the settings table from ``tap-partner-billing --about --format=markdown`` into README.md.

Run ``python scripts/readme_settings.py`` after changing a setting; the tests fail while the
README's table differs from what ``--about`` prints.
"""

from __future__ import annotations

import re
from pathlib import Path

from plugin_definition import about_output

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def about_table() -> str:
    """The settings table as ``--about --format=markdown`` prints it."""
    about = about_output("markdown")
    match = re.search(r"^\| Setting .*?(?=\n\n|\Z)", about, flags=re.MULTILINE | re.DOTALL)
    if match is None:
        msg = "no settings table in --about output"
        raise SystemExit(msg)
    return match.group(0).strip()


def readme_table(text: str) -> str:
    """The table between the README's markers."""
    return text.split(START, 1)[1].split(END, 1)[0].strip()


def main() -> None:
    """Rewrite the README's table in place."""
    text = README.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    README.write_text(f"{head}{START}\n{about_table()}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    main()
