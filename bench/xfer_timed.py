#!/usr/bin/env python3
"""netns/xfer.py plus a timed upload that needs no TCP half-close.

Why: xfer.py's timed upload (UPEOF) ends with the client's FIN (shutdown
SHUT_WR) and then waits for the server's answer. A proxy that does not pass
half-closes on closes both sides at the client's FIN — shadowsocks-libev does
(ss-redir/ss-server: recv() == 0 -> close_and_free_remote + close_and_free_server)
— so the answer never arrives and every proxied timed upload "fails".

server: python3 bench/xfer_timed.py serve [xfer.py serve options]
  Serves xfer.py's protocol unchanged (the same code: UP, UPEOF, DOWN, DOWNFOR,
  ECHO, --mptcp, --log, --trace-dir) plus
    UPFOR ms      -> reads for ms milliseconds (from the command's arrival),
                     answers "OK <sha256> <count>\n" for exactly the bytes it
                     read, then reads and discards until the client closes.
                     With --trace-dir the upload's 100 ms trace is written as
                     for UPEOF (DIR/up-<peer addr>-<peer port>.trace).
client: python3 bench/xfer_timed.py upfor HOST PORT SEED --duration S [--timeout T]
                                          [--mptcp] [--trace FILE]
  Sends the seeded endless stream (xfer.py's, in 1 MiB chunks) until the
  server's answer arrives, then closes; ok when the server's sha256 equals
  that of the first <count> bytes of the stream. One JSON line like xfer.py's
  ("bytes" = count, "seconds" = connect to the answer, "method": "upfor").
  Any other mode is passed to xfer.py's client unchanged.
"""
import hashlib, json, os, socket, sys, threading, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "netns"))
import xfer  # noqa: E402
_XFER_HANDLE = xfer.handle


class Pushback:
    """A socket whose first recv()s return bytes already read (the command line)."""
    def __init__(self, sock, data):
        self._s, self._buf = sock, data

    def recv(self, n, *flags):
        if self._buf:
            b, self._buf = self._buf[:n], self._buf[n:]
            return b
        return self._s.recv(n, *flags)

    def __getattr__(self, name):
        return getattr(self._s, name)


def handle(conn, peer, logf, trace_dir=None):
    try:
        line = b""
        while not line.endswith(b"\n") and len(line) < 256:
            b = conn.recv(1)
            if not b:
                break
            line += b
    except OSError:
        conn.close(); return
    words = line.split()
    if not words or words[0] != b"UPFOR":
        return _XFER_HANDLE(Pushback(conn, line), peer, logf, trace_dir)
    peer = (xfer.plain(peer[0]), peer[1])
    try:
        if logf:
            with open(logf, "a") as f:
                f.write("%s %d\n" % (peer[0], peer[1]))
        end = time.monotonic() + int(words[1]) / 1000.0
        tr = xfer.Tracer(os.path.join(trace_dir, "up-%s-%d.trace" % peer)) if trace_dir else xfer.NoTrace()
        h = hashlib.sha256(); got = 0
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            conn.settimeout(left)
            try:
                b = conn.recv(xfer.CHUNK)
            except socket.timeout:
                break
            if not b:
                break
            h.update(b); got += len(b); tr.received = got
        tr.stop()
        conn.settimeout(30)
        conn.sendall(("OK %s %d\n" % (h.hexdigest(), got)).encode())
        while conn.recv(xfer.CHUNK):
            pass
    except OSError:
        pass
    finally:
        conn.close()


def upfor(args):
    def opt(name, default=None):
        return args[args.index(name) + 1] if name in args else default
    timeout = float(opt("--timeout", 120)); duration = float(opt("--duration", 10))
    trace = opt("--trace"); mptcp = "--mptcp" in args
    valued = ("--timeout", "--duration", "--trace")
    pos = [a for i, a in enumerate(args) if not a.startswith("--") and (i == 0 or args[i - 1] not in valued)]
    host, port = pos[0], int(pos[1]); seed = int(pos[2]) if len(pos) > 2 else 1
    res = {"mode": "up", "method": "upfor", "bytes": 0}
    t0 = time.time(); tr = xfer.NoTrace()
    try:
        s = socket.socket(xfer.family(host), socket.SOCK_STREAM, xfer.IPPROTO_MPTCP if mptcp else 0)
        s.settimeout(timeout)
        s.connect((host, port))
        res["connect_ms"] = round((time.time() - t0) * 1000, 3)
        res["local"] = list(s.getsockname()[:2])
        tr = xfer.Tracer(trace, s) if trace else xfer.NoTrace()
        answer = []
        def reader():
            try:
                answer.append(xfer.recv_line(s))
            except OSError as ex:
                answer.append("ERR %s" % ex)
        s.sendall(b"UPFOR %d\n" % int(duration * 1000))
        th = threading.Thread(target=reader, daemon=True); th.start()
        sent = 0
        try:
            for part in xfer.endless(seed):
                for k in range(0, len(part), xfer.CHUNK):
                    if answer:
                        break
                    s.sendall(part[k:k + xfer.CHUNK]); sent += xfer.CHUNK; tr.sent = sent
                if answer:
                    break
        except OSError:
            pass  # the server may close while we still send; its answer decides
        th.join(timeout)
        res["seconds"] = round(time.time() - t0, 3)
        tr.stop()
        s.close()
        ans = (answer[0] if answer else "").split()
        if len(ans) == 3 and ans[0] == "OK":
            n = int(ans[2]); e = xfer.endless_sha(n, seed)
            res.update({"bytes": n, "sent": sent, "sha256": e, "server_sha256": ans[1]})
            res["ok"] = n > 0 and ans[1] == e
        else:
            res.update({"ok": False, "error": "no answer: %r" % (answer[0] if answer else None)})
    except OSError as ex:
        tr.stop()
        res.update({"ok": False, "error": str(ex), "seconds": round(time.time() - t0, 3)})
    if res.get("ok"):
        res["mbit_s"] = round(res["bytes"] * 8 / 1e6 / max(res["seconds"], 1e-6), 1)
    print(json.dumps(res))
    sys.exit(0 if res["ok"] else 1)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__); sys.exit(2)
    if sys.argv[1] == "serve":
        xfer.handle = handle  # xfer.serve's threads call it; it delegates to _XFER_HANDLE
        xfer.serve(sys.argv[2:])
    elif sys.argv[1] == "upfor":
        upfor(sys.argv[2:])
    else:
        xfer.client(sys.argv[1:])
