"""What every command gets: the settings built once from the global options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import typer

from lambda_rt.config import Settings, load_settings

__all__ = ["CliContext", "settings_of"]


@dataclass
class CliContext:
    """Global options; settings are loaded on first use so ``--help`` needs none."""

    state_dir: Path | None
    config_file: Path | None
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(state_dir=self.state_dir, config_file=self.config_file)
        return self._settings


def settings_of(ctx: typer.Context) -> Settings:
    """The settings of this invocation (global options, env, files, defaults)."""
    obj = ctx.find_object(CliContext)
    if obj is None:  # invoked without the root callback (tests calling a command)
        obj = CliContext(state_dir=None, config_file=None)
    return obj.settings
