#!/usr/bin/env python3
"""Hostile-load soak for one Portcullis process (see benches/README.md).

Started by benches/soak.sh with the gateway already running; stdlib only.
Each phase prints one line of figures beside its target, measured in this
run against this run's own baseline. Loopback only, bounded in time.
"""

import argparse
import base64
import http.client
import json
import os
import socket
import ssl
import statistics
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

TICK = os.sysconf("SC_CLK_TCK")


def tls_context(alpn=("http/1.1",)):
    # A loopback benchmark against the dev certificate: the names the apps
    # use (b.test, a.test) are routing names, not the certificate's.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(list(alpn))
    return ctx


class Gateway:
    def __init__(self, pid, port, log_path):
        self.pid, self.port, self.log_path = pid, port, log_path

    def cpu_seconds(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def rss_kib(self, key="VmRSS"):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def log_lines(self, needle):
        with open(self.log_path, errors="replace") as f:
            return sum(needle in line for line in f)

    def connection(self, source=None, timeout=30):
        return http.client.HTTPSConnection(
            "127.0.0.1",
            self.port,
            context=tls_context(),
            timeout=timeout,
            source_address=(source, 0) if source else None,
        )


def request(conn, method, host, path, body=None, headers=None):
    """One request on a keep-alive connection; (status, seconds)."""
    headers = dict(headers or {})
    headers["Host"] = host
    started = time.monotonic()
    conn.request(method, path, body=body, headers=headers)
    reply = conn.getresponse()
    reply.read()
    return reply.status, time.monotonic() - started


def fresh_request(gw, method, host, path, body=None, headers=None, source=None):
    """A request on its own connection (a server may close an idle one)."""
    conn = gw.connection(source)
    try:
        return request(conn, method, host, path, body, headers)
    finally:
        conn.close()


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def hostile_response(kib=256):
    """Issue 15's hostile ACS post: a Response with a signed-looking
    assertion and unique junk attributes on the envelope, up to the
    256 KiB base64 cap."""
    head = (
        '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_hostile" '
        'Version="2.0" IssueInstant="2026-01-01T00:00:00Z" '
        'Destination="https://b.test/_portcullis/saml/acs" '
    )
    tail = (
        "><saml:Issuer>https://a.test/sso/saml/metadata</saml:Issuer>"
        '<saml:Assertion ID="_a" Version="2.0" IssueInstant="2026-01-01T00:00:00Z">'
        "<saml:Issuer>https://a.test/sso/saml/metadata</saml:Issuer>"
        '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo/>'
        "<ds:SignatureValue>AAAA</ds:SignatureValue></ds:Signature>"
        "</saml:Assertion></samlp:Response>"
    )
    budget = kib * 1024 // 4 * 3 - len(head) - len(tail) - 64
    junk, i = [], 0
    size = 0
    while True:
        attribute = f'j{i:x}="" '
        if size + len(attribute) > budget:
            break
        junk.append(attribute)
        size += len(attribute)
        i += 1
    return base64.b64encode((head + "".join(junk) + tail).encode()).decode(), i


def phase_hostile_acs(gw, posters, posts_each):
    post, attributes = hostile_response()
    form = "SAMLResponse=" + post.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    form += "&RelayState=%2F"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": "pc_b_rs=_anything",
    }
    # Baseline: the bystander's latency on an idle gateway.
    bystander = gw.connection()
    baseline = [request(bystander, "GET", "b.test", "/public")[1] for _ in range(50)]
    statuses, running = [], threading.Event()
    running.set()

    def poster():
        out = []
        for _ in range(posts_each):
            out.append(fresh_request(gw, "POST", "b.test", "/_portcullis/saml/acs", form, headers)[0])
        return out

    cpu_before = gw.cpu_seconds()
    during = []
    with ThreadPoolExecutor(posters) as pool:
        futures = [pool.submit(poster) for _ in range(posters)]
        while not all(f.done() for f in futures):
            try:
                during.append(request(bystander, "GET", "b.test", "/public")[1])
            except (http.client.HTTPException, OSError):
                bystander.close()
                bystander = gw.connection()
        for f in futures:
            statuses.extend(f.result())
    cpu = gw.cpu_seconds() - cpu_before
    posts = posters * posts_each
    refused = sum(s == 400 for s in statuses)
    print(
        f"hostile ACS posts    {posts} posts of {len(post) // 1024} KiB ({attributes} junk attributes), "
        f"{refused} refused with 400; gateway CPU {cpu * 1000 / posts:.1f} ms/post (target < 100); "
        f"bystander p50 {statistics.median(during) * 1000:.1f} ms, max {max(during) * 1000:.1f} ms "
        f"(target < 200; idle baseline p50 {statistics.median(baseline) * 1000:.1f} ms, "
        f"max/baseline-p50 {max(during) / statistics.median(baseline):.1f}x) over {len(during)} requests"
    )
    bystander.close()


def phase_password_spray(gw, concurrency, seconds):
    rss_before = gw.rss_kib()
    peak = [rss_before]
    stop = time.monotonic() + seconds
    counts = {}
    lock = threading.Lock()

    def sampler():
        while time.monotonic() < stop + 1:
            peak[0] = max(peak[0], gw.rss_kib())
            time.sleep(0.05)

    def sprayer(i):
        source = f"127.0.{1 + i // 250}.{2 + i % 250}"
        n = 0
        while time.monotonic() < stop:
            body = json.dumps({"username": f"spray-{i}-{n}", "password": "Winter2024!"})
            try:
                status, _ = fresh_request(
                    gw, "POST", "a.test", "/api/v1/authn", body,
                    {"Content-Type": "application/json", "Accept": "application/json"},
                    source=source,
                )
            except (http.client.HTTPException, OSError) as e:
                status = type(e).__name__
            with lock:
                counts[status] = counts.get(status, 0) + 1
            n += 1

    watcher = threading.Thread(target=sampler)
    watcher.start()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(sprayer, range(concurrency)))
    watcher.join()
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=str))
    print(
        f"password spray       {concurrency} concurrent unknown logins from {concurrency} addresses for {seconds} s "
        f"({summary}); RSS {rss_before // 1024} -> peak {peak[0] // 1024} MB (target < 200 MB)"
    )


def h2_frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def phase_h2_trickle(gw, connections, timeout):
    """HTTP/2 clients that send a HEADERS frame without END_HEADERS, then
    one CONTINUATION byte a second: each must be cut near
    header_read_timeout."""
    cut_after = []
    lock = threading.Lock()
    deadline = timeout * 3 + 5

    def trickler(_):
        raw = socket.create_connection(("127.0.0.1", gw.port), timeout=deadline)
        s = tls_context(("h2",)).wrap_socket(raw, server_hostname=None)
        started = time.monotonic()
        try:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0, b""))
            s.sendall(h2_frame(1, 0, 1, b"\x82"))  # :method GET, no END_HEADERS
            s.settimeout(1.0)
            while time.monotonic() - started < deadline:
                try:
                    if s.recv(65536) == b"":
                        break
                except socket.timeout:
                    s.sendall(h2_frame(9, 0, 1, b"\x84"))  # :path /, still no END_HEADERS
        except OSError:
            pass  # a reset is a close too
        finally:
            elapsed = time.monotonic() - started
            s.close()
        with lock:
            cut_after.append(elapsed)

    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(trickler, range(connections)))
    open_at_end = sum(t >= deadline for t in cut_after)
    print(
        f"h2 header trickle    {connections} connections; cut after median {statistics.median(cut_after):.1f} s, "
        f"max {max(cut_after):.1f} s (header_read_timeout {timeout} s); still open at {deadline} s: {open_at_end} (target 0)"
    )


def phase_outage(gw, clients, seconds):
    before = gw.log_lines("upstream request failed")
    stop = time.monotonic() + seconds
    counts = {}
    lock = threading.Lock()

    def hammer(_):
        conn = gw.connection()
        while time.monotonic() < stop:
            try:
                status, _ = request(conn, "GET", "dead.test", "/")
            except (http.client.HTTPException, OSError):
                conn.close()
                conn = gw.connection()
                continue
            with lock:
                counts[status] = counts.get(status, 0) + 1
        conn.close()

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(hammer, range(clients)))
    time.sleep(0.5)  # let the last log lines reach the file
    lines = gw.log_lines("upstream request failed") - before
    failed = counts.get(502, 0) + counts.get(504, 0)
    print(
        f"upstream outage      {failed} answers 502/504 in {seconds} s from {clients} clients; "
        f"{lines} 'upstream request failed' log lines (one per target and worker per 10 s; was one per 502)"
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--header-timeout", type=float, required=True)
    parser.add_argument("--scale", type=float, default=1.0)
    a = parser.parse_args()
    gw = Gateway(a.pid, a.port, a.log)
    n = lambda base: max(1, int(base * a.scale))
    phase_hostile_acs(gw, posters=4, posts_each=n(5))
    phase_password_spray(gw, concurrency=n(64), seconds=n(10))
    phase_h2_trickle(gw, connections=n(200), timeout=a.header_timeout)
    phase_outage(gw, clients=8, seconds=n(5))


if __name__ == "__main__":
    main()
