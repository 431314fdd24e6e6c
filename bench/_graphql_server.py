"""Server of the graphql_vs_raw_starlette benchmarks: the gateway app plus a raw Starlette route.

`python -m bench._graphql_server` serves the real gateway (create_app, as `cadt-gateway serve
--no-worker` builds it) under one uvicorn worker, and adds one route that production never has:
`POST /bench/raw`, a plain Starlette endpoint that runs the same database queries as the
dashboard query (one page of organizations with their sync state and mirrors) and answers the
JSON the GraphQL endpoint answers for that query, byte for byte. The benchmark checks that.

Prints `port <n>` once it serves, then runs until SIGTERM. Settings come from the environment
(CADT_DATA_DIR, CADT_REDIS_URL, ...).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services import views
from services.container import Services
from services.organizations import list_organizations

RAW_PATH = "/bench/raw"


async def dashboard_data(services: Services, first: int) -> dict[str, Any]:
    """The dashboard query's `data`, built straight from the read models (no GraphQL)."""
    version = services.settings.data_model_version.value
    page = await list_organizations(services.db, data_model_version=version, first=first)
    organizations = [edge.organization for edge in page.edges]
    sync = await views.sync_views(services.db, organizations)
    store_ids = [store_id for org in organizations for store_id in org.store_ids]
    mirrors = await views.mirrors_by_store(services.db, store_ids)
    edges = []
    for org in organizations:
        state = sync[org.org_uid]
        edges.append(
            {
                "node": {
                    "orgUid": org.org_uid,
                    "name": org.name,
                    "isHome": org.is_home,
                    "subscribed": org.subscribed,
                    "sync": {
                        "synced": state.synced,
                        "syncRemaining": state.sync_remaining,
                        "backoff": (
                            None
                            if state.backoff is None
                            else {"delaySeconds": state.backoff.delay_seconds}
                        ),
                    },
                    "mirrors": [
                        {"storeId": mirror.store_id, "urls": list(mirror.urls)}
                        for store_id in org.store_ids
                        for mirror in mirrors.get(store_id, [])
                    ],
                }
            }
        )
    return {"organizations": {"edges": edges}}


async def raw_dashboard(request: Request) -> Response:
    """The baseline endpoint: same body in (variables.first), same JSON out."""
    body = await request.json()
    first = int((body.get("variables") or {}).get("first", 50))
    data = await dashboard_data(request.state.services, first)
    return JSONResponse({"data": data})


def bench_app() -> Starlette:
    """The gateway as `cadt-gateway serve --no-worker` builds it, plus the raw route."""
    from cadt_gateway.app import create_app
    from cadt_gateway.settings import load_settings

    app = create_app(load_settings(), run_worker=False)
    app.router.routes.insert(0, Route(RAW_PATH, raw_dashboard, methods=["POST"]))
    return app


def main() -> None:
    """Serve on a free loopback port and print it."""
    app = bench_app()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        ws="websockets-sansio",
        proxy_headers=False,
        backlog=4096,
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        print(f"port {sock.getsockname()[1]}", flush=True)
        await task

    # The loop uvicorn itself would pick (uvloop when installed), as for `cadt-gateway serve`.
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(serve())


if __name__ == "__main__":
    main()
