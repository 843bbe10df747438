"""python -m accounts.fake_gateways [--host H] [--port P] [--panel-url URL]"""

import argparse

from accounts.fake_gateways.server import DEFAULT_HOST, DEFAULT_PORT, FakeConfig, make_server


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Fake Stripe, Cryptomus and PayPal for development."
    )
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--panel-url", default="http://127.0.0.1:8000")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    server = make_server(
        FakeConfig(host=args.host, port=args.port, panel_url=args.panel_url, quiet=args.quiet)
    )
    print(f"Fake gateways on {server.context.base_url} (webhooks to {args.panel_url})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.context.stop_event.set()
        server.server_close()


if __name__ == "__main__":
    main()
