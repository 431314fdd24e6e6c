"""Small jobs about the worker itself."""

from __future__ import annotations

import os
import socket
from typing import Any


async def ping(ctx: dict[str, Any]) -> str:
    """Answer which worker ran the job; proves the queue end to end."""
    return f"pong from {socket.gethostname()}:{os.getpid()} try {ctx.get('job_try', 1)}"
