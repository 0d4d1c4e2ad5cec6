#!/usr/bin/env python3
"""HTTP/1.1 timing client for the benchmark harness (Python standard library only).

  httptime.py new HOST PORT --count N [--mptcp] [--path /] [--timeout S]
      N times: a new connection, `GET PATH HTTP/1.1` with Host and
      `Connection: close`, the whole response read (to the server's EOF).
      Per sample (ms, time.perf_counter from just before connect()):
        connect_ms   connect() returned
        first_ms     the first response byte arrived
        complete_ms  the last body byte arrived (connect + request + response)
      Every response is checked: status 200, body length = Content-Length
      (or a well-formed chunked body), nothing after the body; the server
      closes the connection.
  httptime.py persistent HOST PORT --count N [--mptcp] [--path /] [--timeout S]
      One keep-alive connection, N GETs one after another. Per request: the
      time from sending it to the last body byte (ms). All N are samples; the
      first one is also reported alone as "first_ms" (it may differ: the
      server's first request on a connection), "rest" summarises the others.
  httptime.py probe HOST PORT [--wait S] [--mptcp]
      The truth test for a closed port or an unreachable host: connect()
      (timeout S, default 5), then, when it succeeded, a GET and up to S
      seconds for anything. Outcome (what the client sees):
        refused              connect() failed with ECONNREFUSED
        unreachable          connect() failed with EHOSTUNREACH / ENETUNREACH
        timeout              connect() did not return within S
        false-success-reset  connect() succeeded, then ECONNRESET (or EPIPE)
        false-success-eof    connect() succeeded, then EOF without any data
        false-success-hang   connect() succeeded, then nothing within S
        false-success-data   connect() succeeded, then data that is not HTTP
        ok                   an HTTP answer arrived
        error-<errno>        connect() failed otherwise
      connect_ms: when connect() returned (or gave up); outcome_ms: when the
      client knew the final outcome (for -hang and timeout: when it gave up).

Output: one JSON line. Samples in ms (3 decimals) with a summary
{median, min, max, n}. Exit status: new/persistent 0 when every request was
answered and checked, 1 otherwise (the JSON says what failed; samples of
failed requests are not included); probe 0 unless an internal error.
"""
import argparse, errno, json, socket, statistics, sys, time

IPPROTO_MPTCP = 262


class HTTPError(Exception):
    pass


def summary(xs):
    if not xs:
        return {"n": 0, "median": None, "min": None, "max": None}
    return {"n": len(xs), "median": round(statistics.median(xs), 3),
            "min": round(min(xs), 3), "max": round(max(xs), 3)}


def ms(t):
    return round(t * 1000.0, 3)


def make_socket(mptcp, family=socket.AF_INET):
    return socket.socket(family, socket.SOCK_STREAM, IPPROTO_MPTCP if mptcp else 0)


def request_bytes(host, port, path, close):
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "User-Agent: nfq-mptcp-bench-httptime",
             "Accept: */*"]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Reader:
    """Buffered reader over a socket that remembers when the first byte came."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.first = None  # perf_counter of the first byte received since reset()
        self.eof = False

    def reset_first(self):
        self.first = None if not self.buf else time.perf_counter()

    def fill(self):
        if self.eof:
            return False
        d = self.sock.recv(65536)
        if not d:
            self.eof = True
            return False
        if self.first is None:
            self.first = time.perf_counter()
        self.buf += d
        return True

    def until(self, sep):
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out, self.buf = self.buf[:i], self.buf[i + len(sep):]
                return out
            if not self.fill():
                raise HTTPError(f"EOF before {sep!r} ({len(self.buf)} bytes buffered)")

    def exactly(self, n):
        while len(self.buf) < n:
            if not self.fill():
                raise HTTPError(f"EOF after {len(self.buf)} of {n} body bytes")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def read_response(rd):
    """Reads one response; returns (status, body_len, headers, content_length)."""
    head = rd.until(b"\r\n\r\n").decode("latin-1")
    lines = head.split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise HTTPError(f"bad status line {lines[0][:80]!r}")
    status = int(parts[1])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    te = headers.get("transfer-encoding", "").lower()
    if "chunked" in te:
        total = 0
        while True:
            size = int(rd.until(b"\r\n").split(b";")[0].strip(), 16)
            if size == 0:
                while rd.until(b"\r\n"):  # trailers
                    pass
                break
            rd.exactly(size)
            total += size
            if rd.exactly(2) != b"\r\n":
                raise HTTPError("bad chunk terminator")
        return status, total, headers, None
    if "content-length" not in headers:
        raise HTTPError("response without Content-Length or chunked encoding")
    cl = int(headers["content-length"])
    rd.exactly(cl)
    return status, cl, headers, cl


def one_new(a):
    s = make_socket(a.mptcp)
    s.settimeout(a.timeout)
    try:
        t0 = time.perf_counter()
        s.connect((a.host, a.port))
        t_conn = time.perf_counter()
        s.sendall(request_bytes(a.host, a.port, a.path, close=True))
        rd = Reader(s)
        status, blen, headers, cl = read_response(rd)
        t_done = time.perf_counter()
        if status != 200:
            raise HTTPError(f"status {status}")
        # Connection: close: the server ends the connection after the body.
        while rd.fill():
            pass
        if rd.buf:
            raise HTTPError(f"{len(rd.buf)} bytes after the body")
        t_eof = time.perf_counter()
        return {"connect_ms": ms(t_conn - t0), "first_ms": ms(rd.first - t0),
                "complete_ms": ms(t_done - t0), "eof_ms": ms(t_eof - t0), "body": blen}
    finally:
        s.close()


def run_new(a):
    samples, errors = [], []
    for i in range(a.count):
        try:
            samples.append(one_new(a))
        except (OSError, HTTPError, ValueError) as e:
            errors.append(f"#{i}: {type(e).__name__}: {e}")
    out = {"mode": "new", "host": a.host, "port": a.port, "mptcp": a.mptcp, "count": a.count,
           "ok": len(samples), "errors": errors}
    for k in ("connect_ms", "first_ms", "complete_ms"):
        xs = [x[k] for x in samples]
        out[k] = xs
        out[k.replace("_ms", "")] = summary(xs)
    out["body_bytes"] = samples[0]["body"] if samples else None
    print(json.dumps(out), flush=True)
    return 0 if not errors and len(samples) == a.count else 1


def run_persistent(a):
    out = {"mode": "persistent", "host": a.host, "port": a.port, "mptcp": a.mptcp, "count": a.count}
    times, errors = [], []
    s = make_socket(a.mptcp)
    s.settimeout(a.timeout)
    try:
        t0 = time.perf_counter()
        s.connect((a.host, a.port))
        out["connect_ms"] = ms(time.perf_counter() - t0)
        rd = Reader(s)
        req = request_bytes(a.host, a.port, a.path, close=False)
        for i in range(a.count):
            if rd.buf:
                raise HTTPError(f"{len(rd.buf)} unexpected bytes before request {i}")
            t1 = time.perf_counter()
            s.sendall(req)
            status, blen, headers, cl = read_response(rd)
            t2 = time.perf_counter()
            if status != 200:
                raise HTTPError(f"request {i}: status {status}")
            if headers.get("connection", "").lower() == "close" and i + 1 < a.count:
                raise HTTPError(f"request {i}: server closes the keep-alive connection")
            times.append(ms(t2 - t1))
            out["body_bytes"] = blen
    except (OSError, HTTPError, ValueError) as e:
        errors.append(f"after {len(times)} requests: {type(e).__name__}: {e}")
    finally:
        s.close()
    out.update({"ok": len(times), "errors": errors, "samples_ms": times, "all": summary(times),
                "first_ms": times[0] if times else None, "rest": summary(times[1:])})
    print(json.dumps(out), flush=True)
    return 0 if not errors and len(times) == a.count else 1


def errname(e):
    return errno.errorcode.get(e, str(e)).lower() if e else "unknown"


def run_probe(a):
    out = {"mode": "probe", "host": a.host, "port": a.port, "mptcp": a.mptcp, "wait_s": a.wait}
    s = make_socket(a.mptcp)
    s.settimeout(a.wait)
    t0 = time.perf_counter()
    outcome, detail = None, ""
    try:
        s.connect((a.host, a.port))
    except socket.timeout:
        outcome, detail = "timeout", f"connect() not done after {a.wait} s"
    except OSError as e:
        if e.errno == errno.ECONNREFUSED:
            outcome = "refused"
        elif e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            outcome = "unreachable"
        else:
            outcome = "error-" + errname(e.errno)
        detail = f"connect(): {errname(e.errno)}"
    t_conn = time.perf_counter()
    out["connect_ms"] = ms(t_conn - t0)
    out["connected"] = outcome is None
    if outcome is None:
        # connect() succeeded: does anything real answer?
        deadline = t_conn + a.wait
        try:
            s.sendall(request_bytes(a.host, a.port, "/", close=True))
            got = b""
            while True:
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise socket.timeout()
                s.settimeout(left)
                d = s.recv(4096)
                if not d:
                    outcome, detail = "false-success-eof", "EOF without data"
                    break
                got += d
                if len(got) >= 5:
                    if got.startswith(b"HTTP/"):
                        outcome, detail = "ok", got.split(b"\r\n", 1)[0].decode("latin-1")[:60]
                    else:
                        outcome, detail = "false-success-data", repr(got[:40])
                    break
        except socket.timeout:
            outcome, detail = "false-success-hang", f"nothing within {a.wait} s"
        except OSError as e:
            if e.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
                outcome = "false-success-reset"
            elif e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
                outcome = "false-success-unreachable"
            else:
                outcome = "false-success-error-" + errname(e.errno)
            detail = f"after connect(): {errname(e.errno)}"
    out["outcome_ms"] = ms(time.perf_counter() - t0)
    s.close()
    out["outcome"] = outcome
    out["detail"] = detail
    print(json.dumps(out), flush=True)
    return 0


def main():
    p = argparse.ArgumentParser(description="HTTP/1.1 timing client (new, persistent, probe)")
    p.add_argument("mode", choices=["new", "persistent", "probe"])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--mptcp", action="store_true", help="socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP)")
    p.add_argument("--path", default="/")
    p.add_argument("--timeout", type=float, default=10.0, help="per socket operation (new, persistent)")
    p.add_argument("--wait", type=float, default=5.0, help="probe: connect timeout and answer wait (s)")
    a = p.parse_args()
    if a.mode == "new":
        return run_new(a)
    if a.mode == "persistent":
        return run_persistent(a)
    return run_probe(a)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
