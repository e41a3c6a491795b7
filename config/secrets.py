"""Reading a secret (a password, a token) from the environment or a file: never the TOML.

Every secret setting is a pair of keys, ``<name>_env`` (an environment
variable) and ``<name>_file`` (a file outside the repository); the one reader
below serves them all, so they strip, refuse and word their errors alike.
"""

from __future__ import annotations

import os
from pathlib import Path


def read_secret(key: str, *, env: str | None, file: Path | None) -> str | None:
    """The secret named by ``<key>_env`` or else ``<key>_file``; None when neither is set.

    Surrounding blanks are stripped (a file's trailing newline is no part of a
    password). An environment variable that is unset or empty, or a file that
    cannot be read or is empty, raises ConfigError naming the key, so that a
    configured secret is never silently taken as none.
    """
    # Imported here: config.settings imports the modules that call this one.
    from madoguchi.config.settings import ConfigError

    if env:
        value = os.environ.get(env, "").strip()
        if not value:
            raise ConfigError(f"{key}_env: environment variable {env} is not set or empty")
        return value
    if file:
        try:
            value = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{key}_file: {exc}") from exc
        if not value:
            raise ConfigError(f"{key}_file: {file} is empty")
        return value
    return None
