#!/usr/bin/env python3
"""Idle-connection client for benches/idle_memory.sh.

Opens N TLS connections to one server, completes one GET on each (HTTP/1.1
or HTTP/2, by ALPN), leaves them all idle on keep-alive, and reads the
server's resident memory (VmRSS of every given pid, summed) before the
connections are opened and once they are all idle. Prints one line:

    open=N before_kib=B after_kib=A bytes_per_conn=X

Standard library only: HTTP/2 is written by hand (preface, SETTINGS,
SETTINGS ACK, one HEADERS frame with HPACK indexed and literal fields), so
the bench needs no package from PyPI.
"""

import argparse
import asyncio
import ssl
import struct
import sys
import time

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_DATA, FRAME_HEADERS, FRAME_SETTINGS, FRAME_PING, FRAME_GOAWAY = 0x0, 0x1, 0x4, 0x6, 0x7
FLAG_END_STREAM, FLAG_ACK, FLAG_END_HEADERS = 0x1, 0x1, 0x4
BODY = b"hello from backend\n"


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_literal(index, value):
    """Literal header field without indexing, name from the static table
    (RFC 7541 §6.2.2), value not Huffman-coded; value shorter than 127."""
    raw = value.encode()
    assert index < 15 and len(raw) < 127
    return bytes([index, len(raw)]) + raw


async def read_frame(reader):
    head = await reader.readexactly(9)
    length = int.from_bytes(head[:3], "big")
    kind, flags = head[3], head[4]
    stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
    payload = await reader.readexactly(length) if length else b""
    return kind, flags, stream, payload


async def get_h2(reader, writer, authority):
    # :method GET (2), :scheme https (7), :path / (4), :authority literal (1)
    block = b"\x82\x87\x84" + hpack_literal(1, authority)
    writer.write(
        H2_PREFACE
        + frame(FRAME_SETTINGS, 0, 0)
        + frame(FRAME_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1, block)
    )
    await writer.drain()
    body = b""
    while True:
        kind, flags, stream, payload = await read_frame(reader)
        if kind == FRAME_SETTINGS and not flags & FLAG_ACK:
            writer.write(frame(FRAME_SETTINGS, FLAG_ACK, 0))
        elif kind == FRAME_PING and not flags & FLAG_ACK:
            writer.write(frame(FRAME_PING, FLAG_ACK, 0, payload))
        elif kind == FRAME_GOAWAY:
            raise ConnectionError("GOAWAY before the response")
        elif stream == 1 and kind in (FRAME_HEADERS, FRAME_DATA):
            if kind == FRAME_DATA:
                body += payload
            if flags & FLAG_END_STREAM:
                break
    await writer.drain()
    if body != BODY:
        raise ConnectionError(f"unexpected h2 body {body[:80]!r}")


async def get_h1(reader, writer, authority):
    writer.write(f"GET / HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        raise ConnectionError(f"unexpected status line {status!r}")
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        raise ConnectionError("response without content-length")
    body = await reader.readexactly(length)
    if body != BODY:
        raise ConnectionError(f"unexpected h1 body {body[:80]!r}")


async def open_one(args, context, authority):
    reader, writer = await asyncio.open_connection(
        args.host, args.port, ssl=context, server_hostname="localhost"
    )
    alpn = writer.get_extra_info("ssl_object").selected_alpn_protocol()
    if args.proto == "h2":
        if alpn != "h2":
            raise ConnectionError(f"ALPN chose {alpn!r}, not h2")
        await get_h2(reader, writer, authority)
    else:
        if alpn not in (None, "http/1.1"):
            raise ConnectionError(f"ALPN chose {alpn!r}, not http/1.1")
        await get_h1(reader, writer, authority)
    return reader, writer


async def open_many(args, context, count):
    authority = f"{args.host}:{args.port}"
    gate = asyncio.Semaphore(args.concurrency)

    async def guarded():
        async with gate:
            return await asyncio.wait_for(open_one(args, context, authority), args.timeout)

    results = await asyncio.gather(*(guarded() for _ in range(count)), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise SystemExit(f"{len(failures)} of {count} connections failed, e.g. {failures[0]!r}")
    return results


def close_all(conns):
    for _, writer in conns:
        writer.transport.abort()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--proto", choices=["h1", "h2"], required=True)
    parser.add_argument("--conns", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--pids", required=True, help="comma-separated server pids")
    args = parser.parse_args()
    pids = [int(p) for p in args.pids.split(",") if p]

    context = ssl.create_default_context(cafile=args.cafile)
    context.set_alpn_protocols(["h2"] if args.proto == "h2" else ["http/1.1"])

    # Warm-up: lazily built state (upstream pool, session cache, allocator
    # arenas, first-use tables) belongs to the baseline, not to the idle
    # connections counted after it.
    close_all(await open_many(args, context, args.warmup))
    await asyncio.sleep(args.settle)
    before = rss_kib(pids)

    started = time.monotonic()
    conns = await open_many(args, context, args.conns)
    opened_in = time.monotonic() - started
    await asyncio.sleep(args.settle)
    after = rss_kib(pids)

    # Every connection must still be open: a server that closed some would
    # look leaner than it is.
    closed = sum(1 for r, w in conns if r.at_eof() or w.transport.is_closing())
    if closed:
        raise SystemExit(f"{closed} of {args.conns} connections were closed by the server while idle")
    close_all(conns)
    per_conn = (after - before) * 1024 / args.conns
    print(
        f"open={args.conns} before_kib={before} after_kib={after} "
        f"bytes_per_conn={per_conn:.0f} opened_in_s={opened_in:.1f}"
    )


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except SystemExit as e:
        if isinstance(e.code, str):
            print(f"idle_client: {e.code}", file=sys.stderr)
            sys.exit(1)
        raise
