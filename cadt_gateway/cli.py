"""The `cadt-gateway` command: serve, worker, migrate, export-schema, simulator."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from cadt_gateway.settings import Settings, SettingsError, load_settings

console = Console(stderr=True)


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as error:
        console.print(
            f"[bold red]cadt-gateway: bad setting[/] {error}", highlight=False, soft_wrap=True
        )
        raise SystemExit(2) from None


def banner(settings: Settings, *, host: str, port: int, worker: bool) -> None:
    """Print where the node serves and which parts are embedded."""
    url = f"http://{host}:{port}/graphql"
    console.print(f"[bold]cadt-gateway[/] serving GraphQL at [link={url}]{url}[/link]")
    console.print(f"  data dir   {settings.data_dir.resolve()}")
    database = "SQLite in the data dir (embedded)" if settings.database_url is None else "external"
    console.print(f"  database   {database}")
    redis = "embedded redis-server" if settings.uses_embedded_redis else "external"
    console.print(f"  redis      {redis}")
    upstream = (
        "built-in Chia simulator (embedded)"
        if settings.uses_embedded_simulator
        else f"{settings.datalayer_url} + {settings.wallet_url}"
    )
    console.print(f"  upstream   {upstream}")
    console.print(f"  worker     {'in-process' if worker else 'none (run `cadt-gateway worker`)'}")
    if settings.api_key is None:
        console.print(
            "[yellow]warning:[/] CADT_API_KEY is not set; anyone who can reach this port can "
            "change the node"
        )
    if settings.read_only:
        console.print("  read-only  mutations are refused")


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve GraphQL (and run one worker unless --no-worker)."""
    import uvicorn

    from cadt_gateway.app import create_app
    from cadt_gateway.logs import configure_logging

    settings = _settings(host=args.host, port=args.port)
    configure_logging(settings.log_level.value, json_lines=settings.log_json)
    banner(settings, host=settings.host, port=settings.port, worker=not args.no_worker)
    app = create_app(settings, run_worker=not args.no_worker)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.value,
        lifespan="on",
        ws="websockets-sansio",
        ws_max_size=settings.max_body_bytes,
        proxy_headers=False,
    )
    uvicorn.Server(config).run()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run one arq worker process until SIGINT/SIGTERM."""
    from cadt_gateway.logs import configure_logging
    from cadt_gateway.worker import run_worker

    settings = _settings()
    configure_logging(settings.log_level.value, json_lines=settings.log_json)
    if args.metrics_port:
        from cadt_gateway.metrics import serve_worker_metrics

        serve_worker_metrics(args.metrics_port, args.metrics_host)
    asyncio.run(run_worker(settings))
    return 0


def cmd_migrate(_: argparse.Namespace) -> int:
    """Apply database migrations."""
    from services.db.migrate import upgrade_to_head

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_to_head(settings.resolved_database_url)
    console.print("database is at the newest migration")
    return 0


def cmd_export_schema(args: argparse.Namespace) -> int:
    """Write the GraphQL SDL (schema.graphql)."""
    import schema

    sdl = schema.print_schema()
    if args.output == "-":
        sys.stdout.write(sdl)
    else:
        Path(args.output).write_text(sdl, encoding="utf-8")
        console.print(f"wrote {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="cadt-gateway",
        description="GraphQL gateway for CADT in front of the Chia DataLayer and Wallet RPC.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve GraphQL (with one in-process worker)")
    serve.add_argument("--host", help="bind address (default 127.0.0.1, CADT_HOST)")
    serve.add_argument("--port", type=int, help="port (default 31310, CADT_PORT)")
    serve.add_argument("--no-worker", action="store_true", help="do not run jobs in this process")
    serve.set_defaults(handler=cmd_serve)

    worker = sub.add_parser("worker", help="run an arq worker process")
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve this worker's Prometheus metrics on this port (default: none)",
    )
    worker.add_argument("--metrics-host", default="0.0.0.0", help="bind address of --metrics-port")
    worker.set_defaults(handler=cmd_worker)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(handler=cmd_migrate)

    export = sub.add_parser("export-schema", help="write the GraphQL SDL")
    export.add_argument(
        "--output", "-o", default="schema.graphql", help="file to write, - for stdout"
    )
    export.set_defaults(handler=cmd_export_schema)

    from cadt_gateway.cli_operations import add_operations_parser

    add_operations_parser(sub)

    try:
        from cadt_gateway.cli_simulator import add_simulator_parser
    except ImportError:  # the simulator subcommand arrives with the simulator package
        pass
    else:
        add_simulator_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
