"""The one reader of secrets: an environment variable or a file, stripped, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from madoguchi.config import ConfigError, ImapSource
from madoguchi.config.mail import SmtpSettings
from madoguchi.config.secrets import read_secret
from madoguchi.config.web import WebSettings


def test_a_secret_from_the_environment_is_stripped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MADOGUCHI_TEST_SECRET", "  s3cret \n")
    assert read_secret("x.password", env="MADOGUCHI_TEST_SECRET", file=None) == "s3cret"


def test_the_environment_wins_over_the_file(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setenv("MADOGUCHI_TEST_SECRET", "from-env")
    (tmp_path / "secret").write_text("from-file\n", encoding="utf-8")
    assert read_secret("x.password", env="MADOGUCHI_TEST_SECRET",
                       file=tmp_path / "secret") == "from-env"


def test_a_secret_from_a_file_loses_its_newline(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("from-file\n", encoding="utf-8")
    assert read_secret("x.password", env=None, file=tmp_path / "secret") == "from-file"


def test_no_secret_configured_is_none() -> None:
    assert read_secret("x.password", env=None, file=None) is None


@pytest.mark.parametrize("value", [None, "", "   "])
def test_an_unset_or_empty_variable_is_an_error_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    monkeypatch.delenv("MADOGUCHI_TEST_SECRET", raising=False)
    if value is not None:
        monkeypatch.setenv("MADOGUCHI_TEST_SECRET", value)
    with pytest.raises(ConfigError, match=r"^x\.password_env: .*MADOGUCHI_TEST_SECRET"):
        read_secret("x.password", env="MADOGUCHI_TEST_SECRET", file=None)


def test_a_missing_or_empty_file_is_an_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^x\.password_file: .*No such file"):
        read_secret("x.password", env=None, file=tmp_path / "absent")
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^x\.password_file: .*empty"):
        read_secret("x.password", env=None, file=tmp_path / "empty")


def test_imap_smtp_and_metrics_read_their_secrets_through_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "pw").write_text("imap-pw\n", encoding="utf-8")
    imap = ImapSource(kind="imap", name="inbox", host="h", username="u",
                      password_file=tmp_path / "pw")
    assert imap.password() == "imap-pw"
    with pytest.raises(ConfigError, match=r"^sources\.other\.password_env: .*NO_SUCH_VAR"):
        ImapSource(kind="imap", name="other", host="h", username="u",
                   password_env="NO_SUCH_VAR").password()
    with pytest.raises(ConfigError, match=r"^sources\.none: set password_env or password_file"):
        ImapSource(kind="imap", name="none", host="h", username="u").password()
    monkeypatch.setenv("MADOGUCHI_TEST_SMTP", "smtp-pw")
    assert SmtpSettings(username="d", password_env="MADOGUCHI_TEST_SMTP").password() == "smtp-pw"
    assert WebSettings().metrics_token() is None
    with pytest.raises(ConfigError, match=r"^web\.metrics_token_file: "):
        WebSettings(metrics_token_file=tmp_path / "absent").metrics_token()
