"""Trades and top-of-book sizes through a real tracker into Redis (standalone and cluster, the
``backend`` fixture): every recording that carries trades, replayed over a real websocket,
stores exactly the distinct trades the recording holds (computed by ``trackerkit`` from the
protocol notes, without the adapters), with time, price, size and taker side verbatim; sizes
are stored verbatim beside the bid and ask; the latest hash and the stats hash follow."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bcx.keys import Keys
from bcx.replay import ReplayServer
from bcx.ticks import parse_member, parse_trade_member
from bcx.tracker.run import Tracker, tracker_client
from tests import trackerkit
from tests.cluster_support import Backend
from tests.support import wait_for
from tests.test_exchanges import RECORDED_SYMBOLS, SESSIONS

keys = Keys("bcx")
SIZE_SESSIONS = ("coinbase_ticker", "binance_bookticker", "bitfinex_ticker", "kraken_ticker")


@dataclass
class Replayed:
    name: str
    exchange: str
    r: Any
    tracker: Tracker
    native: dict[str, str]  # normalised symbol -> the venue's
    published_trades: list[dict]

    def stored_trades(self) -> dict[tuple[str, str], tuple[int, str, str, str]]:
        out = {}
        for symbol, native in self.native.items():
            key = keys.trades(self.exchange, symbol)
            for member, score in self.r.zrange(key, 0, -1, withscores=True):
                fields = parse_trade_member(member)
                assert round(score * 1000) == fields.ms, member
                assert (native, fields.id) not in out, f"trade {fields.id} stored twice"
                out[(native, fields.id)] = (fields.ms, fields.price, fields.size, fields.side)
        return out

    def stored_sizes(self, symbol: str, field: str) -> set[tuple[int, str]]:
        return {parse_member(m) for m in self.r.zrange(keys.raw(self.exchange, symbol, field),
                                                       0, -1)}


@pytest.fixture
def replay(backend: Backend, tmp_path: Path) -> Iterator[Callable[[str], Replayed]]:
    started: list[tuple[Tracker, ReplayServer]] = []
    r = backend.client()
    pubsub = r.pubsub()

    def run(name: str) -> Replayed:
        exchange = SESSIONS[name]
        symbols = RECORDED_SYMBOLS[exchange]
        pubsub.subscribe(keys.trades_channel)
        wait_for(lambda: pubsub.get_message(timeout=0.1), message="subscription")
        server = ReplayServer(trackerkit.DATA / f"{name}.session.jsonl", speed=0)
        url = server.start()
        config = trackerkit.tracker_config(tmp_path, backend.url,
                                           {exchange: (url, sorted(symbols.values()))},
                                           mode=backend.mode)
        tracker = Tracker(config, tracker_client(config))
        started.append((tracker, server))
        tracker.start()
        feed, writer = tracker.stats[0], tracker.writer
        frames = len(trackerkit.session_frames(name))
        published: list[dict] = []

        def done() -> bool:
            while (message := pubsub.get_message(timeout=0.01)) is not None:
                if message["type"] == "message":
                    published.extend(json.loads(message["data"]))
            return (feed.frames >= frames and writer.buffered == 0 and writer.inbox.empty()
                    and writer.written == feed.ticks and writer.written_trades == feed.trades
                    and len(published) == feed.trades
                    and r.hget(keys.tracker_stats(exchange), "trades") == str(feed.trades))

        wait_for(done, timeout=30, message=f"{name} replayed, written and published")
        return Replayed(name, exchange, r, tracker,
                        {normal: native for native, normal in symbols.items()}, published)

    yield run
    for tracker, server in started:
        tracker.stop()
        server.stop()
    pubsub.close()
    r.close()


@pytest.mark.parametrize("name", trackerkit.TRADE_SESSIONS)
def test_every_recorded_trade_is_stored_once_with_its_fields_verbatim(replay, name: str
                                                                       ) -> None:
    replayed = replay(name)
    expected = trackerkit.expected_trades(name)
    assert expected
    assert replayed.stored_trades() == expected
    stats = replayed.r.hgetall(keys.tracker_stats(replayed.exchange))
    assert stats["trades"] == str(len(expected))


@pytest.mark.parametrize("name", trackerkit.TRADE_SESSIONS)
def test_each_stored_trade_is_published_once_on_the_trades_channel(replay, name: str) -> None:
    replayed = replay(name)
    published = {(item["series"], item["id"]): (item["time"], item["price"], item["size"],
                                                item["side"])
                 for item in replayed.published_trades}
    assert len(published) == len(replayed.published_trades)
    assert published == {
        (f"{replayed.exchange}:{RECORDED_SYMBOLS[replayed.exchange][native]}", trade_id): value
        for (native, trade_id), value in trackerkit.expected_trades(name).items()}


def test_binance_trades_in_one_millisecond_at_one_price_are_separate_entries(replay) -> None:
    replayed = replay("binance_bookticker")
    stored = replayed.stored_trades()

    def pairs(trades: dict) -> int:
        same = Counter((native, ms, price) for (native, _), (ms, price, _, _) in trades.items())
        return sum(count - 1 for count in same.values() if count > 1)

    assert pairs(trackerkit.expected_trades("binance_bookticker")) == 8
    assert pairs(stored) == 8


@pytest.mark.parametrize("name", SIZE_SESSIONS)
def test_top_of_book_sizes_are_stored_verbatim_beside_bid_and_ask(replay, name: str) -> None:
    replayed = replay(name)
    expected: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    native_to_normal = RECORDED_SYMBOLS[replayed.exchange]
    for native, bid_size, ask_size in trackerkit.expected_sizes(name):
        symbol = native_to_normal[native]
        for field, size in (("bid_size", bid_size), ("ask_size", ask_size)):
            if size is not None:
                expected[symbol][field].append(size)
    for symbol in replayed.native:
        latest = replayed.r.hgetall(keys.latest(replayed.exchange, symbol))
        for field in ("bid_size", "ask_size"):
            sizes = expected[symbol][field]
            stored = replayed.stored_sizes(symbol, field)
            assert {value for _, value in stored} == set(sizes), (symbol, field)
            assert latest.get(field) == (sizes[-1] if sizes else None), (symbol, field)
            # Each size stands at its bid's or ask's time (the same member scheme).
            side = field.removesuffix("_size")
            bid_times = {ms for ms, _ in replayed.stored_sizes(symbol, side)}
            assert {ms for ms, _ in stored} <= bid_times, (symbol, field)


@pytest.mark.parametrize("name", trackerkit.TRADE_SESSIONS)
def test_latest_hash_holds_the_newest_trade_size_and_side(replay, name: str) -> None:
    replayed = replay(name)
    by_symbol: dict[str, list[tuple[int, str, str, str]]] = defaultdict(list)
    for (native, _), value in trackerkit.expected_trades(name).items():
        by_symbol[RECORDED_SYMBOLS[replayed.exchange][native]].append(value)
    for symbol, trades in by_symbol.items():
        newest = max(ms for ms, *_ in trades)
        latest = replayed.r.hgetall(keys.latest(replayed.exchange, symbol))
        assert int(latest["last_trade_ms"]) == newest, symbol
        assert (latest["last_size"], latest["last_side"]) in {
            (size, side) for ms, _, size, side in trades if ms == newest}, symbol
