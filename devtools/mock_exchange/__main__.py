"""``python -m devtools.mock_exchange [--host H] [--port P]``: serve the mock in the foreground."""

from __future__ import annotations

import argparse

from devtools.mock_exchange.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.mock_exchange", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.log_level)


if __name__ == "__main__":
    main()
