"""Child processes of the benchmarks: a free loopback port, a graceful stop."""

from __future__ import annotations

import asyncio
import signal
import socket


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def stop(process: asyncio.subprocess.Process, *, within: float = 30) -> None:
    """SIGTERM, then SIGKILL if it has not exited `within` seconds later."""
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
