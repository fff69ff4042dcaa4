"""64 MiB through nginx: the generated config's buffers against nginx's defaults, and direct.

    .venv/bin/python bench/nginx_transfer.py            # ~30 s; --repeats N, --size-mib N

Starts one ``puregrpc-streaming serve`` and two nginx in front of it (the
config of ``puregrpc_streaming.cluster``: one with its buffer sizes, 1 MiB
request window and response buffer; one with nginx's defaults, 16 KiB and
8 KiB), then uploads and downloads the same file with the client helpers
(``upload_file``, ``download_file``: sha256 both ways), in turn through
each nginx and directly, ``--repeats`` times. Prints MB/s of each run and
each nginx's median as a share of direct (a paired ratio: the same round,
the same machine load).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

from puregrpc_streaming.client_helpers import download_file, open_channel, upload_file
from puregrpc_streaming.cluster import Nginx, NginxSettings, run_instance
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub

#: name -> (client_body_buffer_size and http2_body_preread_size, grpc_buffer_size)
SETUPS = {"nginx-defaults": ("16k", "8k"), "nginx-generated": ("1m", "1m")}


async def _transfer(address: str, source: Path, size: int, work: Path) -> tuple[float, float]:
    """MB/s of one upload and one download of ``source`` (``size`` bytes) through ``address``."""
    async with open_channel(address) as channel:
        stub = StreamingServiceStub(channel)
        began = time.perf_counter()
        uploaded = await upload_file(stub, source)
        up = time.perf_counter() - began
        copy = work / "copy.bin"
        began = time.perf_counter()
        result = await download_file(stub, uploaded.file_id, copy)
        down = time.perf_counter() - began
        assert result.checksum_verified
        copy.unlink()
    return size / up / 1e6, size / down / 1e6


async def main(repeats: int, size_mib: int) -> None:
    """Run the rounds and print the table."""
    work = Path(tempfile.mkdtemp(prefix="puregrpc-bench-nginx-"))
    try:
        source = work / "source.bin"
        source.write_bytes(os.urandom(size_mib << 20))
        print(f"cores: {os.cpu_count()}; load average before: {os.getloadavg()[0]:.1f}")
        async with run_instance("A", work / "data", "--dataset-rows", "100") as instance:
            proxies = {}
            try:
                for name, (body, response) in SETUPS.items():
                    settings = NginxSettings(
                        upstreams=(instance.address,), body_buffer=body, response_buffer=response
                    )
                    proxies[name] = Nginx(settings, work / name)
                    proxies[name].start()
                rates: dict[str, list[tuple[float, float]]] = {}
                for round_ in range(repeats):
                    for name in (*SETUPS, "direct"):
                        address = instance.address if name == "direct" else proxies[name].address
                        up, down = await _transfer(address, source, size_mib << 20, work)
                        rates.setdefault(name, []).append((up, down))
                        figures = f"upload {up:5.0f} MB/s  download {down:5.0f} MB/s"
                        print(f"round {round_} {name:16} {figures}")
            finally:
                for proxy in proxies.values():
                    proxy.stop()
        direct = rates["direct"]
        for name in SETUPS:
            ups = [r[0] / d[0] for r, d in zip(rates[name], direct, strict=True)]
            downs = [r[1] / d[1] for r, d in zip(rates[name], direct, strict=True)]
            print(
                f"{name:16} / direct, median of {repeats} pairs: "
                f"upload {statistics.median(ups):.0%}, download {statistics.median(downs):.0%}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=64)
    args = parser.parse_args()
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        sys.exit("nginx is required: apt-get install -y nginx")
    trio.run(main, args.repeats, args.size_mib)
