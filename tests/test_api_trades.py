"""/trades (capped and paged like /history, trades of one millisecond never split or lost),
/latest top-of-book sizes and newest trade, the live `trade` event and ``bcx export --trades``,
against a real redis-server (standalone and cluster)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from flask.testing import FlaskClient

from bcx import config as configmod
from bcx.cli import main
from bcx.keys import Keys
from bcx.store import Stores
from bcx.ticks import Tick, Trade
from bcx.timeutil import now_ms
from tests.api_support import LiveServer, create, make_config
from tests.cluster_support import Backend
from tests.support import wait_for
from tests.test_api_stream import STREAM, SSEClient, subscribers

API = "/api/v1.0"
T0 = 1_700_000_000_000


@pytest.fixture
def r(backend: Backend) -> Iterator[Any]:
    client = backend.client()
    yield client
    client.close()


@pytest.fixture
def cfg(backend: Backend) -> configmod.Config:
    return make_config(backend.url, mode=backend.mode)


@pytest.fixture
def stores(r: Any, keys: Keys) -> Stores:
    return Stores.open(r, keys, publish_ticks=True)


def trade(ms: int, price: str, size: str = "0.5", side: str = "buy", trade_id: str = "1",
          symbol: str = "BTC-USD", exchange: str = "binance") -> Trade:
    return Trade(exchange, symbol, ms, price, size, side, trade_id)  # type: ignore[arg-type]


def many_trades() -> list[Trade]:
    """30 trades, three per millisecond at one price (ids tell them apart)."""
    return [trade(T0 + i // 3, f"{100 + i // 3}.10", f"0.{i + 1}", "buy" if i % 2 else "sell",
                  str(1000 + i)) for i in range(30)]


def test_trades_are_answered_oldest_first_with_numbers_side_and_id(client: FlaskClient,
                                                                   stores: Stores) -> None:
    stores.ticks.write([], many_trades()[:4])
    body = client.get(f"{API}/series/binance/BTC-USD/trades").get_json()
    assert body["trades"] == [[T0, 100.1, 0.1, "sell", "1000"], [T0, 100.1, 0.2, "buy", "1001"],
                              [T0, 100.1, 0.3, "sell", "1002"],
                              [T0 + 1, 101.1, 0.4, "buy", "1003"]]
    assert body["count"] == 4 and body["truncated"] is False and body["next_end"] is None


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("limit", [1, 2, 3, 4, 5, 7, 29, 30])
def test_paging_returns_every_trade_once(client: FlaskClient, stores: Stores, limit: int,
                                         order: str) -> None:
    written = many_trades()
    stores.ticks.write([], written)
    seen: list[list[Any]] = []
    query: dict[str, Any] = {"limit": limit, "order": order}
    for _ in range(40):
        body = client.get(f"{API}/series/binance/BTC-USD/trades", query_string=query).get_json()
        assert body["count"] <= limit and body["order"] == order
        seen += body["trades"]
        if not body["truncated"]:
            break
        if order == "asc":
            query["start"] = body["next_start"]
        else:
            query["end"] = body["next_end"]
    if limit < 3:
        # A whole page within one millisecond: the rest of it is skipped to make progress.
        assert len(seen) < 30
        return
    ids = [t.id for t in written]
    assert sorted(row[4] for row in seen) == ids and len(seen) == 30
    assert [row[0] for row in seen] == sorted((row[0] for row in seen),
                                              reverse=order == "desc")


def test_limit_exactly_the_range_is_not_truncated(client: FlaskClient, stores: Stores) -> None:
    stores.ticks.write([], many_trades())
    body = client.get(f"{API}/series/binance/BTC-USD/trades?limit=30").get_json()
    assert body["truncated"] is False and body["count"] == 30
    body = client.get(f"{API}/series/binance/BTC-USD/trades?limit=29").get_json()
    # The cut falls inside the newest millisecond: its three trades wait for the next page.
    assert body["truncated"] is True and body["count"] == 27 and body["next_start"] == T0 + 9
    body = client.get(f"{API}/series/binance/BTC-USD/trades?limit=29&order=desc").get_json()
    assert body["truncated"] is True and body["count"] == 27 and body["next_end"] == T0


def test_trades_range_limit_and_errors(client: FlaskClient, stores: Stores) -> None:
    stores.ticks.write([], many_trades())
    body = client.get(f"{API}/series/binance/BTC-USD/trades",
                      query_string={"start": T0 + 2, "end": T0 + 3}).get_json()
    assert [row[4] for row in body["trades"]] == [str(i) for i in range(1006, 1012)]
    assert client.get(f"{API}/series/binance/BTC-EUR/trades").status_code == 404
    assert client.get(f"{API}/series/binance/BTC-USD/trades?limit=0").status_code == 400
    assert client.get(f"{API}/series/binance/BTC-USD/trades?side=buy").status_code == 400


def test_latest_adds_sizes_and_the_newest_trade(client: FlaskClient, stores: Stores) -> None:
    ms = now_ms()
    stores.ticks.write([Tick("binance", "BTC-USD", ms, bid="100.5", ask="100.7",
                             bid_size="1.25000000", ask_size="0.00000049")],
                       [trade(ms - 5, "100.6", "0.75", "sell", "7"),
                        trade(ms - 9, "100.4", "9", "buy", "6")])
    body = client.get(f"{API}/series/binance/BTC-USD/latest").get_json()
    assert (body["bid_size"], body["ask_size"]) == (1.25, 4.9e-7)
    assert (body["last_size"], body["last_side"]) == (0.75, "sell")
    listed = client.get(f"{API}/series").get_json()["series"][0]
    assert (listed["bid_size"], listed["last_side"]) == (1.25, "sell")


def test_latest_sizes_are_null_when_unknown(client: FlaskClient, stores: Stores) -> None:
    stores.ticks.write([Tick("coinbase", "BTC-USD", now_ms(), price="1", bid="1", ask="2")])
    body = client.get(f"{API}/series/coinbase/BTC-USD/latest").get_json()
    assert [body[k] for k in ("bid_size", "ask_size", "last_size", "last_side")] == [None] * 4


def test_an_older_trade_never_replaces_the_latest_one(stores: Stores, r: Any,
                                                      keys: Keys) -> None:
    stores.ticks.write([], [trade(T0 + 10, "2", "3", "buy", "b")])
    stores.ticks.write([], [trade(T0 + 9, "1", "4", "sell", "a")])
    latest = r.hgetall(keys.latest("binance", "BTC-USD"))
    assert (latest["last_size"], latest["last_side"], latest["last_trade_ms"]) == (
        "3", "buy", str(T0 + 10))


def test_stream_relays_trades_as_trade_events_filtered_by_series(
        live_server: LiveServer, r: Any, keys: Keys, stores: Stores) -> None:
    response = requests.get(f"{live_server.url}{STREAM}?series=binance:BTC-USD", stream=True,
                            timeout=(5, 15))
    try:
        client = SSEClient(response)
        assert client.next_comment() == ": connected"
        ms = now_ms()
        stores.ticks.write([], [trade(ms, "65000.5", "0.01", "sell", "x1", symbol="ETH-USD")])
        stores.ticks.write([], [trade(ms, "65000.5", "0.01", "sell", "42")])
        assert client.next_event() == ("trade", [{
            "series": "binance:BTC-USD", "time": ms, "price": 65000.5, "size": 0.01,
            "side": "sell", "id": "42"}])
    finally:
        response.close()
        wait_for(lambda: subscribers(r, keys.trades_channel) == 0, timeout=15,
                 message="the stream to end")


def test_export_trades_writes_them_verbatim(stores: Stores, backend: Backend,
                                            tmp_path: Path) -> None:
    written = many_trades()
    stores.ticks.write([], written)
    path = tmp_path / "bcx.conf"
    path.write_text(f"[redis]\nurl = {backend.url}\nmode = {backend.mode}\n")
    result = CliRunner().invoke(main, ["export", "--config", str(path), "binance:BTC-USD",
                                       "--trades", "--start", str(T0 + 1)])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["time_ms", "time", "price", "size", "side", "id"]
    assert rows[1] == [str(T0 + 1), "2023-11-14T22:13:20.001+00:00", "101.10", "0.4", "buy",
                       "1003"]
    assert [row[5] for row in rows[1:]] == [t.id for t in written[3:]]


def test_export_trades_pages_through_one_millisecond(stores: Stores) -> None:
    from bcx.export import trade_rows

    written = many_trades()
    stores.ticks.write([], written)
    got = list(trade_rows(stores.trades, "binance", "BTC-USD", None, None, page=2))
    assert sorted(t.id for t in got) == [t.id for t in written]


def test_capped_trades_say_so_in_the_document(cfg: configmod.Config) -> None:
    app = create(make_config(cfg.redis.url, mode=cfg.redis.mode, history_cap="20"))
    document = app.test_client().get(f"{API}/openapi.json").get_json()
    limit = next(p for p in document["paths"]["/series/{exchange}/{symbol}/trades"]["get"]
                 ["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 20
