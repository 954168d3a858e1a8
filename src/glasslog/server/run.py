"""Running the API on uvicorn: binding, TLS, the optional metrics address, shutdown.

A plain-HTTP server on a non-loopback address would send API keys and audit events in
clear over the network. It is refused unless TLS is given or the operator says
``--insecure-http`` (a TLS-terminating proxy in front, say).

SIGTERM and Ctrl-C stop the server gracefully: uvicorn stops accepting, lets running
requests finish, then the app's shutdown writes the queued events and the pending
``audit.read`` records and signs a checkpoint.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response

from glasslog.errors import ConfigError
from glasslog.server.app import create_app
from glasslog.server.metrics import CONTENT_TYPE
from glasslog.server.service import Service, ServiceConfig

__all__ = ["Binding", "TailingServer", "is_loopback", "serve"]

GRACE_SECONDS = 10
"""How long running requests (and tails) get to finish at shutdown."""


@dataclass(frozen=True, slots=True)
class Binding:
    """Where and how the server listens."""

    host: str = "127.0.0.1"
    port: int = 8433
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure_http: bool = False
    metrics_host: str | None = None
    metrics_port: int = 9433


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (so plain HTTP never leaves it)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(binding: Binding) -> None:
    """Refuse a binding that would send keys in clear across a network."""
    if (binding.tls_cert is None) != (binding.tls_key is None):
        raise ConfigError("give both --tls-cert and --tls-key, or neither")
    tls = binding.tls_cert is not None
    for host in filter(None, (binding.host, binding.metrics_host)):
        if not tls and not binding.insecure_http and not is_loopback(host):
            raise ConfigError(
                f"refusing plain HTTP on {host}: API keys and audit events would cross the "
                "network in clear. Give --tls-cert and --tls-key, bind to 127.0.0.1, or pass "
                "--insecure-http when a TLS proxy in front of glasslog terminates TLS"
            )


class TailingServer(uvicorn.Server):
    """uvicorn, ending the live tails first at shutdown: an SSE stream never ends by
    itself, and uvicorn would otherwise wait out its grace period for each one."""

    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self._service = service

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self._service.hub.close()
        await super().shutdown(sockets)


def _metrics_app(service: Service) -> FastAPI:
    """``/metrics`` alone, without a principal: for the separate metrics address."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE)

    return app


def serve(config: ServiceConfig, binding: Binding) -> None:
    """Serve until SIGTERM or Ctrl-C."""
    check_binding(binding)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    service = Service(config)
    ssl = {}
    if binding.tls_cert is not None and binding.tls_key is not None:
        ssl = {"ssl_certfile": str(binding.tls_cert), "ssl_keyfile": str(binding.tls_key)}
    main = TailingServer(uvicorn.Config(
        create_app(service), host=binding.host, port=binding.port, lifespan="on",
        timeout_graceful_shutdown=GRACE_SECONDS, server_header=False, log_level="info",
        **ssl,  # type: ignore[arg-type]
    ), service)  # fmt: skip
    servers: list[uvicorn.Server] = [main]
    if binding.metrics_host is not None:
        servers.append(uvicorn.Server(uvicorn.Config(
            _metrics_app(service), host=binding.metrics_host, port=binding.metrics_port,
            lifespan="off", server_header=False, log_level="warning", **ssl,  # type: ignore[arg-type]
        )))  # fmt: skip

    async def run_all() -> None:
        # Whichever server gets the signal stops first; the others follow it.
        tasks = [asyncio.create_task(s.serve()) for s in servers]
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*pending)

    asyncio.run(run_all())
