"""The serving stage's commands: run the API server, manage its API keys.

Registered by engine/__main__.py: `python -m engine COMMAND --help`.

python -m engine serve [--host 127.0.0.1] [--port 8000] [--ssl-certfile F --ssl-keyfile F]
python -m engine keys create NAME [--expires DAYS] [--log-texts] [--rate-limit N]
python -m engine keys list [--all] | keys revoke NAME
"""

from __future__ import annotations

import sys

from engine.errors import TuneloopError


def cmd_serve(con, args):
    """Write the serve folder from the store, close the database (the app can then open it:
    its poller ingests the request log) and serve in the foreground."""
    from engine.serving.runs import ingest_requests, server_state, write_folder
    from engine.serving.worker import serve

    current = server_state()
    if current.running:
        raise TuneloopError(f"A server is running already (pid {current.pid}, {current.url}).")
    folder = write_folder(con)
    ingest_requests(con, folder)
    con.close()
    print(f"Serve folder: {folder}", file=sys.stderr)
    serve(folder, args.host, args.port, args.ssl_certfile, args.ssl_keyfile)


def cmd_keys(con, args):
    from engine.auth import CONSOLE
    from engine.serving import keys

    if args.action == "create":
        if not args.name:
            raise TuneloopError("Name the key: python -m engine keys create NAME")
        key = keys.create_key(
            con, CONSOLE, args.name, args.expires, args.log_texts, args.rate_limit
        )
        print(f"Created API key {args.name!r}. It is shown only now; store it safely:")
        print(key)
    elif args.action == "revoke":
        if not args.name:
            raise TuneloopError("Name the key: python -m engine keys revoke NAME")
        keys.revoke_key(con, CONSOLE, args.name)
        print(f"Revoked {args.name}: a running server refuses it within seconds.")
    else:
        table = keys.list_keys(con, include_revoked=args.all)
        print("No API keys." if table.empty else table.to_string(index=False))


def add_commands(sub):
    """Add this stage's subcommands to the `python -m engine` parser."""
    p = sub.add_parser("serve", help="serve the production model (OpenAI-compatible API)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--ssl-keyfile", help="… and this private key (PEM)")
    p.set_defaults(run=cmd_serve)
    p = sub.add_parser("keys", help="API keys of the model server: create, list, revoke")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("name", nargs="?", help="who or what uses the key")
    p.add_argument("--expires", type=float, metavar="DAYS", help="expire after DAYS days")
    p.add_argument(
        "--log-texts", action="store_true", help="log this key's prompts and answers too"
    )
    p.add_argument("--rate-limit", type=int, metavar="N", help="requests per minute")
    p.add_argument("--all", action="store_true", help="list revoked keys too")
    p.set_defaults(run=cmd_keys)
