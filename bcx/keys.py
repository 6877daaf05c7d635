"""The Redis key schema: the only place that builds key strings.

A series' keys share the hash tag ``{exchange:symbol}`` so they live on one Cluster node.
Every key starts with the configured prefix (default ``bcx``)::

    bcx:{coinbase:BTC-USD}:price             raw history, ZSET score=epoch s, member "<ms>:<value>"
                                             (also :bid, :ask)
    bcx:{coinbase:BTC-USD}:bid_size          top-of-book sizes, ZSET like the raw history, member
    bcx:{coinbase:BTC-USD}:ask_size          "<ms>:<size>" (when the venue sends sizes)
    bcx:{coinbase:BTC-USD}:trades            ZSET score=epoch s,
                                             member "<ms>:<price>:<size>:<b|s>:<id>"
    bcx:{coinbase:BTC-USD}:latest            HASH price, bid, ask, bid_size, ask_size, time (ms)
                                             and <field>_ms; last_size, last_side (buy|sell:
                                             the taker's), last_trade_ms of the newest trade
    bcx:{coinbase:BTC-USD}:price:ohlc:60     ZSET roll-up, score=bucket start (epoch s),
                                             member "<ms>:<open>:<high>:<low>:<close>:<count>"
    bcx:{coinbase:BTC-USD}:watermark         HASH history-manager progress per field/interval
    bcx:series                               SET of "exchange:symbol"
    bcx:ticks                                pub/sub channel of written tick batches
    bcx:trades                               pub/sub channel of written trade batches
    bcx:events / bcx:{events}:stream         trigger events: pub/sub channel / capped stream
    bcx:heartbeat:<component>                HASH with a TTL
    bcx:stats:tracker:<exchange>             HASH of per-exchange feed stats
    bcx:stats:tracker:<instance>:<exchange>  … of the tracker named by [tracker] instance
    bcx:stats:gaps:<exchange>                HASH symbol -> sequence gaps seen
    bcx:{rules} / bcx:{rules}:state          HASH id -> rule JSON / id -> state JSON
    bcx:{rules}:silences / :acks             HASH id -> silence / "id instance" -> ack JSON
    bcx:{events}:alerts / …:deadletter       LIST of delivered / undeliverable events

Keys that one transaction writes together share a hash tag, so every transaction stays in one
Redis Cluster slot: the event stream, alert history and dead-letter list (``{events}``: an
event is recorded and acknowledged at once), the rules and their state (``{rules}``).
:meth:`Keys.renamed` lists the names older versions used; ``bcx migrate`` moves them.
"""

from __future__ import annotations

from dataclasses import dataclass


def series_id(exchange: str, symbol: str) -> str:
    """The registry's name for a series, ``coinbase:BTC-USD``."""
    return f"{exchange}:{symbol}"


def split_series_id(series: str) -> tuple[str, str]:
    exchange, _, symbol = series.partition(":")
    return exchange, symbol


@dataclass(frozen=True)
class Keys:
    prefix: str = "bcx"

    # ---- one series
    def _series(self, exchange: str, symbol: str) -> str:
        return f"{self.prefix}:{{{exchange}:{symbol}}}"

    def raw(self, exchange: str, symbol: str, field: str) -> str:
        return f"{self._series(exchange, symbol)}:{field}"

    def trades(self, exchange: str, symbol: str) -> str:
        """ZSET of every trade, score = trade time (epoch s), member
        ``"<ms>:<price>:<size>:<b|s>:<id>"`` (:func:`bcx.ticks.trade_member`)."""
        return self.raw(exchange, symbol, "trades")

    def latest(self, exchange: str, symbol: str) -> str:
        return f"{self._series(exchange, symbol)}:latest"

    def rollup(self, exchange: str, symbol: str, field: str, interval_s: int) -> str:
        return f"{self._series(exchange, symbol)}:{field}:ohlc:{int(interval_s)}"

    def watermark(self, exchange: str, symbol: str) -> str:
        return f"{self._series(exchange, symbol)}:watermark"

    # ---- registries and channels
    @property
    def series(self) -> str:
        return f"{self.prefix}:series"

    @property
    def ticks_channel(self) -> str:
        return f"{self.prefix}:ticks"

    @property
    def trades_channel(self) -> str:
        """Pub/sub channel of written trade batches (:func:`bcx.store.trades.trade_message`)."""
        return f"{self.prefix}:trades"

    @property
    def events_channel(self) -> str:
        return f"{self.prefix}:events"

    @property
    def events_stream(self) -> str:
        return f"{self.prefix}:{{events}}:stream"

    def heartbeat(self, component: str) -> str:
        return f"{self.prefix}:heartbeat:{component}"

    @property
    def heartbeat_pattern(self) -> str:
        return f"{self.prefix}:heartbeat:*"

    @property
    def components(self) -> str:
        """SET of component names that ever wrote a heartbeat (so health needs no SCAN)."""
        return f"{self.prefix}:components"

    def tracker_stats(self, exchange: str, instance: str = "") -> str:
        """The stats of the unnamed tracker, or of ``[tracker] instance``."""
        if instance:
            return f"{self.prefix}:stats:tracker:{instance}:{exchange}"
        return f"{self.prefix}:stats:tracker:{exchange}"

    def gaps(self, exchange: str) -> str:
        return f"{self.prefix}:stats:gaps:{exchange}"

    @property
    def rules(self) -> str:
        return f"{self.prefix}:{{rules}}"

    @property
    def rules_state(self) -> str:
        return f"{self.prefix}:{{rules}}:state"

    @property
    def rules_silences(self) -> str:
        """rule id -> silence JSON ({"until", "comment", "time"})."""
        return f"{self.prefix}:{{rules}}:silences"

    @property
    def rules_acks(self) -> str:
        """"<rule id> <instance>" -> acknowledgement JSON ({"alert", "time"})."""
        return f"{self.prefix}:{{rules}}:acks"

    @property
    def rules_changed_channel(self) -> str:
        return f"{self.prefix}:rules:changed"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}:{{events}}:alerts"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}:{{events}}:deadletter"

    def renamed(self) -> list[tuple[str, str]]:
        """(name in versions before 0.2, name now) of every key that moved."""
        return [(f"{self.prefix}:{old}", new) for old, new in (
            ("events:stream", self.events_stream), ("alerts", self.alerts),
            ("deadletter", self.dead_letter), ("rules", self.rules),
            ("rules:state", self.rules_state))]
