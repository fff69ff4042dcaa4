"""Where ``serve`` takes its settings from: flags, environment variables, a TOML file.

Every ``serve`` option has three sources, the first that says wins:

1. the command line flag (``--max-upload-bytes 2G``);
2. an environment variable, ``PUREGRPC_STREAMING_`` and the flag's name in
   capitals with underscores (``PUREGRPC_STREAMING_MAX_UPLOAD_BYTES=2G``);
   a repeatable option takes a comma-separated list. ``--token`` has none
   (``PUREGRPC_STREAMING_TOKEN`` is the client commands' token), nor has
   ``--config``: its variable is ``PUREGRPC_STREAMING_CONFIG``;
3. the TOML file of ``--config FILE`` (or ``$PUREGRPC_STREAMING_CONFIG``):
   top-level keys named as the flags without the dashes (``max-upload-bytes
   = "2G"``; ``max_upload_bytes`` is read the same), values as TOML
   strings, integers or floats, a boolean for a yes/no switch, a list for a
   repeatable option;

then the built-in default. Values from the environment and the file go
through the same checks as a flag's, and a bad one is an error naming its
source (the variable, or the file and key); so is a key the file should
not have.

:class:`GivenStore` and :class:`GivenAppend` are the argparse actions that
record which options the command line gave; :func:`layered` fills in the
others.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._cli_common import UsageError

__all__ = [
    "CONFIG_VARIABLE",
    "ENV_PREFIX",
    "GivenAppend",
    "GivenStore",
    "environment_name",
    "layered",
    "load_config",
]

ENV_PREFIX = "PUREGRPC_STREAMING_"
#: The environment variable naming the config file when ``--config`` does not.
CONFIG_VARIABLE = ENV_PREFIX + "CONFIG"
#: Options without an environment variable of their own (see the module docstring).
_NO_VARIABLE = frozenset({"token_specs", "config"})
_GIVEN = "serve_given_options"


def _given(namespace: argparse.Namespace) -> set[str]:
    given: set[str] = namespace.__dict__.setdefault(_GIVEN, set())
    return given


class GivenStore(argparse.Action):
    """``store``, remembering that the command line gave the option."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        """Store ``values`` and note the option as given."""
        setattr(namespace, self.dest, values)
        _given(namespace).add(self.dest)


class GivenAppend(argparse.Action):
    """``append``, remembering that the command line gave the option."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        """Append ``values`` and note the option as given."""
        items = [] if self.dest not in _given(namespace) else list(getattr(namespace, self.dest))
        items.append(values)
        setattr(namespace, self.dest, items)
        _given(namespace).add(self.dest)


def _flag(action: argparse.Action) -> str:
    """The long flag's name without dashes (``max-upload-bytes``)."""
    longs = [o for o in action.option_strings if o.startswith("--")]
    return (longs[0] if longs else action.option_strings[0]).lstrip("-")


def environment_name(action: argparse.Action) -> str | None:
    """The environment variable of option ``action`` (``None``: it has none)."""
    if action.dest in _NO_VARIABLE:
        return None
    return ENV_PREFIX + _flag(action).upper().replace("-", "_")


def load_config(path: Path) -> dict[str, Any]:
    """The settings of TOML file ``path`` (a missing or malformed file is a UsageError)."""
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from None


def _convert(action: argparse.Action, value: Any, source: str) -> Any:
    """``value`` from ``source`` through ``action``'s checks, as a flag's would go."""
    repeatable = isinstance(action, GivenAppend)
    if repeatable:
        if isinstance(value, str):
            items: Sequence[Any] = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, list):
            items = value
        else:
            raise UsageError(f"{source}: expected a list, got {value!r}")
        return [_convert_one(action, item, source) for item in items]
    return _convert_one(action, value, source)


def _convert_one(action: argparse.Action, value: Any, source: str) -> Any:
    convert = action.type if callable(action.type) else str
    if isinstance(value, bool):
        # A TOML boolean suits a switch (``web = false``), as "yes" / "no" would.
        try:
            return convert("true" if value else "false")
        except (argparse.ArgumentTypeError, ValueError, TypeError):
            raise UsageError(
                f"{source}: expected a string or a number, got {str(value).lower()}"
            ) from None
    if not isinstance(value, str | int | float):
        raise UsageError(f"{source}: expected a string or a number, got {value!r}")
    text = str(value)
    try:
        converted = convert(text)
    except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
        raise UsageError(f"{source}: {exc}") from None
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise UsageError(f"{source}: {text!r} is not one of {choices}")
    return converted


def layered(
    args: argparse.Namespace,
    actions: Sequence[argparse.Action],
    environ: Mapping[str, str] | None = None,
) -> argparse.Namespace:
    """``args`` with every option the command line did not give taken from the
    environment (``environ``, default ``os.environ``) or the config file."""
    env = os.environ if environ is None else environ
    given = set(getattr(args, _GIVEN, set()))
    by_key = {_flag(action): action for action in actions}
    config = getattr(args, "config", None) if "config" in given else None
    if config is None and env.get(CONFIG_VARIABLE):
        config = Path(env[CONFIG_VARIABLE])
    table = load_config(config) if config is not None else {}
    from_file: dict[str, Any] = {}
    for key, value in table.items():
        action = by_key.get(key.replace("_", "-"))
        if action is None or action.dest == "config":
            known = ", ".join(sorted(k for k in by_key if k != "config"))
            raise UsageError(
                f"config file {config}: unknown setting {key!r}; the settings are {known}"
            )
        from_file[action.dest] = (key, value)
    result = argparse.Namespace(**vars(args))
    for action in actions:
        if action.dest in given:
            continue
        variable = environment_name(action)
        if variable is not None and env.get(variable, "") != "":
            value = _convert(action, env[variable], f"${variable}")
        elif action.dest in from_file:
            key, raw = from_file[action.dest]
            value = _convert(action, raw, f"config file {config}: {key}")
        else:
            continue
        setattr(result, action.dest, value)
    return result
