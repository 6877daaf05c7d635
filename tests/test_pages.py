"""The Highcharts pages in a real headless browser (Debian's chromium driven by Playwright),
served by the real app on loopback against the real redis-server, loaded from a recording.

Every test also checks that the page logged no console error or warning, threw no uncaught
exception and made no request that failed or answered 4xx/5xx. Screenshots go to
``test-artifacts/``.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import redis
from playwright.sync_api import Browser, Dialog, Locator, Page, sync_playwright
from werkzeug.serving import make_server

from bcx import config as configmod
from bcx import events
from bcx.config import WatcherConfig
from bcx.health import EXPECTED
from bcx.heartbeat import Heartbeat
from bcx.keys import Keys
from bcx.redisconn import from_config
from bcx.server.history import record
from bcx.store import RollupStore, Store, TradeStore
from bcx.store.alerts import AlertLog
from bcx.ticks import Tick, Trade
from bcx.timeutil import now_ms
from bcx.watcher.history import HistoryManager
from bcx.watcher.run import Watcher
from tests.api_support import coinbase_ticks
from tests.support import RedisServer, free_port
from web import create_app

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
DEADLINE_MS = 10_000


TOKEN = "pages-token"


@pytest.fixture(scope="module")
def pages_conf(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The config of the app and of the watcher the rule tests run."""
    conf = tmp_path_factory.mktemp("pages") / "bcx.conf"
    # A short keep-alive lets each SSE response notice its closed page soon, so shutting the
    # server down does not wait on it.
    conf.write_text(f"[redis]\nurl = {redis_server.url}\n\n[web]\nsse_keepalive = 1s\n"
                    f"stale_after = 1m\napi_token = {TOKEN}\n\n[watcher]\n"
                    f"rule_interval = 100ms\nrestart_backoff_max = 100ms\n"
                    f"archive_dir = {conf.parent / 'archive'}\n")
    return conf


@pytest.fixture(scope="module")
def app_url(pages_conf: Path) -> Iterator[str]:
    """The web app on a free loopback port, in a thread, for this module's tests."""
    app = create_app({"BCX_CONFIG": configmod.load(str(pages_conf), env={})})
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="pages-app", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=30)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's chromium; never a browser Playwright downloads. Missing chromium fails loudly."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs the Debian package chromium")
    with sync_playwright() as playwright:
        found = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking"])
        yield found
        found.close()


@dataclass
class Tab:
    """One page plus everything it complained about."""

    page: Page
    problems: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.problems == [], "the page reported errors:\n" + "\n".join(self.problems)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def open_page(browser: Browser, app_url: str) -> Iterator:
    contexts = []

    def opener(path: str, width: int = 1280, height: int = 800, live: bool = False,
               scheme: str = "light") -> Tab:
        context = browser.new_context(viewport={"width": width, "height": height},
                                      timezone_id="Europe/Paris", locale="en-GB",
                                      color_scheme=scheme)
        contexts.append(context)
        page = context.new_page()
        tab = Tab(page)
        page.on("console", lambda msg: msg.type in ("error", "warning") and tab.problems.append(
            f"console {msg.type}: {msg.text} @ {msg.location.get('url')}"))
        page.on("pageerror", lambda exc: tab.problems.append(f"exception: {exc}"))
        page.on("requestfailed", lambda req: "/api/v1.0/stream" not in req.url
                and tab.problems.append(f"request failed: {req.url} {req.failure}"))
        page.on("response", lambda resp: resp.status >= 400 and tab.problems.append(
            f"HTTP {resp.status}: {resp.url}"))
        page.goto(app_url + path)
        page.wait_for_function("document.body.dataset.ready === '1'", timeout=DEADLINE_MS)
        if live:
            page.wait_for_function("document.getElementById('live').classList.contains('on')",
                                   timeout=DEADLINE_MS)
        return tab

    yield opener
    for context in contexts:
        context.close()


@pytest.fixture
def recorded(r: redis.Redis, keys: Keys) -> Store:
    """Redis holding the Coinbase recording, written as the tracker writes it."""
    store = Store(r, keys, publish_ticks=True)
    store.write(coinbase_ticks())
    return store


def busiest(store: Store) -> tuple[str, str]:
    """The recorded series with the most price points."""
    return max(store.series(), key=lambda s: store.count(s[0], s[1], "price"))


CHART = "Highcharts.charts.find(Boolean)"


def chart_points(tab: Tab, series_id: str) -> int:
    """Raw points the page holds for a series (it draws one per couple of pixels)."""
    return tab.page.evaluate(f"BCXChart.rows('{series_id}').length")


# ---------------------------------------------------------------------------------- overview
def test_overview_lists_every_series_with_stale_ones_highlighted(open_page, recorded):
    tab = open_page("/")
    rows = tab.page.locator("#series-table tbody tr")
    assert rows.count() == len(recorded.series())
    # The recording is from 2021: every series is long stale.
    assert tab.page.locator("#series-table tbody tr.stale").count() == rows.count()
    assert tab.page.locator("#series-table .sparkline svg").count() == rows.count()
    exchange, symbol = busiest(recorded)
    row = tab.page.locator(f"tr[data-series='{exchange}:{symbol}']")
    latest = recorded.latest(exchange, symbol)
    assert row.locator("td.bid").inner_text().replace(",", "") == \
        f"{float(latest['bid']):.{_places(latest)}f}"
    assert "Europe/Paris" in tab.page.locator("#tz").inner_text()
    tab.screenshot("overview")
    tab.assert_clean()


def test_overview_shows_a_tick_written_after_it_loaded(open_page, recorded):
    tab = open_page("/", live=True)
    exchange, symbol = busiest(recorded)
    recorded.write([Tick(exchange, symbol, now_ms(), price="123.4567", bid="123.4500",
                         ask="123.4600")])
    row = f"tr[data-series='{exchange}:{symbol}']"
    tab.page.wait_for_function(
        f"document.querySelector(\"{row} td.price\").textContent.includes('123.4567')",
        timeout=DEADLINE_MS)
    assert "stale" not in (tab.page.locator(row).get_attribute("class") or "")
    tab.assert_clean()


# ---------------------------------------------------------------------------------- chart
def test_chart_holds_every_recorded_point(open_page, recorded):
    exchange, symbol = busiest(recorded)
    tab = open_page(f"/chart/{exchange}/{symbol}")
    assert chart_points(tab, "price") == recorded.count(exchange, symbol, "price")
    assert chart_points(tab, "band") > 0
    assert chart_points(tab, "navigator-series") == recorded.count(exchange, symbol, "price")
    assert tab.page.evaluate(f"{CHART}.get('band').type") == "arearange"
    tab.screenshot("chart")
    buttons = tab.page.evaluate(f"{CHART}.rangeSelector.buttons.map(b => b.text.textStr)")
    assert buttons == ["1h", "1d", "1w", "1mo", "all"]
    tab.assert_clean()


def test_chart_appends_a_tick_written_after_it_loaded(open_page, recorded):
    exchange, symbol = busiest(recorded)
    tab = open_page(f"/chart/{exchange}/{symbol}", live=True)
    before = chart_points(tab, "price")
    last = recorded.latest(exchange, symbol)["time"]
    recorded.write([Tick(exchange, symbol, last + 2000, price="99.125")])
    tab.page.wait_for_function(
        f"BCXChart.rows('price').some(p => p[0] === {last + 2000} && p[1] === 99.125)",
        timeout=DEADLINE_MS)
    assert chart_points(tab, "price") == before + 1
    tab.assert_clean()


def test_chart_shows_a_flag_when_a_rule_fires(open_page, recorded, r, keys):
    exchange, symbol = busiest(recorded)
    tab = open_page(f"/chart/{exchange}/{symbol}", live=True)
    last = recorded.latest(exchange, symbol)["time"]
    events.publish(r, keys, events.TriggerEvent(
        rule="cfg:price-high", series=f"{exchange}:{symbol}", state=events.FIRING,
        kind="above", value=15.0, threshold=14.9, time=last,
        message="price 15.0 above 14.9"), maxlen=100)
    tab.page.wait_for_function(f"{CHART}.get('alerts').points.length === 1",
                               timeout=DEADLINE_MS)
    assert tab.page.evaluate(f"{CHART}.get('alerts').points[0].x") == last
    tab.screenshot("chart-alert")
    tab.assert_clean()


def test_chart_compares_series_in_percent_and_keeps_it_in_the_url(open_page, recorded):
    exchange, symbol = busiest(recorded)
    other = next(f"{e}:{s}" for e, s in recorded.series() if (e, s) != (exchange, symbol)
                 and recorded.count(e, s, "price"))
    tab = open_page(f"/chart/{exchange}/{symbol}")
    tab.page.select_option("#compare", other)
    compare = f"{CHART}.get('compare-{other}')"
    tab.page.wait_for_function(f"{compare} && {compare}.options.data.length > 0",
                               timeout=DEADLINE_MS)
    # The compared series is fetched for the range on show, both drawn in percent.
    low, high = tab.page.evaluate(f"[{CHART}.xAxis[0].min, {CHART}.xAxis[0].max]")
    oe, os_ = other.split(":")
    assert chart_points(tab, f"compare-{other}") == recorded.count(oe, os_, "price", round(low),
                                                                  round(high))
    assert tab.page.evaluate(f"{CHART}.get('price').options.compare") == "percent"
    assert tab.page.evaluate(f"{compare}.options.compare") == "percent"
    assert f"compare={other.replace(':', '%3A')}" in tab.page.url
    tab.screenshot("chart-compare")
    # The URL brings the comparison back.
    again = open_page("/" + tab.page.url.split("/", 3)[3])
    again.page.wait_for_function(f"{compare} && {compare}.options.data.length > 0",
                                 timeout=DEADLINE_MS)
    assert again.page.locator("#compared").inner_text().startswith(other)
    tab.assert_clean()
    again.assert_clean()


def test_chart_draws_candles_with_volume_at_any_range_and_interval(open_page, r, keys):
    store = Store(r, keys)
    start = now_ms() - 10 * 86_400_000
    # Ten days of a tick every 15 minutes, wandering up and down, at BTC prices.
    prices = [50000 + 40 * ((i * 7) % 23) + 3 * i for i in range(960)]
    store.write([Tick("kraken", "BTC-USD", start + i * 900_000, price=f"{p}.5", bid=f"{p - 5}.0",
                      ask=f"{p + 5}.0") for i, p in enumerate(prices)])
    tab = open_page("/chart/kraken/BTC-USD?type=candles&range=all")
    tab.page.wait_for_function(f"{CHART}.get('candles').options.data.length > 0",
                               timeout=DEADLINE_MS)
    assert chart_points(tab, "price") == 0
    assert "Candles" in tab.page.locator("#mode").inner_text()
    # The spread pane shows the band's width (10 on 50,000: about 2 bp) at this price level.
    spread = tab.page.evaluate(f"{CHART}.get('spread').options.data.at(-1)[1]")
    assert 1 < spread < 3
    assert tab.page.evaluate(f"{CHART}.get('spread').visible")
    tab.screenshot("chart-candles")
    # Candles at a short range too, at the interval picked, kept in the URL.
    tab.page.locator(".highcharts-range-selector-buttons text", has_text="1d").click()
    tab.page.select_option("#interval", "15m")
    tab.page.wait_for_function("document.getElementById('mode').textContent"
                               ".startsWith('Candles of 15 min')", timeout=DEADLINE_MS)
    data = tab.page.evaluate(f"{CHART}.get('candles').options.data.map(c => c[0])")
    assert len(data) > 10 and all(b - a == 900_000 for a, b in zip(data, data[1:], strict=False))
    assert "interval=15m" in tab.page.url and "type=candles" in tab.page.url
    assert "range=1d" in tab.page.url
    tab.page.select_option("#type", "line")
    tab.page.wait_for_function("document.getElementById('mode').textContent"
                               ".startsWith('Closes of 15 min')", timeout=DEADLINE_MS)
    assert chart_points(tab, "price") > 10
    tab.assert_clean()


def test_chart_axis_starts_at_the_first_tick(open_page, r, keys):
    store = Store(r, keys)
    first = now_ms() - 15 * 60_000
    store.write([Tick("kraken", "SOL-USD", first + i * 10_000, price=f"{100 + i % 5}.5")
                 for i in range(90)])
    tab = open_page("/chart/kraken/SOL-USD")
    low = tab.page.evaluate(f"{CHART}.xAxis[0].getExtremes().min")
    assert low == first
    tab.assert_clean()


def test_chart_header_of_a_series_without_trades(open_page, r, keys):
    store = Store(r, keys)
    store.write([Tick("binance", "BTC-AUD", now_ms() - 1000, bid="60000.10", ask="60000.30")])
    tab = open_page("/chart/binance/BTC-AUD")
    head = tab.page.locator("#last").inner_text()
    assert "mid 60,000.200" in head and "no trades" in head
    assert chart_points(tab, "band") == 1
    tab.assert_clean()


# ---------------------------------------------------------------------------------- alerts
def delivered(r: redis.Redis, keys: Keys, *found: events.TriggerEvent) -> None:
    """Record events as the alert server records each one it delivered."""
    pipe = r.pipeline()
    for event in found:
        record(AlertLog(r, keys), pipe, event=json.loads(event.to_json()), entry="0-1",
               consumer="test", outcomes=[], alerts_max=100, dead_letter_max=100)
    pipe.execute()


def test_alerts_page_filters_by_series_and_state(open_page, r, keys):
    delivered(r, keys,
              events.TriggerEvent("cfg:a", "coinbase:BTC-USD", events.FIRING, "above", 1, 0.5),
              events.TriggerEvent("cfg:a", "coinbase:BTC-USD", events.RESOLVED, "above", 0.4, 0.5),
              events.TriggerEvent("cfg:b", "kraken:ETH-USD", events.FIRING, "below", 1, 2))
    tab = open_page("/alerts?state=firing")
    assert tab.page.locator("#alerts-table tbody tr").count() == 2
    tab.page.select_option("#f-series", "coinbase:BTC-USD")
    assert tab.page.locator("#alerts-table tbody tr").count() == 1
    assert "series=coinbase%3ABTC-USD" in tab.page.url
    tab.page.select_option("#f-state", "")
    assert tab.page.locator("#alerts-table tbody tr").count() == 2
    tab.screenshot("alerts")
    tab.assert_clean()


def test_alerts_page_shows_a_new_event_live(open_page, r, keys):
    tab = open_page("/alerts", live=True)
    events.publish(r, keys, events.TriggerEvent("cfg:x", "kraken:ETH-USD", events.FIRING,
                                                "above", 3, 2, message="live one"), maxlen=100)
    tab.page.wait_for_function("document.querySelectorAll('#alerts-table tbody tr').length === 1",
                               timeout=DEADLINE_MS)
    assert "live one" in tab.page.locator("#alerts-table tbody").inner_text()
    tab.assert_clean()


# ---------------------------------------------------------------------------------- status
def test_status_page_shows_heartbeats_and_tracker_stats(open_page, r, keys):
    for component in EXPECTED:
        Heartbeat(r, keys, component, ttl=60).beat()
    r.hset(keys.tracker_stats("coinbase"), mapping={"connected": 1, "frames": 217, "ticks": 107,
                                                    "parse_errors": 0, "reconnects": 2})
    Store(r, keys).write([Tick("coinbase", "BTC-USD", now_ms(), price="1.5")])
    tab = open_page("/status")
    assert tab.page.locator("#overall").inner_text() == "healthy"
    assert tab.page.locator("#components-table tbody tr").count() == len(EXPECTED)
    stats = tab.page.locator("#exchanges-table tr[data-exchange='coinbase']").inner_text()
    assert "217" in stats and "reconnects" in stats
    tab.screenshot("status")
    tab.assert_clean()


def test_status_page_renders_the_unhealthy_state(open_page, r, keys):
    Heartbeat(r, keys, "tracker", ttl=60).beat()
    gone = Heartbeat(r, keys, "watcher.history", ttl=60)
    gone.beat()
    gone.clear()
    Heartbeat(r, keys, "server", ttl=60).beat(degraded="webhook refused: HTTP 500")
    Store(r, keys).write([Tick("coinbase", "BTC-USD", now_ms() - 3_600_000, price="1.5")])
    tab = open_page("/status")
    assert tab.page.locator("#overall").inner_text() == "unhealthy"
    watcher = tab.page.locator("#components-table tr[data-component='watcher.history']")
    assert "down" in watcher.inner_text() and "stale" in watcher.get_attribute("class")
    # The reason sits beside every badge that is not green.
    assert "no heartbeat" in watcher.inner_text()
    degraded = tab.page.locator("#components-table tr[data-component='server']")
    assert "degraded" in degraded.inner_text() and "webhook refused" in degraded.inner_text()
    assert "up" in tab.page.locator("tr[data-component='tracker']").inner_text()
    series = tab.page.locator("#series-table tr[data-series='coinbase:BTC-USD']")
    assert "stale" in series.get_attribute("class")
    assert "last tick " in series.inner_text() and "stale after 60 s" in series.inner_text()
    # The reasons sit under the overall badge too.
    reasons = tab.page.locator("#overall-reasons").inner_text()
    assert "watcher.history: no heartbeat" in reasons and "webhook refused" in reasons
    tab.screenshot("status-unhealthy")
    # Asked with always_200, /health answers 200: the browser logs no failed request.
    tab.assert_clean()


# ---------------------------------------------------------------------------------- narrow
@pytest.mark.parametrize("path", ["/", "/chart/coinbase/{symbol}", "/alerts", "/rules",
                                  "/status"])
def test_pages_fit_a_narrow_screen(open_page, recorded, r, keys, path):
    for component in EXPECTED:
        Heartbeat(r, keys, component, ttl=60).beat()
    recorded.write([Tick("coinbase", s, now_ms(), price="1.0") for _, s in recorded.series()])
    symbol = busiest(recorded)[1]
    tab = open_page(path.format(symbol=symbol), width=375, height=740)
    overflow = tab.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    tab.screenshot("narrow-" + (path.strip("/").split("/")[0] or "overview"))
    tab.assert_clean()


def _places(latest: dict) -> int:
    return max(len(str(float(latest[f])).partition(".")[2]) for f in ("price", "bid", "ask"))


# ---------------------------------------------------------------------------------- overview
def _order(tab: Tab) -> list[str]:
    return tab.page.evaluate("[...document.querySelectorAll('#series-table tbody tr')]"
                             ".filter(tr => !tr.hidden).map(tr => tr.dataset.series)")


def test_overview_sorts_searches_and_stars(open_page, recorded):
    tab = open_page("/")
    tab.page.click("#series-table th[data-sort='price']")
    prices = {f"{e}:{s}": recorded.latest(e, s).get("price") for e, s in recorded.series()}
    priced = [name for name in _order(tab) if prices[name] is not None]
    assert priced == sorted(priced, key=lambda name: float(prices[name]))
    assert "sort=price" in tab.page.url and "dir=asc" in tab.page.url
    tab.page.click("#series-table th[data-sort='price']")
    assert "dir=desc" in tab.page.url
    priced = [name for name in _order(tab) if prices[name] is not None]
    assert priced == sorted(priced, key=lambda name: -float(prices[name]))
    # Search: every word must appear in the series name.
    tab.page.fill("#search", "btc coinbase")
    shown = _order(tab)
    assert shown and all("btc" in n.lower() and "coinbase" in n for n in shown)
    assert len(shown) < len(prices) and "q=btc+coinbase" in tab.page.url
    tab.page.fill("#search", "no-such-series")
    assert _order(tab) == [] and tab.page.locator("#no-match").is_visible()
    tab.page.fill("#search", "")
    # A star lists the series first, kept in this browser across loads.
    last = _order(tab)[-1]
    tab.page.locator(f"tr[data-series='{last}'] button.fav").click()
    assert _order(tab)[0] == last
    tab.page.reload()
    tab.page.wait_for_function("document.body.dataset.ready === '1'", timeout=DEADLINE_MS)
    assert _order(tab)[0] == last
    assert "favourite" in tab.page.locator(f"tr[data-series='{last}']").get_attribute("class")
    tab.assert_clean()


def test_overview_on_a_phone(open_page, recorded):
    tab = open_page("/", width=375, height=740)
    assert tab.page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    tab.screenshot("overview-375")
    tab.assert_clean()


# ---------------------------------------------------------------------------------- chart
def test_chart_under_a_full_speed_feed_answers_and_draws(open_page, r, keys):
    """A feed at a tracker's full speed (batches of 200 ticks every 4 ms: 50,000 ticks/s,
    what one tracker stores at most): the page still answers a script call and draws the
    newest ticks. Paced, not as fast as Redis takes them: this process also runs the browser's
    driver, which an unpaced writer thread starves of the GIL on a loaded machine."""
    store = Store(r, keys, publish_ticks=True)
    start = now_ms() - 3_600_000
    store.write([Tick("kraken", "XBT-USD", start + i * 1000, price=f"{60000 + i % 300}.5",
                      bid=f"{60000 + i % 300}.0", ask=f"{60000 + i % 300}.9")
                 for i in range(3600)])
    tab = open_page("/chart/kraken/XBT-USD", live=True)
    stop = threading.Event()
    sent = [0]

    def flood() -> None:
        while not stop.is_set():
            now = now_ms()
            store.write([Tick("kraken", "XBT-USD", now, price=f"{61000 + n % 50}.25",
                              bid="61000.0", ask="61001.0") for n in range(200)])
            sent[0] += 200
            stop.wait(0.004)

    writer = threading.Thread(target=flood, daemon=True)
    writer.start()
    try:
        tab.page.wait_for_function("Number(document.body.dataset.drawn || 0) > 2000",
                                   timeout=30_000)
        assert tab.page.evaluate("6 * 7") == 42
        newest = tab.page.evaluate("BCXChart.rows('price').at(-1)")
        assert newest[0] > start + 3_600_000
        # Drawn, not only held: the chart's own newest point is a live one.
        drawn = tab.page.evaluate(f"{CHART}.get('price').options.data.at(-1)[0]")
        assert drawn > start + 3_600_000
    finally:
        stop.set()
        writer.join()
    # One point per couple of pixels is handed to Highcharts, whatever the feed's rate.
    width = tab.page.evaluate(f"{CHART}.plotWidth")
    assert chart_points(tab, "price") > 4000
    assert tab.page.evaluate(f"{CHART}.get('price').options.data.length") <= width
    tab.assert_clean()


def test_chart_volume_pane_from_trade_rollups_and_live_trades(open_page, r, keys):
    now = now_ms()
    start = (now // 60_000 - 90) * 60_000
    trades = [Trade("kraken", "ETH-USD", start + i * 60_000 + 5_000 + k * 1000,
                    f"{3000 + i % 7}.{k}", f"0.{k + 1}", "buy" if k % 2 else "sell",
                    f"t{i}-{k}") for i in range(90) for k in range(3)]
    TradeStore(r, keys).write(trades)
    Store(r, keys).write([Tick(t.exchange, t.symbol, t.ms, price=t.price) for t in trades])
    HistoryManager(Store(r, keys), RollupStore(r, keys),
                   replace(WatcherConfig(), rollups=((60.0, 86400.0),))).rollup_pass(now)
    tab = open_page("/chart/kraken/ETH-USD?type=candles&interval=1m&range=1d", live=True)
    tab.page.wait_for_function(f"{CHART}.get('volume').options.data.length > 0",
                               timeout=DEADLINE_MS)
    assert tab.page.evaluate(f"{CHART}.get('volume').visible")
    volume = dict(tab.page.evaluate(f"{CHART}.get('volume').options.data"))
    # Each minute holds three trades of 0.1, 0.2 and 0.3.
    assert volume[start] == pytest.approx(0.6)
    assert volume[start + 89 * 60_000] == pytest.approx(0.6)
    candles = tab.page.evaluate(f"{CHART}.get('candles').options.data")
    assert candles[0][0] == start and len(candles) == 90
    tab.screenshot("chart-volume")
    # A live trade adds its size to the volume of its minute.
    live_ms = now_ms()
    bucket = live_ms // 60_000 * 60_000
    before = volume.get(bucket, 0)
    Store(r, keys, publish_ticks=True).write(
        [Tick("kraken", "ETH-USD", live_ms, price="3010.5")],
        trades=[Trade("kraken", "ETH-USD", live_ms, "3010.5", "2.5", "buy", "live-1")])
    tab.page.wait_for_function(
        f"{CHART}.get('volume').options.data.some(p => p[0] === {bucket}"
        f" && Math.abs(p[1] - {before + 2.5}) < 1e-9)", timeout=DEADLINE_MS)
    tab.assert_clean()


# ---------------------------------------------------------------------------------- dark mode
def _theme(tab: Tab) -> str:
    return tab.page.evaluate("document.documentElement.dataset.theme")


def test_dark_mode_follows_the_system_and_the_toggle_persists(open_page, recorded):
    exchange, symbol = busiest(recorded)
    tab = open_page(f"/chart/{exchange}/{symbol}", scheme="dark")
    assert _theme(tab) == "dark"
    assert tab.page.evaluate(f"{CHART}.options.chart.backgroundColor") == "#151922"
    background = tab.page.evaluate("getComputedStyle(document.body).backgroundColor")
    tab.screenshot("chart-dark")
    light = open_page(f"/chart/{exchange}/{symbol}", scheme="light")
    assert _theme(light) == "light"
    assert light.page.evaluate("getComputedStyle(document.body).backgroundColor") != background
    light.screenshot("chart-light")
    # The toggle overrides the system setting, and the choice is kept across pages.
    with tab.page.expect_navigation():
        tab.page.click("#theme")
    tab.page.wait_for_function("document.body.dataset.ready === '1'", timeout=DEADLINE_MS)
    assert _theme(tab) == "light"
    tab.page.goto(tab.page.url.split("/chart/")[0] + "/status")
    tab.page.wait_for_function("document.body.dataset.ready === '1'", timeout=DEADLINE_MS)
    assert _theme(tab) == "light"
    tab.assert_clean()
    light.assert_clean()


# ---------------------------------------------------------------------------------- status
def test_status_page_wraps_long_values_and_counts_gaps_of_subscribed_series(open_page, r, keys):
    for component in EXPECTED:
        Heartbeat(r, keys, component, ttl=60).beat()
    long_url = "wss://feed.example.com/ws?" + "&".join(f"p{i}=v{i:04d}" for i in range(75))
    long_url = long_url[:600]
    assert len(long_url) == 600
    r.hset(keys.tracker_stats("kraken"), mapping={
        "connected": 1, "frames": 5, "ticks": 3, "url": long_url, "consecutive_failures": 1,
        "last_error": "closed: " + "x" * 300})
    r.hset(keys.gaps("kraken"), mapping={"BTC-USD": 3, "ETH-USD": 4, "*": 11})
    Store(r, keys).write([Tick("kraken", "BTC-USD", now_ms(), price="1.5")])
    tab = open_page("/status")
    row = tab.page.locator("#exchanges-table tr[data-exchange='kraken']")
    assert row.locator("dd[data-stat='gaps']").inner_text() == \
        "7 (+11 on channels not subscribed)"
    assert row.locator("dd[data-stat='url']").inner_text() == long_url
    assert tab.page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    tab.screenshot("status-long-values")
    narrow = open_page("/status", width=375, height=740)
    assert narrow.page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    tab.assert_clean()
    narrow.assert_clean()


# ---------------------------------------------------------------------------------- rules
@pytest.fixture
def watcher(pages_conf: Path, r: redis.Redis) -> Iterator[Watcher]:
    """A real watcher on the test Redis, evaluating the rules the pages create."""
    config = configmod.load(str(pages_conf), env={})
    connection = from_config(config.redis)
    running = Watcher(connection, config)
    running.start()
    yield running
    running.shutdown()
    connection.close()


def answer_dialogs(tab: Tab) -> list[str]:
    """Answers the token prompt with the token and accepts confirmations; returns the prompts'
    messages, so a test can count how often the token was asked."""
    asked: list[str] = []

    def answer(dialog: Dialog) -> None:
        if dialog.type == "prompt":
            asked.append(dialog.message)
            dialog.accept(TOKEN)
        else:
            dialog.accept()

    tab.page.on("dialog", answer)
    return asked


def api(app_url: str, method: str, path: str, body: object = None) -> dict:
    request = urllib.request.Request(
        f"{app_url}/api/v1.0{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
    return json.loads(text) if text else {}


def rule_row(tab: Tab, name: str) -> Locator:
    return tab.page.locator(f"#rules-table tr[data-name='{name}']")


def test_a_rule_made_on_the_chart_fires_on_replayed_ticks_and_is_silenced(
        open_page, r, keys, app_url, watcher):
    store = Store(r, keys, publish_ticks=True)
    start = now_ms() - 600_000
    # The last tick is the lowest: a click near the top of the pane is above it.
    store.write([Tick("kraken", "BTC-USD", start + i * 10_000, price=f"{100 + (59 - i) % 5}.50",
                      bid=f"{100 + (59 - i) % 5}.40", ask=f"{100 + (59 - i) % 5}.60")
                 for i in range(60)])
    tab = open_page("/chart/kraken/BTC-USD", live=True)
    asked = answer_dialogs(tab)
    # "Alert at this price": a click on the price pane opens the form at the clicked level.
    box = tab.page.locator("#chart .highcharts-plot-background").first.bounding_box()
    tab.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.1)
    form = tab.page.locator("#rule-form-box form.rule-form")
    clicked = float(form.locator("input[name=threshold]").input_value())
    low, high = tab.page.evaluate(f"[{CHART}.yAxis[0].min, {CHART}.yAxis[0].max]")
    assert low < clicked <= high
    assert form.locator("select[name=kind]").input_value() == "above"
    assert tab.page.evaluate(f"{CHART}.yAxis[0].plotLines"
                             ".some(line => line.id === 'rule-draft')")
    form.locator("input[name=threshold]").fill("105.25")
    form.locator("input[name=name]").fill("btc-breakout")
    form.locator("button[type=submit]").click()
    tab.page.wait_for_function("document.body.dataset.lines === '1'", timeout=DEADLINE_MS)
    line = tab.page.evaluate(f"{CHART}.yAxis[0].plotLines.filter(l => l.id"
                             " && l.id.startsWith('rule-')).map(l => [l.options.value,"
                             " l.options.label.text])")
    assert len(line) == 1 and line[0][0] == 105.25 and "btc-breakout" in line[0][1]
    assert len(asked) == 1
    # Replayed ticks cross the level: the watcher fires and the flag carries the rule's name.
    rule = next(item for item in api(app_url, "GET", "/rules")["rules"]
                if item["name"] == "btc-breakout")
    store.write([Tick("kraken", "BTC-USD", now_ms(), price="106.75", bid="106.70",
                      ask="106.80")])
    tab.page.wait_for_function(f"{CHART}.get('alerts').points.length === 1",
                               timeout=DEADLINE_MS)
    assert tab.page.evaluate(f"{CHART}.get('alerts').points[0].options.title") == \
        "▲ btc-breakout"
    tab.page.wait_for_function("BCXChart.rows('price').some(p => p[1] === 106.75)",
                               timeout=DEADLINE_MS)
    tab.page.wait_for_function("[...document.querySelectorAll('.highcharts-plot-line-label')]"
                               ".some(l => l.textContent.includes('(firing)'))",
                               timeout=DEADLINE_MS)
    # The live tick scrolled the chart: the flag is on show, not past the axis' end.
    assert tab.page.evaluate(f"{CHART}.get('alerts').points[0].isInside")
    tab.screenshot("chart-threshold-lines")
    # The alerts page has it under "Firing now".
    tab.page.goto(app_url + "/alerts")
    tab.page.wait_for_function("document.body.dataset.ready === '1'", timeout=DEADLINE_MS)
    firing = tab.page.locator(f"#firing-now li[data-rule='{rule['id']}']")
    assert "btc-breakout" in firing.inner_text() and "value 106.75" in firing.inner_text()
    assert tab.page.locator("#firing-count").inner_text() == "1"
    tab.screenshot("alerts-firing-now")
    # Silenced from the rules page, with the token this tab already gave.
    tab.page.goto(app_url + "/rules")
    tab.page.wait_for_function("document.body.dataset.ready === '1'", timeout=DEADLINE_MS)
    assert rule_row(tab, "btc-breakout").get_attribute("data-state") == "firing"
    rule_row(tab, "btc-breakout").locator("button[data-action=silence]").click()
    tab.page.fill(".silence-form input[name=comment]", "known breakout")
    tab.page.click(".silence-form button[type=submit]")
    tab.page.wait_for_function(
        "document.querySelector(\"tr[data-name='btc-breakout']\").dataset.state === 'silenced'",
        timeout=DEADLINE_MS)
    assert "known breakout" in rule_row(tab, "btc-breakout").inner_text()
    status = api(app_url, "GET", f"/rules/{rule['id']}")["status"]
    assert status["state"] == "silenced" and status["silence_comment"] == "known breakout"
    assert len(asked) == 1
    tab.screenshot("rules")
    tab.assert_clean()


def test_the_rule_form_shows_the_api_validation_messages_and_keeps_the_token(
        open_page, recorded, app_url):
    tab = open_page("/rules")
    asked = answer_dialogs(tab)
    tab.page.click("#new-rule")
    form = tab.page.locator("form.rule-form")
    form.locator("input[name=name]").fill("too-quiet")
    form.locator("select[name=kind]").select_option("stale")
    assert form.locator("[data-key=window]").is_hidden()
    form.locator("input[name=series]").fill("coinbase:BTC-USD")
    form.locator("input[name=threshold]").fill("0")
    form.locator("button[type=submit]").click()
    message = form.locator("[data-key=threshold] .rf-error")
    message.wait_for(timeout=DEADLINE_MS)
    tab.screenshot("rule-form-error")
    assert message.inner_text() == "expected a positive number of seconds"
    assert "invalid" in form.locator("[data-key=threshold]").get_attribute("class")
    # A series no exchange has: the API's 422 names the series.
    form.locator("input[name=threshold]").fill("30")
    form.locator("input[name=series]").fill("kraken:NOPE-USD")
    form.locator("button[type=submit]").click()
    form.locator("[data-key=series].invalid").wait_for(timeout=DEADLINE_MS)
    assert "unknown series kraken:NOPE-USD" in form.locator("[data-key=series] .rf-error") \
        .inner_text()
    assert form.locator("[data-key=threshold] .rf-error").is_hidden()
    # Asked once for the tab, kept in its session storage (not in local storage).
    assert len(asked) == 1
    assert tab.page.evaluate("sessionStorage.getItem('bcx-token')") == TOKEN
    assert tab.page.evaluate("localStorage.getItem('bcx-token')") is None
    form.locator("input[name=series]").fill("coinbase:BTC-USD")
    form.locator("button[type=submit]").click()
    rule_row(tab, "too-quiet").wait_for(timeout=DEADLINE_MS)
    assert len(asked) == 1
    tab.screenshot("rules-stale-rule")
    # Another tab asks again.
    other = open_page("/rules")
    other_asked = answer_dialogs(other)
    rule_row(other, "too-quiet").locator("button[data-action=disable]").click()
    rule_row(other, "too-quiet").locator("button[data-action=enable]").wait_for(
        timeout=DEADLINE_MS)
    assert len(other_asked) == 1
    expected = ("HTTP 400", "HTTP 422", "status of 400", "status of 422")
    tab.problems[:] = [p for p in tab.problems if not any(e in p for e in expected)]
    tab.assert_clean()
    other.assert_clean()


def test_the_rules_page_edits_disables_enables_and_deletes(open_page, recorded, app_url):
    made = api(app_url, "POST", "/rules", {"name": "eth-low", "kind": "below",
                                           "series": "coinbase:BTC-USD", "threshold": 10})
    tab = open_page("/rules")
    answer_dialogs(tab)
    row = rule_row(tab, "eth-low")
    assert "▼ below" in row.inner_text() and "bcx.conf" not in row.inner_text()
    row.locator("button[data-action=edit]").click()
    form = tab.page.locator("form.rule-form[data-mode=edit]")
    assert form.locator("select[name=kind]").is_disabled()
    form.locator("input[name=threshold]").fill("9.5")
    form.locator("input[name=cooldown]").fill("1m")
    form.locator("button[type=submit]").click()
    tab.page.wait_for_function(
        "document.querySelector(\"tr[data-name='eth-low'] td.num\").textContent === '9.5'",
        timeout=DEADLINE_MS)
    saved = api(app_url, "GET", f"/rules/{made['id']}")
    assert (saved["threshold"], saved["cooldown"]) == (9.5, 60)
    row.locator("button[data-action=disable]").click()
    row.locator("button[data-action=enable]").wait_for(timeout=DEADLINE_MS)
    assert api(app_url, "GET", f"/rules/{made['id']}")["enabled"] is False
    assert "disabled" in row.inner_text()
    row.locator("button[data-action=enable]").click()
    row.locator("button[data-action=disable]").wait_for(timeout=DEADLINE_MS)
    assert api(app_url, "GET", f"/rules/{made['id']}")["enabled"] is True
    row.locator("button[data-action=delete]").click()
    row.wait_for(state="detached", timeout=DEADLINE_MS)
    assert api(app_url, "GET", "/rules")["rules"] == []
    tab.assert_clean()
