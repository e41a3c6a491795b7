"""Configuration: one TOML file with documented defaults, overridable by MADOGUCHI_* variables."""

from madoguchi.config.settings import (
    DEFAULT_CONFIG_FILE,
    ConfigError,
    DaemonSettings,
    EmlDirSource,
    FaxSettings,
    FaxSpoolSource,
    ImapSource,
    Limits,
    MaildirSource,
    Settings,
    Source,
    SupportNumberSettings,
    ThreadingSettings,
    load_settings,
)

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "ConfigError",
    "DaemonSettings",
    "EmlDirSource",
    "FaxSettings",
    "FaxSpoolSource",
    "ImapSource",
    "Limits",
    "MaildirSource",
    "Settings",
    "Source",
    "SupportNumberSettings",
    "ThreadingSettings",
    "load_settings",
]
