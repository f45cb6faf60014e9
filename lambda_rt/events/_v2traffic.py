"""Schema v2 traffic for the generator (private): campaigns, payment signals, stock levels.

:class:`V2Traffic` turns one generated chunk of v1 columns into v2 traffic:
it picks each session's campaign (or none), reshapes a campaign session's mix
of views, carts and orders by the campaign's funnel, moves stock levels per
(store, product) and returns each event's v2 JSON tail. Its own random stream
(``(seed, chunk, 2)``), so v1 output never changes. No I/O.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CAMPAIGN_THEMES", "V2Traffic"]

CAMPAIGN_THEMES: tuple[str, ...] = ("spring-sale", "newsletter", "retarget", "influencer", "search", "social")
_CAMPAIGN_SESSION_SHARE = 0.65  # sessions that arrive through a campaign
_FUNNEL = np.array([0.70, 0.12, 0.06]) / 0.88  # page_view, add_to_cart, order_placed share
_STOCK_PRODUCTS = 40  # v2 inventory moves the most popular products, so levels repeat
_RESTOCK_SHARE = 0.08


class _Campaigns:
    """The active campaigns: names, traffic shares and funnels (fixed by the seed)."""

    def __init__(self, seed: int, count: int) -> None:
        rng = np.random.default_rng([seed, 7])
        self.names = [f"{CAMPAIGN_THEMES[i % len(CAMPAIGN_THEMES)]}-{i:02d}".encode() for i in range(count)]
        share = rng.pareto(1.5, count) + 0.2  # a few big campaigns, a long tail
        self.share_cdf = np.cumsum(share) / share.sum()
        self.share_cdf[-1] = 1.0
        # per campaign: how much better (or worse) than organic views turn into carts and orders
        weights = _FUNNEL * np.column_stack(
            [np.ones(count), rng.lognormal(0.0, 0.5, count), rng.lognormal(0.0, 0.7, count)]
        )
        self.funnel_cdf = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
        self.funnel_cdf[:, -1] = 1.0

    def pick(self, rng: np.random.Generator, m: int) -> np.ndarray:
        """A campaign index per session, -1 for organic sessions."""
        camp = np.searchsorted(self.share_cdf, rng.random(m), side="right")
        return np.where(rng.random(m) < _CAMPAIGN_SESSION_SHARE, camp, -1)


class V2Traffic:
    """Campaigns and stock levels of one generator (stock levels carry over between chunks)."""

    def __init__(self, seed: int, campaigns: int, mixed: bool) -> None:
        self._seed = seed
        self._mixed = mixed
        self.campaigns = _Campaigns(seed, campaigns)
        self._stock: dict[tuple[int, int], int] = {}

    def tails(self, k: int, cols: dict[str, np.ndarray], session: np.ndarray, m: int) -> np.ndarray:
        """Rewrite ``cols`` for campaigns and stock; return each event's v2 JSON tail.

        The tail replaces the closing ``}``: ``,"schema_version":2,...}`` for a
        v2 event, ``b""`` for a v1 one (``mixed`` mode). Its own random stream,
        so v1 output does not change.
        """
        rng = np.random.default_rng([self._seed, k, 2])
        n = len(session)
        v2_session = rng.random(m) < 0.5 if self._mixed else np.ones(m, bool)
        camp = self.campaigns.pick(rng, m)[session]  # -1: organic
        is_v2 = v2_session[session]
        # the funnel: a campaign session's views, carts and orders follow the campaign's mix
        types = cols["type"]
        funnel = (types <= 2) & (camp >= 0)
        u = rng.random(n)
        cdf = self.campaigns.funnel_cdf[np.maximum(camp, 0)]
        types[funnel] = (u[:, None] > cdf).sum(axis=1)[funnel]
        stock = self._stock_levels(rng, cols)
        ip_base = cols["customer"] * 2654435761 % (1 << 32)
        out = np.full(n, b"", dtype=object)
        names = self.campaigns.names
        for i in np.flatnonzero(is_v2).tolist():
            t = int(types[i])
            tail = b',"schema_version":2'
            if t <= 2 and camp[i] >= 0:
                tail += b',"campaign_id":"' + names[camp[i]] + b'"'
            if t in (2, 3):
                c, ip = int(cols["customer"][i]), int(ip_base[i])
                tail += b',"card_fingerprint":"fp-%x","ip":"%d.%d.%d.%d","device_id":"d-%d"' % (
                    c * 40503 % 65521,
                    10 + ip % 200,
                    ip >> 8 & 255,
                    ip >> 16 & 255,
                    1 + (ip >> 24) % 254,
                    c % 50_000,
                )
            elif t == 5:
                tail += b',"stock_on_hand":%d' % stock[i]
            out[i] = tail + b"}"
        return out

    def _stock_levels(self, rng: np.random.Generator, cols: dict[str, np.ndarray]) -> np.ndarray:
        """Stock per (store, product): sales deplete it, restocks lift it (sets ``delta``)."""
        types = cols["type"]
        inv = np.flatnonzero(types == 5)
        n = len(types)
        level = np.zeros(n, np.int64)
        products = 1 + (rng.random(len(inv)) ** 2 * _STOCK_PRODUCTS).astype(np.int64)
        sold = rng.integers(1, 6, len(inv))
        restock = rng.random(len(inv)) < _RESTOCK_SHARE
        lift = rng.integers(60, 241, len(inv))
        stores = cols["store"][inv].tolist()
        deltas = np.zeros(len(inv), np.int64)
        for j, (store, product) in enumerate(zip(stores, products.tolist(), strict=True)):
            have = self._stock.get((store, product), 40 + (store * 31 + product * 17) % 80)
            # a sale cannot take more than is there; an empty shelf is restocked
            d = int(lift[j]) if restock[j] or have == 0 else -min(int(sold[j]), have)
            have += d
            self._stock[(store, product)] = have
            deltas[j] = d
            level[inv[j]] = have
        cols["product"][inv] = products
        cols["delta"][inv] = deltas
        return level
