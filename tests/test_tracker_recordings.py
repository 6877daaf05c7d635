"""The tracker against each recorded session, replayed over a real websocket into a real
Redis: every update the recording carries is written, in order, with its decimal text intact.

Expected values are read from the recording by the small readers in ``trackerkit`` (written
from the protocol notes, not from the adapters). Venues without event times stamp ticks with
the receive time, so two equal values in one millisecond are one member: the stored set is
compared with the distinct (time, value) pairs of the ticks the tracker published.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bcx.keys import Keys
from bcx.replay import ReplayServer
from bcx.ticks import parse_member
from bcx.tracker.run import Tracker, tracker_client
from tests import trackerkit
from tests.cluster_support import Backend
from tests.support import wait_for

# Native symbol -> normalised symbol, per recording (the mapping the venues document).
SYMBOLS = {
    "coinbase_ticker": {product: product for product in trackerkit.COINBASE_PRODUCTS},
    "binance_bookticker": {
        "BTCAUD": "BTC-AUD", "MANAUSDT": "MANA-USDT", "ETHBRL": "ETH-BRL",
        "DENTUSDT": "DENT-USDT", "ZILUSDT": "ZIL-USDT", "RENBTCETH": "RENBTC-ETH",
        "BTCSTUSDT": "BTCST-USDT", "QTUMETH": "QTUM-ETH", "AXSBNB": "AXS-BNB",
        "NEOUSDC": "NEO-USDC"},
    "bitfinex_ticker": {
        "tETH2X:ETH": "ETH2X-ETH", "tREQUSD": "REQ-USD", "tGTXUST": "GTX-USDT",
        "tCHZUST": "CHZ-USDT", "tKNCBTC": "KNC-BTC", "tETHJPY": "ETH-JPY",
        "tZRXETH": "ZRX-ETH", "tLRCBTC": "LRC-BTC"},
    "kraken_ticker": {
        "ALGO/XBT": "ALGO-BTC", "LSK/USD": "LSK-USD", "USDC/GBP": "USDC-GBP",
        "FIL/XBT": "FIL-BTC", "WAVES/ETH": "WAVES-ETH", "ICX/USD": "ICX-USD",
        "AUD/USD": "AUD-USD", "KAVA/USD": "KAVA-USD", "DASH/EUR": "DASH-EUR",
        "XBT/USD": "BTC-USD"},
}
EXCHANGE = {name: name.split("_")[0] for name in SYMBOLS}

Slot = tuple[str, str]  # (symbol, field)


class Replayed:
    """One recording streamed through a tracker: what the recording says, what was published
    and what is stored."""

    def __init__(self, name: str, r: redis.Redis, published: list[dict]):
        self.name = name
        self.exchange = EXCHANGE[name]
        self.r = r
        self.keys = Keys("bcx")
        self.published = published
        self.expected: dict[Slot, list[tuple[str, int | None]]] = defaultdict(list)
        for native, field, value, ms in trackerkit.expected_updates(name):
            self.expected[(SYMBOLS[name][native], field)].append((value, ms))

    def published_by_slot(self) -> dict[Slot, list[tuple[str, int]]]:
        out: dict[Slot, list[tuple[str, int]]] = defaultdict(list)
        for tick in self.published:
            exchange, _, symbol = tick["series"].partition(":")
            assert exchange == self.exchange
            for field in ("price", "bid", "ask"):
                if field in tick:
                    out[(symbol, field)].append((tick[field], tick["time"]))
        return out

    def stored(self, slot: Slot) -> set[tuple[int, str]]:
        key = self.keys.raw(self.exchange, slot[0], slot[1])
        return {parse_member(member) for member in self.r.zrange(key, 0, -1)}


@pytest.fixture
def replay_recording(backend: Backend, tmp_path: Path) -> Iterator[callable]:
    """Runs on the standalone server and on the cluster (the ``backend`` fixture)."""
    started: list[tuple[Tracker, ReplayServer]] = []
    r = backend.client()
    pubsub = r.pubsub()

    def run(name: str) -> Replayed:
        published: list[dict] = []
        pubsub.subscribe(Keys("bcx").ticks_channel)
        wait_for(lambda: pubsub.get_message(timeout=0.1), message="subscription")
        server = ReplayServer(trackerkit.DATA / f"{name}.session.jsonl", speed=0)
        url = server.start()
        symbols = sorted(set(SYMBOLS[name].values()))
        config = trackerkit.tracker_config(tmp_path, backend.url, {EXCHANGE[name]: (url, symbols)},
                                           mode=backend.mode)
        tracker = Tracker(config, tracker_client(config))
        started.append((tracker, server))
        tracker.start()
        replayed = Replayed(name, r, published)
        want = {slot: len(values) for slot, values in replayed.expected.items()}

        def all_published() -> bool:
            while (message := pubsub.get_message(timeout=0.05)) is not None:
                if message["type"] == "message":
                    published.extend(json.loads(message["data"]))
            got = {slot: len(values) for slot, values in replayed.published_by_slot().items()}
            return got == want

        # On a timeout the comparisons in the test say what is missing.
        with contextlib.suppress(AssertionError):
            wait_for(all_published, timeout=20, message=f"every update of {name} published")
        return replayed

    yield run
    for tracker, server in started:
        tracker.stop()
        server.stop()
    pubsub.close()
    r.close()


@pytest.mark.parametrize("name", sorted(SYMBOLS))
def test_every_recorded_update_is_written_in_order(replay_recording: callable,
                                                    name: str) -> None:
    replayed = replay_recording(name)
    published = replayed.published_by_slot()
    assert set(published) == set(replayed.expected)
    for slot, updates in replayed.expected.items():
        assert [value for value, _ in published[slot]] == [value for value, _ in updates], slot
        recorded_times = [ms for _, ms in updates]
        if None not in recorded_times:
            assert [ms for _, ms in published[slot]] == recorded_times, slot


@pytest.mark.parametrize("name", sorted(SYMBOLS))
def test_stored_counts_per_series_and_field_match_the_recording(replay_recording: callable,
                                                               name: str) -> None:
    replayed = replay_recording(name)
    published = replayed.published_by_slot()
    for slot, updates in replayed.expected.items():
        stored = replayed.stored(slot)
        assert stored == {(ms, value) for value, ms in published[slot]}, slot
        if None not in (ms for _, ms in updates):
            # The venue's own times: the count follows from the recording alone.
            assert len(stored) == len({(ms, value) for value, ms in updates}), slot


@pytest.mark.parametrize("name", sorted(SYMBOLS))
def test_latest_values_are_the_last_recorded(replay_recording: callable, name: str) -> None:
    replayed = replay_recording(name)
    last: dict[str, dict[str, str]] = defaultdict(dict)
    for (symbol, field), updates in replayed.expected.items():
        last[symbol][field] = updates[-1][0]
    for symbol, fields in last.items():
        latest = replayed.r.hgetall(replayed.keys.latest(replayed.exchange, symbol))
        assert {field: latest.get(field) for field in fields} == fields, symbol


@pytest.mark.parametrize(("name", "symbol", "field", "text"), [
    ("binance_bookticker", "ZIL-USDT", "bid", "0.21437000"),
    ("coinbase_ticker", "BAND-GBP", "price", "14.7775"),
    ("bitfinex_ticker", "KNC-BTC", "bid", "0.00005767"),
    ("kraken_ticker", "BTC-USD", "bid", "58729.40000"),
])
def test_decimal_strings_are_stored_verbatim(replay_recording: callable, name: str,
                                             symbol: str, field: str, text: str) -> None:
    replayed = replay_recording(name)
    assert text in {value for _, value in replayed.stored((symbol, field))}
