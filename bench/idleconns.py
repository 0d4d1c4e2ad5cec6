#!/usr/bin/env python3
"""Many idle TCP (or MPTCP) connections, for the gateway memory figure.

  idleconns.py hold HOST PORT N [--mptcp] [--hold S] [--batch B] [--timeout T]
      Opens N concurrent connections: non-blocking connects, at most B
      (default 200) in progress at a time. Each connection, once connected,
      sends one small request "IDLE\\n" and waits for the server's "OK\\n":
      only then does it count as opened (so a connection some proxy
      accepted locally but could not carry end to end is a failure, not an
      open connection). Then it stays idle (no data either way).
      A connection not open within T s (default 30) of its connect() fails;
      after --deadline D s (default: none) no new connection is started and
      those still in progress fail ("deadline"; never started: "not-started").
      When all are settled it prints one JSON line
        {"opened": k, "failed": f, "seconds": t, "connected": c, "errors": {...}}
      (connected: connect() succeeded; errors: why the others failed), then
      "READY" (flushed), holds them until SIGTERM/SIGINT or --hold S seconds
      (default: until a signal), closes them all and prints
        {"closed": k, "lost": l}   (lost: connections that ended while held).
      With --chatter S each held connection instead sends a 64-byte line
      ("PING <connection> <count>", padded) every S seconds (the connections
      spread evenly over S), and the server echoes it; the last line then
      also gives "pings" (sent), "echoes" (received back intact) and "bad"
      (echoes that differ from what was sent).
  idleconns.py serve PORT [--mptcp] [--host ADDR] [--status FILE]
      Accepts and holds any number of connections (epoll via selectors).
      Answers "OK\\n" to "IDLE\\n" and ignores anything else; closes a
      connection when the peer does. Counts: accepted (total), active (open
      now), confirmed (active connections that sent IDLE). With --status the
      counts are written to FILE as one JSON line whenever they change (at
      most every 0.2 s, atomically via rename); SIGUSR1 prints them. What a
      connection sends after its answer (pings) is echoed back.
Both raise RLIMIT_NOFILE as far as they can (to N + 256 for hold, to the
hard limit or 1 048 576 for serve).
"""
import argparse, errno, json, os, resource, selectors, signal, socket, sys, time

IPPROTO_MPTCP = 262


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    try:  # root may raise the hard limit too (up to fs.nr_open)
        nr_open = int(open("/proc/sys/fs/nr_open").read())
        new = min(max(want, soft), nr_open)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, max(new, hard)))
        return new
    except (OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard


def make_socket(mptcp):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP if mptcp else 0)
    s.setblocking(False)
    return s


class Stop(Exception):
    pass


def hold(a):
    limit = raise_nofile(a.n + 256)
    if limit < a.n + 16:
        print(f"idleconns: RLIMIT_NOFILE {limit} too small for {a.n} connections", file=sys.stderr)
    sel = selectors.DefaultSelector()
    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t0 = time.monotonic()
    started = 0
    pending = {}   # sock -> [state, t_start, buffer]; state "connect" | "answer"
    opened = []
    connected = 0
    errors = {}

    def fail(sock, why):
        errors[why] = errors.get(why, 0) + 1
        try:
            sel.unregister(sock)
        except (KeyError, ValueError):
            pass
        pending.pop(sock, None)
        sock.close()

    while (started < a.n or pending) and not stop["flag"]:
        if a.deadline is not None and time.monotonic() - t0 > a.deadline:
            for s in list(pending):
                fail(s, "deadline")
            if started < a.n:
                errors["not-started"] = a.n - started
                started = a.n
            break
        while started < a.n and len(pending) < a.batch:
            started += 1
            try:
                s = make_socket(a.mptcp)
            except OSError as e:
                k = "socket-" + errno.errorcode.get(e.errno, str(e.errno))
                errors[k] = errors.get(k, 0) + 1
                continue
            rc = s.connect_ex((a.host, a.port))
            if rc not in (0, errno.EINPROGRESS):
                k = errno.errorcode.get(rc, str(rc))
                errors[k] = errors.get(k, 0) + 1
                s.close()
                continue
            pending[s] = ["connect", time.monotonic(), b""]
            sel.register(s, selectors.EVENT_WRITE)
        now = time.monotonic()
        for s, st in list(pending.items()):
            if now - st[1] > a.timeout:
                fail(s, "timeout-" + st[0])
        if not pending:
            continue
        for key, ev in sel.select(timeout=0.2):
            s = key.fileobj
            st = pending.get(s)
            if st is None:
                continue
            if st[0] == "connect":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(s, errno.errorcode.get(err, str(err)))
                    continue
                connected += 1
                try:
                    s.send(b"IDLE\n")
                except OSError as e:
                    fail(s, "send-" + errno.errorcode.get(e.errno, str(e.errno)))
                    continue
                st[0] = "answer"
                sel.modify(s, selectors.EVENT_READ)
            else:
                try:
                    d = s.recv(64)
                except OSError as e:
                    fail(s, "recv-" + errno.errorcode.get(e.errno, str(e.errno)))
                    continue
                if not d:
                    fail(s, "eof-before-answer")
                    continue
                st[2] += d
                if b"\n" in st[2]:
                    if st[2].startswith(b"OK"):
                        sel.unregister(s)
                        pending.pop(s)
                        opened.append(s)
                    else:
                        fail(s, "bad-answer")
    seconds = time.monotonic() - t0
    failed = a.n - len(opened)
    print(json.dumps({"opened": len(opened), "failed": failed, "seconds": round(seconds, 3),
                      "connected": connected, "requested": a.n, "errors": errors,
                      "nofile": limit, "interrupted": stop["flag"]}), flush=True)
    print("READY", flush=True)
    # Idle: watch for connections that end while held (readable = EOF/RST/data).
    # With --chatter: a ping per connection every S seconds, echoes checked.
    for s in opened:
        sel.register(s, selectors.EVENT_READ)
    lost = 0
    pings = echoes = bad = 0
    sent = {}    # sock -> lines sent and not yet echoed
    got = {}     # sock -> bytes received, not yet a whole line
    start = time.monotonic()
    nexts = []   # (due, index)
    if a.chatter:
        for i in range(len(opened)):
            nexts.append(start + a.chatter * i / max(1, len(opened)))
    deadline = None if a.hold is None else time.monotonic() + a.hold
    k = 0
    while not stop["flag"]:
        tmo = 1.0 if not a.chatter else 0.05
        if deadline is not None:
            tmo = min(tmo, deadline - time.monotonic())
            if tmo <= 0:
                break
        if a.chatter:
            now = time.monotonic()
            for i, s in enumerate(opened):
                if nexts[i] is None or nexts[i] > now:
                    continue
                nexts[i] += a.chatter
                line = ("PING %d %d " % (i, k)).encode()
                k += 1
                line = line + b"." * (63 - len(line)) + b"\n"
                try:
                    s.send(line)
                    pings += 1
                    sent.setdefault(s, []).append(line)
                except OSError:
                    nexts[i] = None
        for key, ev in sel.select(timeout=tmo):
            s = key.fileobj
            try:
                d = s.recv(4096)
            except OSError:
                d = b""
            if not d:
                lost += 1
                sel.unregister(s)
                if a.chatter:
                    nexts[opened.index(s)] = None
                continue
            buf = got.get(s, b"") + d
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                want = sent.get(s, [])
                if want and want[0] == line + b"\n":
                    echoes += 1
                    want.pop(0)
                else:
                    bad += 1
            got[s] = buf
    closed = 0
    for s in opened:
        try:
            s.close()
            closed += 1
        except OSError:
            pass
    out = {"closed": closed, "lost": lost}
    if a.chatter:
        out.update({"pings": pings, "echoes": echoes, "bad": bad})
    print(json.dumps(out), flush=True)
    return 0


def serve(a):
    limit = raise_nofile(1 << 20)
    sel = selectors.DefaultSelector()
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP if a.mptcp else 0)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.host, a.port))
    ls.listen(a.backlog)
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ, None)
    counts = {"accepted": 0, "active": 0, "confirmed": 0, "accept_errors": 0, "nofile": limit,
              "mptcp": a.mptcp, "port": a.port}
    conns = {}  # sock -> confirmed?
    stop = {"flag": False}
    dirty = {"flag": True, "last": 0.0}

    def write_status(force=False):
        if not a.status or not (dirty["flag"] or force):
            return
        now = time.monotonic()
        if not force and now - dirty["last"] < 0.2:
            return
        tmp = a.status + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(counts) + "\n")
        os.replace(tmp, a.status)
        dirty["flag"] = False
        dirty["last"] = now

    def on_term(signum, frame):
        stop["flag"] = True

    def on_usr1(signum, frame):
        print(json.dumps(counts), flush=True)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGUSR1, on_usr1)
    print(f"idleconns: serving on {a.host}:{a.port} ({'MPTCP' if a.mptcp else 'TCP'}), nofile {limit}", flush=True)
    write_status(force=True)
    while not stop["flag"]:
        try:
            events = sel.select(timeout=0.2)
        except InterruptedError:
            continue
        for key, ev in events:
            if key.data is None:
                for _ in range(256):
                    try:
                        c, _addr = ls.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError as e:
                        counts["accept_errors"] += 1
                        if e.errno in (errno.EMFILE, errno.ENFILE):
                            print(f"idleconns: accept: {e}", file=sys.stderr, flush=True)
                        break
                    c.setblocking(False)
                    conns[c] = False
                    sel.register(c, selectors.EVENT_READ, 1)
                    counts["accepted"] += 1
                    counts["active"] += 1
                    dirty["flag"] = True
            else:
                c = key.fileobj
                try:
                    d = c.recv(256)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    d = b""
                if not d:
                    sel.unregister(c)
                    if conns.pop(c, False):
                        counts["confirmed"] -= 1
                    counts["active"] -= 1
                    c.close()
                    dirty["flag"] = True
                elif conns[c]:
                    try:  # after the answer: pings, echoed as they come
                        c.send(d)
                    except OSError:
                        pass
                elif b"IDLE" in d and not conns[c]:
                    conns[c] = True
                    counts["confirmed"] += 1
                    dirty["flag"] = True
                    try:
                        c.send(b"OK\n")
                    except OSError:
                        pass
        write_status()
    write_status(force=True)
    for c in conns:
        c.close()
    ls.close()
    return 0


def main():
    p = argparse.ArgumentParser(description="hold many idle connections / a server holding them")
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hold")
    h.add_argument("host")
    h.add_argument("port", type=int)
    h.add_argument("n", type=int)
    h.add_argument("--mptcp", action="store_true")
    h.add_argument("--hold", type=float, default=None, help="seconds to hold (default: until SIGTERM)")
    h.add_argument("--batch", type=int, default=200, help="connections in progress at a time")
    h.add_argument("--timeout", type=float, default=30.0, help="per connection, connect + answer (s)")
    h.add_argument("--deadline", type=float, default=None, help="seconds for opening them all")
    h.add_argument("--chatter", type=float, default=None, help="a 64-byte ping per connection every S seconds while held")
    s = sub.add_parser("serve")
    s.add_argument("port", type=int)
    s.add_argument("--mptcp", action="store_true")
    s.add_argument("--host", default="0.0.0.0")
    s.add_argument("--status", default=None)
    s.add_argument("--backlog", type=int, default=4096)
    a = p.parse_args()
    return hold(a) if a.cmd == "hold" else serve(a)


if __name__ == "__main__":
    sys.exit(main())
