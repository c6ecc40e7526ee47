"""What a client without the token costs the API (not a test): memory and metrics series.

The API runs as its own process (with `API_TOKEN`) on the embedded stack. Printed, each against
the same process's figure before (the in-run baseline):

1. its RSS after a 150 MiB body is sent without the token, declared by Content-Length and then
   chunked, with the time to the 401 and how much of the body had gone out by then;
2. its RSS after the same 150 MiB is sent with the token (refused with 413 by its length);
3. the number of `yokeflow_api_requests_total` series after 1,000 requests with made-up methods.

Usage: python bench/api_limits.py [--mib 150] [--methods 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nats
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from yokeflow_intervention.shared.bus import provision  # noqa: E402
from yokeflow_intervention.shared.db import migrate  # noqa: E402
from yokeflow_intervention.shared.embedded import free_port, throwaway_stack  # noqa: E402
from yokeflow_intervention.shared.runtime import product_command  # noqa: E402

TOKEN = "bench-token"
MIB = 1024 * 1024


def rss(process: subprocess.Popen[bytes]) -> float:
    return int(psutil.Process(process.pid).memory_info().rss) / MIB


async def send(port: int, head: bytes, size: int, chunked: bool) -> tuple[str, float, int]:
    """Send `head` and a `size`-byte body while reading the reply: the reply's status line, the
    seconds to it, and the body bytes that had gone out by then (the rest is not sent once the
    server closes the connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    piece = b"x" * MIB
    frame = (b"100000\r\n" + piece + b"\r\n") if chunked else piece
    sent = 0

    async def push() -> None:
        nonlocal sent
        writer.write(head)
        try:
            while sent < size:
                writer.write(frame)
                await asyncio.wait_for(writer.drain(), 5)
                sent += MIB
            writer.write(b"0\r\n\r\n" if chunked else b"")
            await writer.drain()
        except (ConnectionError, TimeoutError):
            pass

    started = time.perf_counter()
    pusher = asyncio.create_task(push())
    status = (await asyncio.wait_for(reader.readline(), 120)).decode().strip()
    took, at_reply = time.perf_counter() - started, sent
    await pusher
    writer.close()
    return status, took, at_reply


async def measure(args: argparse.Namespace, nats_url: str, database_url: str, temp: Path) -> None:
    nc = await nats.connect(nats_url)
    await provision(nc)
    await nc.close()
    await migrate(database_url)
    port = free_port()
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "API_TOKEN": TOKEN,
        "YOKEFLOW_API_PORT": str(port),
        "YOKEFLOW_LOG_LEVEL": "WARNING",
    }
    api = subprocess.Popen(
        product_command("services.api"),
        env=env,
        cwd=ROOT,
        stdout=(temp / "api.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            for _ in range(100):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            size = args.mib * MIB
            route = "/api/interventions/bench/resume"
            before = rss(api)
            print(f"API RSS at rest: {before:.1f} MiB")
            for chunked in (False, True):
                framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
                head = f"POST {route} HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n".encode()
                status, took, sent = await send(port, head, size, chunked)
                print(
                    f"{args.mib} MiB without the token ({'chunked' if chunked else 'declared'}): "
                    f"{status!r} after {took * 1000:.1f} ms; {sent / MIB:.0f} MiB had gone out "
                    f"by then; RSS {rss(api):.1f} MiB "
                    f"(+{rss(api) - before:.1f})"
                )
            head = (
                f"POST {route} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                f"Content-Length: {size}\r\n\r\n"
            ).encode()
            status, took, sent = await send(port, head, size, False)
            print(
                f"{args.mib} MiB with the token: {status!r} after {took * 1000:.1f} ms; "
                f"RSS {rss(api):.1f} MiB (+{rss(api) - before:.1f})"
            )

            def series(text: str) -> int:
                return sum(
                    line.startswith("yokeflow_api_requests_total{") for line in text.splitlines()
                )

            baseline = series((await client.get("/metrics")).text)
            for n in range(args.methods):
                await client.request(f"MADEUP{n}", "/api/projects")
            after = series((await client.get("/metrics")).text)
            print(
                f"request series: {baseline} before, {after} after {args.methods} made-up "
                f"methods; RSS {rss(api):.1f} MiB"
            )
    finally:
        api.terminate()
        api.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=150)
    parser.add_argument("--methods", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="yokeflow-api-limits-") as folder:
        temp = Path(folder)
        with throwaway_stack(temp) as (nats_url, database_url):
            asyncio.run(measure(args, nats_url, database_url, temp))


if __name__ == "__main__":
    main()
