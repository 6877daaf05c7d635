"""The ``bcx`` command line: thin commands that load the config and call one library function.

Component modules are imported inside their command so ``bcx config check`` stays fast and a
broken optional dependency only affects the command that needs it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from bcx import config as configmod

EXIT_CONFIG = 2


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def load_config(path: str | None) -> configmod.Config:
    """The config, or a message naming file, section and key and exit status 2."""
    try:
        return configmod.load(path)
    except configmod.ConfigError as exc:
        click.echo(f"bcx: invalid configuration:\n{exc}", err=True)
        raise SystemExit(EXIT_CONFIG) from None


def config_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--config", "config_path", metavar="PATH", default=None,
        help="Config file (default: $BCX_CONF, /etc/bcx/bcx.conf, ./bcx.conf).",
    )(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default=lambda: os.environ.get("BCX_LOG_LEVEL", "info"),
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
              help="Logging level (default: $BCX_LOG_LEVEL or info).")
@click.version_option(package_name="bcx")
def main(log_level: str) -> None:
    """BCX: a Redis-centric monitor for crypto markets."""
    setup_logging(log_level)


@main.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("check")
@config_option
def config_check(config_path: str | None) -> None:
    """Print the effective config (secrets masked); exit 0 when valid, 2 when not."""
    click.echo(configmod.render(load_config(config_path)), nl=False)


@config.command("sample")
def config_sample() -> None:
    """Print a sample bcx.conf documenting every key with its default."""
    from bcx.sample import sample_config

    click.echo(sample_config(), nl=False)


if __name__ == "__main__":
    main()
