"""What a parsed ``meltano`` command names must be known to the project it addresses.

Meltano's click parses a command (tests/e2e/entry_point.py) but not the names in it: Meltano
looks a plugin up only when it runs. So, after the parse (tests/e2e/doc_help.py), the names
are looked up in the ``meltano.yml`` of the project the commands are parsed in (the tests'
copy of this repository's; ``inherit_from`` brings the parent's settings and commands):

- a plugin named by ``run``, ``invoke``, ``config …``, ``install`` or ``select`` is a plugin of
  the project; ``run`` also takes a job of the project; ``PLUGIN:COMMAND`` (``invoke
  dbt:build``) names a command of the plugin;
- ``config set|unset PLUGIN SETTING …`` names a setting of the plugin (its first segment, for
  a nested ``stream_maps.x``), and ``config set`` has both a setting and a value;
- a state ID (``state get|set|clear|…``) is ``ENVIRONMENT:EXTRACTOR-to-LOADER`` with an
  optional ``:SUFFIX``, as ``meltano run`` makes it;
- an environment (``--environment``, a state ID's) is one of the project's or one that
  ``meltano init`` makes (dev, staging, prod): the documents address the user's own project.

A placeholder (``{name}``, made from ``<name>``) or ``…`` stands for whatever the text says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from tests.doc_commands import ELLIPSIS

if TYPE_CHECKING:
    from pathlib import Path

MELTANO_INIT_ENVIRONMENTS = frozenset({"dev", "staging", "prod"})
STATE_IDS = ("state_id", "src_state_id", "dst_state_id")


def stands_for_any(word: str) -> bool:
    """A placeholder or ``…``: the document's text says what goes there."""
    return word.startswith("{") or ELLIPSIS in word


@dataclass(frozen=True)
class Plugin:
    """A plugin's setting names and ``commands:`` (its own and those it inherits)."""

    settings: frozenset[str]
    commands: frozenset[str]


@dataclass(frozen=True)
class MeltanoNames:
    """The plugins, jobs and environments of a Meltano project."""

    plugins: dict[str, Plugin]
    jobs: frozenset[str]
    environments: frozenset[str]

    @classmethod
    def of(cls, project: Path) -> MeltanoNames:
        """The names ``project``'s ``meltano.yml`` declares."""
        data: dict[str, Any] = yaml.safe_load((project / "meltano.yml").read_text("utf-8"))
        entries = {p["name"]: p for kind in data.get("plugins", {}).values() for p in kind}

        def names(name: str, key: str) -> frozenset[str]:
            entry = entries.get(name, {})
            own = entry.get(key) or {}
            found = {s["name"] for s in own} if key == "settings" else set(own)
            parent = entry.get("inherit_from")
            return frozenset(found) | (names(parent, key) if parent in entries else frozenset())

        return cls(
            plugins={n: Plugin(names(n, "settings"), names(n, "commands")) for n in entries},
            jobs=frozenset(job["name"] for job in data.get("jobs") or []),
            environments=MELTANO_INIT_ENVIRONMENTS
            | {env["name"] for env in data.get("environments") or []},
        )

    def problems(self, parsed: dict[str, Any], *, fragment: bool = False) -> list[str]:
        """What the parsed command (entry_point.py's ``parsed``) names that is not here.

        A ``fragment`` (inline code) may leave out what click would have asked for.
        """
        _, *command = parsed["command"]
        params: dict[str, Any] = parsed["params"]
        found = self._environment(params.get("environment"))
        match command:
            case ["run", *_]:
                blocks = params.get("blocks") or ()
                found += [p for block in blocks for p in self._plugin(block, jobs=True)]
            case ["invoke", *_]:
                found += self._plugin(params.get("plugin_name"))
            case ["install", *_]:
                found += [p for name in params.get("plugin") or () for p in self._plugin(name)]
            case ["select", *_]:
                found += self._plugin(params.get("extractor"))
            case ["config", action, *_]:
                found += self._config(action, params, fragment)
            case ["state", *_]:
                ids = [params[key] for key in STATE_IDS if params.get(key)]
                found += [p for state_id in ids for p in self._state_id(state_id)]
        return found

    def _environment(self, name: str | None) -> list[str]:
        if name is None or stands_for_any(name) or name in self.environments:
            return []
        return [f"environment {name!r} is neither the project's nor one meltano init makes"]

    def _plugin(self, name: str | None, *, jobs: bool = False) -> list[str]:
        """``name`` (``plugin`` or ``plugin:command``) is the project's, or a job's."""
        if name is None:  # left out: click says so where it must not be
            return []
        plugin, _, command = name.partition(":")
        if stands_for_any(plugin) or (jobs and name in self.jobs):
            return []
        if plugin not in self.plugins:
            return [f"{plugin!r} is not a plugin{' or job' if jobs else ''} of the project"]
        known = self.plugins[plugin].commands
        if command and not stands_for_any(command) and command not in known:
            return [f"{command!r} is not a command of {plugin} ({', '.join(sorted(known))})"]
        return []

    def _config(self, action: str, params: dict[str, Any], fragment: bool) -> list[str]:
        """``config ACTION PLUGIN``; ``set`` and ``unset`` with a setting of the plugin."""
        plugin: str | None = params.get("plugin_name")
        if plugin is None:  # `config set` would ask for it
            return [] if fragment or action != "set" else ["config set names no plugin"]
        found = self._plugin(plugin)
        if found or stands_for_any(plugin) or action not in ("set", "unset"):
            return found
        names: list[str] = list(params.get("setting_name") or ())
        value: str | None = params.get("value")
        if action == "set" and (not names or value is None):  # click gives one word to value
            if fragment or any(stands_for_any(word) for word in [*names, value or ""]):
                return []
            return [f"config set {plugin} needs a setting and a value"]
        setting = names[0].split(".")[0] if names else ELLIPSIS
        if stands_for_any(setting) or setting in self.plugins[plugin].settings:
            return []
        return [f"{setting!r} is not a setting of {plugin}"]

    def _state_id(self, state_id: str) -> list[str]:
        """``ENVIRONMENT:EXTRACTOR-to-LOADER[:SUFFIX]``, each name known."""
        if stands_for_any(state_id):
            return []
        environment, _, rest = state_id.partition(":")
        pipeline = rest.split(":")[0]
        pairs = [pipeline[:at] for at in range(len(pipeline)) if pipeline[at:].startswith("-to-")]
        known = [
            tap for tap in pairs if tap in self.plugins and pipeline[len(tap) + 4 :] in self.plugins
        ]
        if not known:
            return [
                (
                    f"state ID {state_id!r} is not ENVIRONMENT:EXTRACTOR-to-LOADER of the project's"
                    " plugins"
                )
            ]
        return self._environment(environment)
