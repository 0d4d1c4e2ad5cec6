#!/usr/bin/env python3
"""Transfer test application for the netns integration tests.

server: python3 xfer.py serve [--mptcp] [--host ADDR] --port P [--log FILE] [--trace-dir DIR]
  Accepts connections (IPPROTO_MPTCP=262 with --mptcp, else plain TCP). Per
  connection it reads one line:
    UP n          -> reads n bytes, answers "OK <sha256> <n>\n"
    UPEOF         -> reads until the client's FIN, answers "OK <sha256> <count>\n"
    DOWN n seed   -> sends n bytes of the seeded stream, then closes
    DOWNFOR ms seed -> sends the seeded stream for ms milliseconds, then closes
    ECHO          -> answers "PEER <addr> <port>\n" (what the server sees)
  With --log, each accepted peer address is appended to the file. With
  --trace-dir, every upload writes DIR/up-<peer addr>-<peer port>.trace (the
  bytes it received, per 100 ms; format below).

client: python3 xfer.py up|down|echo HOST PORT [n] [seed] [--count K] [--timeout S]
                        [--duration S] [--trace FILE] [--mptcp] [--bind ADDR]
  Plain TCP (IPPROTO_MPTCP with --mptcp; --bind sets the source address).
  Verifies: for up, the server's sha256 equals the sent data's; for down, the
  received bytes' sha256 equals the expected stream's. Prints one JSON line of
  results and exits 0 only when every check passed.
  --duration S: up/down for S seconds instead of n bytes (UPEOF / DOWNFOR);
    the sha256 check then covers every byte moved, compared with the same
    length of the seeded stream ("bytes" in the JSON is the count moved).
  --trace FILE: one line per 100 ms interval:
    "<unix time> <t since connect, s> <sent> <acked> <received>"
    sent = bytes the application handed to the socket in the interval,
    acked = bytes the peer acknowledged (TCP_INFO tcpi_bytes_acked; -1 where
    the socket gives none, e.g. MPTCP), received = bytes read in the interval.
  With any of these options the JSON line also gives "local" = [addr, port]
  of the client's socket (an upload's server trace file is named after it).
"""
import hashlib, json, os, random, socket, struct, sys, threading, time

IPPROTO_MPTCP = 262
CHUNK = 1 << 16
TRACE_INTERVAL = 0.1

def stream(n, seed):
    r = random.Random(seed)
    left = n
    while left > 0:
        k = min(left, 1 << 20)
        yield r.randbytes(k)
        left -= k

def endless(seed):
    """The seeded stream without an end, in whole 1 MiB chunks: any length of
    it is a prefix of any longer one (stream(n) differs in its last bytes
    when n is not a multiple of 1 MiB)."""
    r = random.Random(seed)
    while True:
        yield r.randbytes(1 << 20)

def endless_sha(n, seed):
    h = hashlib.sha256(); left = n
    for part in endless(seed):
        if left <= 0:
            break
        h.update(part[:left]); left -= len(part)
    return h.hexdigest()

def bytes_acked(sock):
    """tcpi_bytes_acked (struct tcp_info offset 120), or -1."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
        if len(info) >= 128:
            return struct.unpack_from("=Q", info, 120)[0]
    except OSError:
        pass
    return -1

class Tracer:
    """Samples counters every 100 ms in a thread and writes one line per
    interval: unix time, seconds since start, sent, acked, received bytes."""
    def __init__(self, path, sock=None):
        self.path, self.sock = path, sock
        self.sent = 0; self.received = 0
        self.stop_ev = threading.Event()
        self.t0 = time.monotonic()
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()
    def run(self):
        with open(self.path, "w") as f:
            f.write("# unix_time t_s sent acked received (per %g s interval)\n" % TRACE_INTERVAL)
            last_s = last_r = 0
            last_a = bytes_acked(self.sock) if self.sock else -1
            k = 0
            while True:
                k += 1
                done = self.stop_ev.wait(max(0.0, self.t0 + k * TRACE_INTERVAL - time.monotonic()))
                s, r = self.sent, self.received
                a = bytes_acked(self.sock) if self.sock else -1
                f.write("%.3f %.3f %d %d %d\n" % (time.time(), time.monotonic() - self.t0, s - last_s,
                        (a - last_a) if a >= 0 and last_a >= 0 else -1, r - last_r))
                last_s, last_r, last_a = s, r, a
                if done:
                    break
            f.flush()
    def stop(self):
        self.stop_ev.set(); self.th.join()

class NoTrace:
    sent = 0; received = 0
    def stop(self):
        pass

def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET

def recv_line(s):
    buf = b""
    while not buf.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            break
        buf += b
    return buf.decode().strip()


def recv_to_eof(s, tr):
    """Reads until the peer's FIN: (sha256 object, byte count); tr.received follows."""
    h = hashlib.sha256(); got = 0
    while True:
        b = s.recv(CHUNK)
        if not b:
            break
        h.update(b); got += len(b); tr.received = got
    return h, got

def plain(addr):
    return addr[7:] if addr.startswith("::ffff:") else addr

def handle(conn, peer, logf, trace_dir=None):
    peer = (plain(peer[0]), peer[1])
    try:
        if logf:
            with open(logf, "a") as f:
                f.write("%s %d\n" % (peer[0], peer[1]))
        line = recv_line(conn).split()
        if not line:
            return
        if line[0] == "UP":
            n = int(line[1]); h = hashlib.sha256(); got = 0
            while got < n:
                b = conn.recv(min(CHUNK, n - got))
                if not b:
                    break
                h.update(b); got += len(b)
            conn.sendall(("OK %s %d\n" % (h.hexdigest(), got)).encode())
        elif line[0] == "UPEOF":
            tr = Tracer(os.path.join(trace_dir, "up-%s-%d.trace" % peer)) if trace_dir else NoTrace()
            h, got = recv_to_eof(conn, tr)
            tr.stop()
            conn.sendall(("OK %s %d\n" % (h.hexdigest(), got)).encode())
        elif line[0] == "DOWNFOR":
            end = time.monotonic() + int(line[1]) / 1000.0
            for part in endless(int(line[2])):
                for i in range(0, len(part), CHUNK):
                    if time.monotonic() >= end:
                        break
                    conn.sendall(part[i:i + CHUNK])
                if time.monotonic() >= end:
                    break
        elif line[0] == "DOWN":
            for part in stream(int(line[1]), int(line[2])):
                conn.sendall(part)
        elif line[0] == "ECHO":
            conn.sendall(("PEER %s %d\n" % (peer[0], peer[1])).encode())
        conn.shutdown(socket.SHUT_WR)
        # Wait for the client's close so our FIN is not followed by a RST.
        conn.settimeout(30)
        while conn.recv(CHUNK):
            pass
    except OSError:
        pass
    finally:
        conn.close()

def serve(args):
    mptcp = "--mptcp" in args
    host = args[args.index("--host") + 1] if "--host" in args else "::"
    port = int(args[args.index("--port") + 1])
    logf = args[args.index("--log") + 1] if "--log" in args else None
    trace_dir = args[args.index("--trace-dir") + 1] if "--trace-dir" in args else None
    fam = family(host)
    s = socket.socket(fam, socket.SOCK_STREAM, IPPROTO_MPTCP if mptcp else 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind((host, port))
    s.listen(256)
    print("listening", flush=True)
    while True:
        c, peer = s.accept()
        threading.Thread(target=handle, args=(c, peer, logf, trace_dir), daemon=True).start()

def client(args):
    opts = [a for a in args]
    timeout = float(opts[opts.index("--timeout") + 1]) if "--timeout" in opts else 120
    count = int(opts[opts.index("--count") + 1]) if "--count" in opts else 1
    duration = float(opts[opts.index("--duration") + 1]) if "--duration" in opts else None
    trace = opts[opts.index("--trace") + 1] if "--trace" in opts else None
    bind = opts[opts.index("--bind") + 1] if "--bind" in opts else None
    mptcp = "--mptcp" in opts
    valued = ("--timeout", "--count", "--duration", "--trace", "--bind")
    pos = [a for i, a in enumerate(opts) if not a.startswith("--") and (i == 0 or not opts[i - 1] in valued)]
    mode, host, port = pos[0], pos[1], int(pos[2])
    n = int(pos[3]) if len(pos) > 3 else 0
    seed = int(pos[4]) if len(pos) > 4 else 1
    results = []
    ok_all = True
    t_start = time.time()
    for i in range(count):
        res = {"mode": mode, "bytes": n}
        t0 = time.time()
        tr = NoTrace()
        try:
            if mptcp or bind:
                s = socket.socket(family(host), socket.SOCK_STREAM, IPPROTO_MPTCP if mptcp else 0)
                s.settimeout(timeout)
                if bind:
                    s.bind((bind, 0))
                s.connect((host, port))
            else:
                s = socket.create_connection((host, port), timeout=timeout)
            res["connect_ms"] = round((time.time() - t0) * 1000, 3)
            if mptcp or bind or trace or duration is not None:
                res["local"] = list(s.getsockname()[:2])
            tr = Tracer(trace, s) if trace else NoTrace()
            if duration is not None and mode == "up":
                s.sendall(b"UPEOF\n")
                h = hashlib.sha256(); sent = 0
                end = time.monotonic() + duration
                for part in endless(seed):
                    for k in range(0, len(part), CHUNK):
                        if time.monotonic() >= end:
                            break
                        piece = part[k:k + CHUNK]
                        s.sendall(piece); h.update(piece); sent += len(piece); tr.sent = sent
                    if time.monotonic() >= end:
                        break
                s.shutdown(socket.SHUT_WR)
                ans = recv_line(s).split()
                tr.stop()
                n = sent
                res["bytes"] = sent
                res["sha256"] = h.hexdigest()
                res["server_sha256"] = ans[1] if len(ans) > 1 else None
                res["ok"] = len(ans) == 3 and ans[0] == "OK" and ans[1] == h.hexdigest() and int(ans[2]) == sent
            elif duration is not None and mode == "down":
                s.sendall(("DOWNFOR %d %d\n" % (int(duration * 1000), seed)).encode())
                h, got = recv_to_eof(s, tr)
                tr.stop()
                n = got
                e = endless_sha(got, seed)
                res.update({"bytes": got, "received": got, "sha256": h.hexdigest(), "expected_sha256": e})
                res["ok"] = got > 0 and h.hexdigest() == e
            elif mode == "up":
                s.sendall(("UP %d\n" % n).encode())
                h = hashlib.sha256()
                for part in stream(n, seed):
                    if trace:  # smaller writes, so the trace's "sent" is fine-grained
                        for k in range(0, len(part), CHUNK):
                            s.sendall(part[k:k + CHUNK]); tr.sent += min(CHUNK, len(part) - k)
                    else:
                        s.sendall(part)
                    h.update(part)
                ans = recv_line(s).split()
                res["sha256"] = h.hexdigest()
                res["server_sha256"] = ans[1] if len(ans) > 1 else None
                res["ok"] = len(ans) == 3 and ans[0] == "OK" and ans[1] == h.hexdigest() and int(ans[2]) == n
            elif mode == "down":
                s.sendall(("DOWN %d %d\n" % (n, seed)).encode())
                h, got = recv_to_eof(s, tr)
                e = hashlib.sha256()
                for part in stream(n, seed):
                    e.update(part)
                res.update({"received": got, "sha256": h.hexdigest(), "expected_sha256": e.hexdigest()})
                res["ok"] = got == n and h.hexdigest() == e.hexdigest()
            elif mode == "echo":
                s.sendall(b"ECHO\n")
                ans = recv_line(s).split()
                me = s.getsockname()
                res.update({"server_saw": ans[1:] if ans else None, "client": [me[0], me[1]]})
                res["ok"] = len(ans) == 3 and ans[1] == me[0] and int(ans[2]) == me[1]
            tr.stop()
            s.close()
        except OSError as ex:
            tr.stop()
            res["ok"] = False
            res["error"] = str(ex)
        res["seconds"] = round(time.time() - t0, 3)
        if n and res.get("ok"):
            res["mbit_s"] = round(n * 8 / 1e6 / max(res["seconds"], 1e-6), 1)
        ok_all = ok_all and res["ok"]
        results.append(res)
    if count == 1:
        print(json.dumps(results[0]))
    else:
        print(json.dumps({"mode": mode, "count": count, "ok": ok_all,
                          "completed": sum(1 for r in results if r["ok"]),
                          "seconds": round(time.time() - t_start, 3),
                          "failures": [r for r in results if not r["ok"]][:5]}))
    sys.exit(0 if ok_all else 1)

if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__); sys.exit(2)
    if sys.argv[1] == "serve":
        serve(sys.argv[2:])
    else:
        client(sys.argv[1:])
