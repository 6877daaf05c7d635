"""The ``bcx`` command line: thin commands that load the config and call one library function.

Component modules are imported inside their command so ``bcx config check`` stays fast and a
broken optional dependency only affects the command that needs it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from bcx import config as configmod
from bcx.secrets import Redactor, install_log_filter
from bcx.timeutil import parse_duration, parse_instant

EXIT_CONFIG = 2


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # apscheduler reports every job run at INFO; only its warnings are news.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLogger().level))


def load_config(path: str | None) -> configmod.Config:
    """The config, or a message naming file, section and key and exit status 2. From here on
    no log line of the command carries one of the config's secrets."""
    try:
        cfg = configmod.load(path)
    except configmod.ConfigError as exc:
        click.echo(f"bcx: invalid configuration:\n{exc}", err=True)
        raise SystemExit(EXIT_CONFIG) from None
    install_log_filter(Redactor(cfg.secrets()))
    return cfg


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


def _parsed(parse: Callable[[str], Any], expected: str) -> Callable[..., Any]:
    """A click callback that parses an option with ``parse`` and says what was expected."""

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError:
            raise click.BadParameter(f"expected {expected}") from None

    return callback


_duration_arg = _parsed(parse_duration, "a duration such as 500ms, 30s or 2m")
_instant_arg = _parsed(parse_instant, "epoch seconds, epoch milliseconds or ISO-8601")


@main.command()
@config_option
@click.option("--component", "components", multiple=True, metavar="NAME",
              help="Check only this component (repeatable; 'watcher' means both its threads).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--wait", default=None, metavar="DURATION", callback=_duration_arg,
              help="Wait up to DURATION for heartbeats written after this command started.")
@click.option("--since", default=None, metavar="INSTANT", callback=_instant_arg,
              help="Count only heartbeats written at or after INSTANT (epoch s/ms, ISO-8601).")
def status(config_path: str | None, components: tuple[str, ...], as_json: bool,
           wait: float | None, since: int | None) -> None:
    """Each component up/degraded/down with the reason, and stale series; exit 0 all well,
    1 anything down, degraded or stale, 2 an unknown --component, 3 no Redis."""
    from bcx import status as statusmod

    raise SystemExit(statusmod.run(load_config(config_path), components, as_json, wait, since))


@main.command()
@config_option
def server(config_path: str | None) -> None:
    """Deliver trigger events (log, webhook, command) at least once until SIGTERM."""
    from bcx.server.run import run

    raise SystemExit(run(load_config(config_path)))


@main.command()
@click.argument("session", type=click.Path(exists=True, dir_okay=False))
@click.option("--exchange", type=click.Choice(configmod.EXCHANGES), default=None,
              help="The session's exchange (default: from its file name or connect URL).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535),
              help="Port; 0 picks a free one. The URL is printed as the first stdout line.")
@click.option("--speed", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Recorded pace times this factor; 0 sends as fast as possible.")
@click.option("--loop", is_flag=True, help="Repeat forever, times shifted to now.")
@click.option("--strict-symbols", is_flag=True,
              help="Refuse subscriptions to symbols the recording does not carry.")
@click.option("--rest-port", default=0, show_default=True, type=click.IntRange(0, 65535),
              help="Port of the venue's REST endpoints (the session's trades, generated "
                   "candles); its URL is the second stdout line. 0 picks a free one.")
@click.option("--no-rest", is_flag=True, help="Serve the websocket only.")
def replay(session: str, exchange: str | None, host: str, port: int, speed: float, loop: bool,
           strict_symbols: bool, rest_port: int, no_rest: bool) -> None:
    """Serve a recorded SESSION (*.session.jsonl) as a local exchange websocket until SIGTERM,
    and the venue's REST trades and candles endpoints beside it."""
    from bcx.replay import run

    try:
        run(session, exchange, host, port, speed, loop, strict_symbols,
            None if no_rest else rest_port)
    except (ValueError, RuntimeError) as exc:
        click.echo(f"bcx replay: {exc}", err=True)
        raise SystemExit(EXIT_CONFIG) from None


@main.command()
@config_option
def tracker(config_path: str | None) -> None:
    """Stream the configured exchanges into Redis until SIGTERM; flush and exit 0."""
    from bcx.tracker.run import run

    raise SystemExit(run(load_config(config_path)))


@main.command()
@config_option
def watcher(config_path: str | None) -> None:
    """Keep history bounded (roll-ups, retention, archive) and evaluate alert rules."""
    from bcx.watcher.run import run

    raise SystemExit(run(load_config(config_path)))


@main.command()
@config_option
@click.option("--bind", default=None, metavar="HOST:PORT", help="Override [web] bind.")
@click.option("--debug", is_flag=True, help="Flask debug mode with reloader (never in production).")
def web(config_path: str | None, bind: str | None, debug: bool) -> None:
    """Serve the web app and API on the development server (production: gunicorn)."""
    from web.devserver import run

    run(load_config(config_path), bind, debug)


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def _may_write(path: str, force: bool) -> None:
    """An existing ``-o`` file is replaced only with --force or a yes on a terminal."""
    if path == "-" or force or not os.path.exists(path):
        return
    if not _interactive():
        raise click.UsageError(f"{path} exists: pass --force to overwrite it")
    if not click.confirm(f"{path} exists. Overwrite?", default=False, err=True):
        raise click.ClickException(f"kept {path}")


class _Bar:
    """A rich progress bar on stderr, started at the first report."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None
        self.task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn

            self.bar = Progress(self.label, BarColumn(), TaskProgressColumn(),
                                TimeRemainingColumn(), console=Console(stderr=True))
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=max(total, 1))
        self.bar.update(self.task, completed=min(done, total), total=max(total, 1))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@contextlib.contextmanager
def _long_command(cfg: configmod.Config, client_name: str, label: str, progress: bool | None,
                  errors: type[Exception] | tuple[type[Exception], ...]
                  ) -> Iterator[tuple[Any, _Bar | None]]:
    """The Redis client and progress bar of a long command (export, backfill): ``errors`` and
    Redis errors end it as one line a user can act on; both are closed at the end. The bar
    shows when asked, else when stderr is a terminal."""
    import redis

    from bcx.redisconn import from_config
    from bcx.store.errors import advice

    bar = _Bar(label) if (sys.stderr.isatty() if progress is None else progress) else None
    connection = from_config(cfg.redis, client_name=client_name)
    try:
        yield connection, bar
    except errors as exc:
        raise click.ClickException(str(exc)) from None
    except redis.RedisError as exc:
        raise click.ClickException(f"Redis: {advice(exc) or exc}") from None
    finally:
        if bar is not None:
            bar.close()
        connection.close()


@main.command()
@config_option
@click.argument("series", metavar="EXCHANGE:SYMBOL")
@click.option("--field", "fields", multiple=True, type=click.Choice(["price", "bid", "ask"]),
              help="Field to export (repeatable; default: all three).")
@click.option("--start", callback=_instant_arg, help="From (epoch s, epoch ms or ISO-8601).")
@click.option("--end", callback=_instant_arg, help="Until, inclusive.")
@click.option("--interval", callback=_duration_arg,
              help="Export OHLC candles of this interval (e.g. 10s, 1m, 4h: any whole number "
                   "of seconds, as /ohlc) instead of raw ticks.")
@click.option("--trades", is_flag=True,
              help="Export the trades (time_ms,time,price,size,side,id) instead of ticks.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              help="CSV file to write (default: standard output).")
@click.option("--force", is_flag=True, help="Overwrite an existing --output without asking.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: when stderr is a terminal).")
def export(config_path: str | None, series: str, fields: tuple[str, ...], start: int | None,
           end: int | None, interval: float | None, trades: bool, output: str, force: bool,
           progress: bool | None) -> None:
    """Write a series' raw ticks (or, with --interval, its candles) as CSV."""

    from bcx import export as exportmod
    from bcx.coldtier.tiered import TieredTicks, TieredTrades
    from bcx.keys import Keys
    from bcx.store import RollupStore, Store, TradeStore

    cfg = load_config(config_path)
    exchange, _, symbol = series.partition(":")
    if not symbol:
        raise click.BadParameter("expected EXCHANGE:SYMBOL, such as coinbase:BTC-USD",
                                 param_hint="SERIES")
    if interval is not None and (interval != int(interval)
                                 or not 1 <= interval <= exportmod.MAX_INTERVAL_S):
        raise click.BadParameter(f"expected a whole number of seconds from 1s to "
                                 f"{exportmod.MAX_INTERVAL_S}s, such as 10s, 15m or 1h",
                                 param_hint="--interval")
    _may_write(output, force)
    keys = Keys(cfg.redis.prefix)
    # A file is written beside its target and renamed at the end: a failed export never
    # leaves a truncated file in place of the one it was to replace.
    partial = None if output == "-" else f"{output}.part"
    with _long_command(cfg, "bcx-export", "exporting", progress,
                       exportmod.ExportError) as (connection, bar):
        try:
            with click.open_file(partial or "-", "w", encoding="utf-8") as handle:
                # Raw reads reach the archive's dataset for history past raw_retention.
                archive_dir = cfg.watcher.archive_dir if cfg.watcher.archive else None
                ticks = TieredTicks(Store(connection, keys), archive_dir)
                rows = exportmod.export(
                    ticks, RollupStore(connection, keys), handle, exchange.lower(),
                    symbol.upper(), fields or ("price", "bid", "ask"), start, end,
                    None if interval is None else int(interval),
                    [int(seconds) for seconds, _ in cfg.watcher.rollups], bar,
                    TieredTrades(TradeStore(connection, keys), archive_dir, ticks.cold)
                    if trades else None)
            if partial:
                os.replace(partial, output)
        finally:
            if partial and os.path.exists(partial):
                os.remove(partial)
    click.echo(f"exported {rows} rows", err=True)


@main.command()
@config_option
@click.argument("series", metavar="EXCHANGE:SYMBOL")
@click.option("--start", callback=_instant_arg, required=True,
              help="From (epoch s, epoch ms or ISO-8601).")
@click.option("--end", callback=_instant_arg, default=None, help="Until (default: now).")
@click.option("--interval", callback=_duration_arg, default="1m", show_default=True,
              help="Candle interval: one the venue serves and a [watcher] rollups interval.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: when stderr is a terminal).")
def backfill(config_path: str | None, series: str, start: int, end: int | None,
             interval: float, progress: bool | None) -> None:
    """Import a venue's historical candles into the roll-ups (resumable; a second run over
    the same range adds nothing). Needs [exchange:NAME] rest_url."""

    from bcx import rest
    from bcx.backfill import BackfillError, run_import
    from bcx.keys import Keys
    from bcx.rest.client import RestClient, RestError
    from bcx.store import Stores
    from bcx.timeutil import now_ms

    cfg = load_config(config_path)
    exchange, _, symbol = series.partition(":")
    exchange, symbol = exchange.lower(), symbol.upper()
    if not symbol or exchange not in rest.NAMES:
        raise click.BadParameter(f"expected EXCHANGE:SYMBOL with EXCHANGE one of "
                                 f"{', '.join(rest.NAMES)}, such as coinbase:BTC-USD",
                                 param_hint="SERIES")
    rest_url = cfg.exchanges[exchange].rest_url
    if not rest_url:
        raise click.ClickException(f"[exchange:{exchange}] rest_url is empty: set the venue's "
                                   "REST API URL")
    venue = rest.venue(exchange)
    with _long_command(cfg, "bcx-backfill", "importing", progress,
                       (BackfillError, RestError)) as (connection, bar):
        report = run_import(Stores.open(connection, Keys(cfg.redis.prefix)),
                            RestClient(rest_url, venue.RATE), venue, exchange, symbol,
                            int(interval), start, end if end is not None else now_ms(),
                            [int(seconds) for seconds, _ in cfg.watcher.rollups], bar)
    click.echo(report.summary())


@main.group()
def archive() -> None:
    """The archive of raw history past raw_retention (a Parquet dataset)."""


@archive.command("convert")
@config_option
def archive_convert(config_path: str | None) -> None:
    """Turn a CSV archive of an earlier version (under [watcher] archive_dir) into the
    Parquet dataset once; each CSV file is deleted once its rows are in the dataset."""
    from bcx.coldtier.convert import convert
    from bcx.coldtier.dataset import ArchiveError

    root = load_config(config_path).watcher.archive_dir
    if not os.path.isdir(root):
        raise click.ClickException(f"no archive at {root} ([watcher] archive_dir)")
    try:
        files, rows = convert(root, lambda text: click.echo(text, err=True))
    except ArchiveError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"converted {files} CSV files, {rows} rows added to the dataset in {root}")


@main.command()
@config_option
def migrate(config_path: str | None) -> None:
    """Move keys an older version named differently to their current names (idempotent).

    Exit 0 when every key is where this version looks for it, 1 when one was kept for you to
    inspect, 3 when Redis cannot be reached."""
    import redis

    from bcx.keys import Keys
    from bcx.redisconn import from_config
    from bcx.store.migrations import migrate as run_migrations

    cfg = load_config(config_path)
    connection = from_config(cfg.redis, client_name="bcx-migrate")
    try:
        steps = run_migrations(connection, Keys(cfg.redis.prefix))
    except (redis.RedisError, OSError) as exc:
        click.echo(f"bcx: cannot migrate, Redis: {exc}", err=True)
        raise SystemExit(3) from None
    finally:
        connection.close()
    for step in steps:
        if step.action != "nothing":
            click.echo(f"{step.old} -> {step.new}: {step.action}")
    kept = [step for step in steps if step.action.startswith("kept")]
    if not any(step.action != "nothing" for step in steps):
        click.echo("nothing to migrate")
    raise SystemExit(1 if kept else 0)


if __name__ == "__main__":
    main()
