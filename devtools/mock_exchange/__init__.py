"""A loopback mock of Binance and OKX that checks the real signatures ccxt produces.

A development tool, not part of the installed ``strongroom`` package. Run it from a checkout with
``python -m devtools.mock_exchange --port 8100`` (``make demo`` does, next to the server), or
``strongroom mock-exchange`` from a checkout. Point Strongroom at it with
``STRONGROOM_EXCHANGE_BASE_URLS='{"binance": URL, "okx": URL}'``: one server answers for both
venues (Binance paths under ``/api``, ``/sapi`` and ``/fapi``, OKX paths under ``/api/v5``).
The modules: ``binance``, ``okx`` (each venue's endpoints and signature check), ``orders`` (the
matching engine both venues share), ``control`` (``/_mock``), ``common`` (the decorator every venue
endpoint uses), ``state``, ``app``, ``server``.

What ccxt can do against it (Binance and OKX alike): ``fetch_balance`` (Binance ``type`` spot,
margin, swap/future = USD-M futures; OKX the trading account, or ``type`` funding),
``load_markets`` (spot markets: every priced symbol plus BTC/USDT, ETH/USDT, ETH/BTC, BTC/USDC,
SOL/USDT), ``fetch_tickers`` / ``fetch_ticker`` (every priced symbol), and the key checks Strongroom
makes (Binance ``/api/v3/account`` + ``/sapi/v1/account/apiRestrictions``, OKX
``/api/v5/account/config``). Every private call must be correctly signed; a bad signature, key or
passphrase gets the venue's own error code.

Spot orders (see ``orders`` for the rules): Binance ``POST/GET/DELETE /api/v3/order`` (``orderId`` or
``origClientOrderId``), ``GET/DELETE /api/v3/openOrders``, ``GET /api/v3/allOrders``; OKX ``POST
/api/v5/trade/order`` and ``batch-orders``, ``GET /api/v5/trade/order`` (``ordId`` or ``clOrdId``),
``POST /api/v5/trade/cancel-order``, ``GET /api/v5/trade/orders-pending`` and ``orders-history``, so
ccxt's ``create_order``, ``fetch_order``, ``cancel_order``, ``cancel_all_orders`` (Binance),
``fetch_open_orders``, ``fetch_orders`` (Binance) and ``fetch_closed_orders`` work. Market orders fill
at the mock price, limit orders rest until a price move crosses them, balances move with fills (0.1 %
fee, reported), markets carry their precision and minimums (Binance ``PRICE_FILTER``, ``LOT_SIZE``,
``NOTIONAL``; OKX ``tickSz``, ``lotSz``, ``minSz``) and refusals carry the venue's codes (Binance
-2010 insufficient balance / duplicate order, -1013 filter failure, -2013 / -2011 unknown order; OKX
51008, 51016, 51121, 51020, 51603, 51400-51402).

Demo credentials (pre-seeded):

* binance ``demo-binance-key`` / ``demo-binance-secret``: reading and trading, no withdrawals
* binance ``demo-binance-key-2`` / ``demo-binance-secret-2`` (also ``-3`` to ``-5``): the same, for more accounts
* binance ``demo-binance-withdraw-key`` / ``demo-binance-withdraw-secret``: withdrawals enabled
* okx ``demo-okx-key`` / ``demo-okx-secret`` / passphrase ``demo-okx-passphrase``: no withdrawals

Default balances (every account, unless set): Binance spot 0.6 BTC (0.5 free, 0.1 used) and
1,200 USDT; margin 0.05 BTC and 300 USDT; futures 1,000 USDT (100 used). OKX trading 0.25 BTC,
2 ETH (0.5 used) and 1,000 USDC; funding 250 USDT. Default prices on both venues: BTC/USDT and
BTC/USDC 50,000, ETH/USDT 3,000, ETH/BTC 0.06, so the demo Binance spot wallet is worth
31,200 USD (0.624 BTC). Amounts and prices are decimal strings, exact end to end.

Control endpoints (a test tool: never expose it; errors are 400 ``{"error": "..."}``):

* ``POST /_mock/accounts`` ``{"exchange", "api_key", "secret", "passphrase"?, "can_withdraw"?, "balances"?}``
  adds or replaces a key; ``balances`` (same shape as below) sets its default wallet.
* ``POST /_mock/balances`` ``{"exchange", "api_key", "account_type"?, "balances": {"BTC": {"free": "0.5",
  "used": "0.1"}, ...}}`` replaces one wallet of a key: Binance ``spot`` (default), ``margin``,
  ``futures``; OKX ``trading`` (default), ``funding``. A missing ``free`` or ``used`` is 0.
* ``POST /_mock/permissions`` ``{"exchange", "api_key", "can_withdraw": true|false}`` changes whether an
  existing key can withdraw (its balances are kept).
* ``POST /_mock/revoke`` ``{"exchange", "api_key"}`` deletes a key, as if revoked at the venue: its calls
  get the venue's unknown-key error (Binance -2015, OKX 50111).
* ``POST /_mock/prices`` ``{"exchange", "prices": {"BTC/USDT": "50000", ...}, "replace"?: false}`` sets
  last prices (a ``null`` price removes that symbol; ``replace`` drops every other one). Markets
  follow: every priced symbol is listed.
* ``POST /_mock/behaviour`` ``{"mode": "normal"|"rate_limited"|"down"|"slow", "delay_seconds"?}``:
  ``rate_limited`` answers the venue's 429, ``down`` a bare 503, ``slow`` waits before answering.
* ``POST /_mock/faults`` ``{"exchange", "fault": "lost_answer"|"insufficient_balance"|"read_unavailable", "api_key"?,
  "count"?: 1, "status"?: 503, "delay_seconds"?}`` arms a fault for the next ``count`` order placements
  (``null``: until cleared) of the venue (of one key): ``lost_answer`` places the order, then answers a
  bare ``status`` (ccxt raises a network error) or, with ``delay_seconds``, holds the answer that long
  (past the client's timeout); ``insufficient_balance`` refuses with the venue's insufficient-funds
  error; ``read_unavailable`` answers the next reads of one order (``GET`` order) a bare ``status``.
  ``{"clear": true}`` disarms every fault.
* ``POST /_mock/prices`` also fills the resting limit orders the new prices cross (``orders_filled``).
* ``GET /_mock/orders?exchange=&api_key=``: every order the mock holds (status, filled, fee, ...).
* ``GET /_mock/stats``: per venue ``requests``, ``private_requests``, ``valid_signatures``,
  ``in_flight``, ``max_in_flight`` (most requests held at once), ``paths`` (requests per path),
  ``connections`` (distinct client sockets), ``orders_created`` and ``orders_by_key`` (orders the venue
  accepted), plus totals; ``POST /_mock/stats/reset`` zeroes them.
"""

from devtools.mock_exchange.app import create_app
from devtools.mock_exchange.server import MockExchangeServer, serve
from devtools.mock_exchange.state import DEFAULT_BALANCES, DEFAULT_PRICES, DEMO_ACCOUNTS, MockState

__all__ = ["DEFAULT_BALANCES", "DEFAULT_PRICES", "DEMO_ACCOUNTS", "MockExchangeServer", "MockState", "create_app",
           "serve"]
