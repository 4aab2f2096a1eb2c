"""`tierwise` command group. Subcommands are imported only when invoked, so `tierwise serve`
never pays for (or needs) torch, sklearn or mlflow."""

from __future__ import annotations

import importlib
from typing import Any

import click

# name -> "module:attribute" of a click command; each package owns its own cli module.
COMMANDS: dict[str, str] = {
    "serve": "tierwise.serve:serve",
    "train": "tierwise.train:train_command",
    "cv": "tierwise.cv:cv_command",
    "convert": "training.cli:convert",
    "promote": "training.cli:promote",
    "deploy": "training.cli:deploy",
    "label": "labeling.cli:label",
    "eval": "eval.cli:evaluate",
    "export-log": "tierwise.export_log:export_log",
    "replay": "eval.replay.cli:replay_command",
    "route-file": "tierwise.route_file:route_file_command",
    "calibrate": "training.calibrate:calibrate_command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            command: Any = getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            raise click.ClickException(
                f"'tierwise {name}' needs extra packages ({exc.name} missing): "
                "install with scripts/bootstrap dev"
            ) from exc
        return command  # type: ignore[no-any-return]


@click.group(cls=LazyGroup)
@click.version_option(package_name="tierwise")
def main() -> None:
    """tierwise: route each Claude call to the cheapest adequate tier."""


if __name__ == "__main__":  # python -m tierwise.cli
    main()
