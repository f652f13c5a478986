"""Helpers shared by the deployment tests: the valid setting names and a CLI argv checker.

The names come from the Settings class itself, so renaming a field without renaming it in
compose.yaml, the Dockerfile or the Kubernetes manifests fails a test instead of a deployment.
"""

from __future__ import annotations

import copy
import re
import shlex
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import typer
import yaml
from pydantic import SecretStr

from icecube_stream.cli import app as cli_app
from icecube_stream.config import Settings

ROOT = Path(__file__).resolve().parents[3]
PREFIX = str(Settings.model_config.get("env_prefix", ""))
SETTING_NAMES = frozenset(f"{PREFIX}{name.upper()}" for name in Settings.model_fields)
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}")
FILE_SUFFIX = "_FILE"
#: Settings whose value is a secret (SecretStr): in a deployment only ever ICECUBE_<NAME>_FILE.
SECRET_SETTINGS = frozenset(
    f"{PREFIX}{name.upper()}"
    for name, field in Settings.model_fields.items()
    if SecretStr in typing.get_args(field.annotation) or field.annotation is SecretStr
)


def unknown_settings(names: Iterable[str]) -> list[str]:
    """ICECUBE_* names that no Settings field reads (a typo a container would silently ignore).
    ICECUBE_<NAME>_FILE is read for every field NAME (its content is the value: secrets)."""
    return sorted(
        n
        for n in names
        if n.startswith(PREFIX)
        and n not in SETTING_NAMES
        and n.removesuffix(FILE_SUFFIX) not in SETTING_NAMES
    )


def setting_default(env_name: str) -> Any:
    """The Settings default behind an ICECUBE_* name."""
    return Settings.model_fields[env_name.removeprefix(PREFIX).lower()].default


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def cli_argv_problem(argv: list[str]) -> str | None:
    """Why `icecube-stream ARGV` would fail to parse (unknown command or option), or None.

    Parsing happens without running anything, so a compose/k8s command that names an option
    the CLI no longer has is caught here rather than by a crash-looping container. Typer ships
    its own copy of click, so groups and errors are recognised by shape, not by class.
    """
    command: Any = typer.main.get_command(cli_app)
    args = list(argv)
    path = ["icecube-stream"]
    while hasattr(command, "list_commands"):
        if not args:
            return f"{' '.join(path)}: no subcommand"
        ctx = command.context_class(command, info_name=path[-1])
        sub = command.get_command(ctx, args[0])
        if sub is None:
            return f"{' '.join(path)}: no command {args[0]!r}"
        path.append(args.pop(0))
        command = sub
    try:
        command.make_context(path[-1], args, resilient_parsing=False)
    except Exception as exc:
        if not hasattr(exc, "format_message"):
            raise
        return f"{' '.join(path)}: {exc.format_message()}"
    return None


def cli_argvs(command: list[str] | str) -> list[list[str]]:
    """The `icecube-stream ...` invocations in a container command (exec form or `sh -c`)."""
    words = shlex.split(command) if isinstance(command, str) else list(command)
    if words[:2] == ["sh", "-c"] or words[:2] == ["/bin/sh", "-c"]:
        words = shlex.split(" ".join(words[2:]).replace(";", " ; "))
    found: list[list[str]] = []
    for i, word in enumerate(words):
        if word == "icecube-stream":
            rest = words[i + 1 :]
            end = rest.index(";") if ";" in rest else len(rest)
            found.append(rest[:end])
    return found


def env_names(env: Mapping[str, Any] | list[Any] | None) -> list[str]:
    """Variable names of a compose/k8s environment block (mapping, KEY=VALUE list or k8s list)."""
    if env is None:
        return []
    if isinstance(env, Mapping):
        return list(env)
    names = []
    for item in env:
        names.append(item["name"] if isinstance(item, Mapping) else str(item).split("=", 1)[0])
    return names


def interpolate_defaults(text: str) -> str:
    """compose.yaml as `docker compose config` sees it with no variables set: defaults filled."""

    def default(match: re.Match[str]) -> str:
        body = match.group(0)[2:-1]
        for op in (":-", "-"):
            if op in body:
                return body.split(op, 1)[1]
        return ""

    return INTERPOLATION.sub(default, text)


#: Compose replaces these when a later file sets them (shell commands); see merge_compose.
REPLACED_KEYS = frozenset({"command", "entrypoint", "test"})
#: Compose merges these sequences item by item, keyed by where each is mounted.
BY_TARGET_KEYS = frozenset({"volumes", "secrets"})


def _mount_target(key: str, item: Any) -> str:
    if key == "secrets":
        if isinstance(item, Mapping):
            return str(item.get("target") or f"/run/secrets/{item['source']}")
        return f"/run/secrets/{item}"
    if isinstance(item, Mapping):
        return str(item["target"])
    return str(item).split(":")[1]


def merge_compose(base: Any, override: Any, key: str | None = None) -> Any:
    """`docker compose -f base -f override` as compose merges the two, for what our files use:
    mappings key by key (environment, depends_on, healthcheck), a command or health-check test
    replaced, volumes and secrets by their mount target, other sequences (ports) as a union."""
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        merged = dict(base)
        for name, value in override.items():
            merged[name] = (
                merge_compose(base[name], value, str(name))
                if name in base
                else copy.deepcopy(value)
            )
        return merged
    if isinstance(base, list) and isinstance(override, list) and key not in REPLACED_KEYS:
        if key in BY_TARGET_KEYS:
            by_target = {_mount_target(key, item): item for item in base}
            by_target |= {_mount_target(key, item): item for item in override}
            return list(by_target.values())
        return [*base, *(item for item in override if item not in base)]
    return copy.deepcopy(override)
