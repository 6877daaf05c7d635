"""The Coinbase session ``make demo`` replays: BTC-USD and ETH-USD ticker and heartbeat frames
in the venue's exact format, generated because the recorded Coinbase session carries other
products. Prices are a seeded random walk that ends where it starts, so a looping replay shows
no jump; they are not market data.

    python -m bcx.demo var/demo/coinbase_demo.session.jsonl
"""

from __future__ import annotations

import json
import random
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from bcx.exchanges.common import ms_to_iso

START_MS = 1_700_000_000_000
PRODUCTS = {"BTC-USD": Decimal("63250.00"), "ETH-USD": Decimal("3120.00")}
CENT = Decimal("0.01")


def _walk(rng: random.Random, start: Decimal, steps: int) -> list[Decimal]:
    """A random walk of relative steps around 2 bp, bent so it ends at ``start``."""
    levels = [float(start)]
    for _ in range(steps - 1):
        levels.append(levels[-1] * (1 + rng.gauss(0, 0.0002)))
    drift = (levels[-1] - levels[0]) / max(1, steps - 1)
    return [Decimal(level - drift * i).quantize(CENT) for i, level in enumerate(levels)]


def session_lines(seconds: int = 120, per_second: int = 4, seed: int = 7,
                  matches: bool = False) -> list[str]:
    """The session file's lines: connect, the subscription, its ack, then the frames. With
    ``matches`` every ticker follows the ``match`` frame of its trade (the trades channel)."""
    rng = random.Random(seed)
    products = list(PRODUCTS)
    channels = ["ticker", "heartbeat", *(["matches"] if matches else [])]
    subscribe = {"type": "subscribe", "product_ids": products, "channels": channels}
    ack = {"type": "subscriptions", "channels": [{"name": name, "product_ids": products}
                                                 for name in channels]}
    ts = START_MS / 1000
    lines = [{"dir": "connect", "ts": ts, "url": "wss://ws-feed.exchange.coinbase.com"},
             {"dir": "send", "ts": ts, "raw": json.dumps(subscribe, separators=(",", ":"))},
             {"dir": "recv", "ts": ts, "raw": json.dumps(ack, separators=(",", ":"))}]
    steps = seconds * per_second
    walks = {product: _walk(rng, start, steps) for product, start in PRODUCTS.items()}
    frames: list[tuple[int, dict[str, Any]]] = []
    for number, product in enumerate(products):
        trade_id = 500_000_000 + number * 100_000_000
        for step, price in enumerate(walks[product]):
            ms = START_MS + 1000 + step * 1000 // per_second + rng.randrange(0, 1000 // per_second)
            trade_id += 1
            spread = CENT * rng.randrange(1, 4)
            side = rng.choice(("buy", "sell"))
            size = f"{rng.uniform(0.001, 2):.8f}"
            if matches:
                frames.append((ms, {
                    "type": "match", "trade_id": trade_id, "sequence": trade_id * 3 - 1,
                    "maker_order_id": f"m-{trade_id}", "taker_order_id": f"t-{trade_id}",
                    "time": ms_to_iso(ms), "product_id": product, "size": size,
                    "price": str(price), "side": side}))
            frames.append((ms, {
                "type": "ticker", "sequence": trade_id * 3, "product_id": product,
                "price": str(price), "open_24h": str(walks[product][0]),
                "volume_24h": "12345.67890000", "low_24h": str(min(walks[product])),
                "high_24h": str(max(walks[product])), "volume_30d": "345678.12345678",
                "best_bid": str(price - spread), "best_ask": str(price),
                "side": side, "time": ms_to_iso(ms),
                "trade_id": trade_id, "last_size": size}))
        for second in range(seconds):
            ms = START_MS + 1000 + second * 1000
            frames.append((ms, {"type": "heartbeat", "sequence": 0, "last_trade_id": 0,
                                "product_id": product, "time": ms_to_iso(ms)}))
    for ms, frame in sorted(frames, key=lambda item: item[0]):
        lines.append({"dir": "recv", "ts": ms / 1000,
                      "raw": json.dumps(frame, separators=(",", ":"))})
    return [json.dumps(line) for line in lines]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bcx.demo SESSION_PATH", file=sys.stderr)
        return 2
    path = Path(args[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(session_lines()) + "\n", encoding="utf-8")
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
