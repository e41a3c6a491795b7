"""Reading a secret (a password, a token) from the environment or a file: never the TOML.

Every secret setting is a pair of keys, ``<name>_env`` (an environment
variable) and ``<name>_file`` (a file outside the repository); the one reader
below serves them all, so they strip, refuse and word their errors alike.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet


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


def write_secret_file(key: str, path: Path, value: str, *, encryption_key: str | None) -> None:
    """Keep ``value`` (a refresh token) in ``path``, 0600 in a 0700 folder, written whole.

    With ``encryption_key`` (a Fernet key, itself read with ``read_secret``)
    the file holds the value encrypted; without it, the plain value, readable
    by the desk's user alone. Written to a temporary name and renamed, so a
    crash never leaves half a token.
    """
    from madoguchi.config.settings import ConfigError

    data = value.encode("utf-8")
    if encryption_key:
        data = _fernet(key, encryption_key).encrypt(data)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot write {path}: {exc}") from exc


def read_secret_file(key: str, path: Path, *, encryption_key: str | None) -> str | None:
    """What ``write_secret_file`` kept in ``path``; None when there is no such file yet."""
    from madoguchi.config.settings import ConfigError

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc}") from exc
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{key}: {path} is readable by others: chmod 600 it")
    if encryption_key:
        from cryptography.fernet import InvalidToken

        try:
            data = _fernet(key, encryption_key).decrypt(data)
        except InvalidToken as exc:
            raise ConfigError(f"{key}: {path} does not open with the configured key") from exc
    return data.decode("utf-8").strip() or None


def _fernet(key: str, encryption_key: str) -> Fernet:
    from madoguchi.config.settings import ConfigError

    try:
        return Fernet(encryption_key.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise ConfigError(f"{key}: the encryption key is not a Fernet key "
                          "(python -c 'from cryptography.fernet import Fernet; "
                          "print(Fernet.generate_key().decode())')") from exc
