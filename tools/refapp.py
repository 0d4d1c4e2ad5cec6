#!/usr/bin/env python3
"""refapp.py - tiny client/server used to record reference MPTCP captures.

Sockets are socket(AF_INET|AF_INET6, SOCK_STREAM, 262) (IPPROTO_MPTCP) unless
--tcp is given (protocol 0, plain TCP).

Server protocol (one request line per request, several requests per connection):
  PUT n\\n   + n bytes -> reply "OK <sha256hex of the n bytes>\\n", keep reading
  GET n\\n             -> send pattern(n), close
  DATA n\\n            -> send pattern(n), keep reading (extension for phased runs)
  ABORT n\\n           -> read only the line, sleep 0.5 s, close with unread data
                        (Linux then sends MP_FASTCLOSE + MP_TCPRST)
  EOF                 -> close
pattern(n): byte i = i mod 251.

Client: --ops is a comma separated list executed in order:
  wait-subflows:N   wait until the connection has N subflows in total, i.e.
                    1 + mptcpi_subflows >= N (mptcpi_subflows counts only the
                    additional subflows) and, where MPTCP_TCPINFO works, N
                    subflows in TCP_ESTABLISHED; bounded by --timeout
  pause:NAME        create SYNC/NAME.ready and wait for SYNC/NAME.go (--sync-dir),
                    bounded by --pause-timeout; lets a script run
                    `ip mptcp endpoint ...` mid-connection
  sleep:S           sleep S seconds
  PUT:n  DATA:n  GET:n  ABORT:n   the requests above. A PUT that is the last op
                    half-closes (SHUT_WR) right after the payload.
After the ops the client half-closes (if not done yet), reads to EOF and exits.
Every blocking call has a timeout; exit status != 0 on any failure/timeout.
"""
import argparse
import ctypes
import hashlib
import os
import socket
import struct
import sys
import time

IPPROTO_MPTCP = 262
SOL_MPTCP = 284
MPTCP_INFO = 1
MPTCP_TCPINFO = 2
TCP_ESTABLISHED = 1


def log(role, msg):
    print(f"[{role} {time.monotonic():.3f}] {msg}", flush=True)


def pattern(n):
    base = bytes(range(251))
    reps = n // 251 + 1
    return (base * reps)[:n]


def mk_socket(family, tcp):
    fam = socket.AF_INET6 if family == 6 else socket.AF_INET
    return socket.socket(fam, socket.SOCK_STREAM, 0 if tcp else IPPROTO_MPTCP)


def mptcp_info(sock):
    """Return dict from struct mptcp_info (linux/mptcp.h) or None."""
    try:
        raw = sock.getsockopt(SOL_MPTCP, MPTCP_INFO, 64)
    except OSError:
        return None
    if len(raw) < 6:
        return None
    names = ["subflows", "add_addr_signal", "add_addr_accepted", "subflows_max",
             "add_addr_signal_max", "add_addr_accepted_max"]
    d = dict(zip(names, raw[:6]))
    if len(raw) >= 16:
        d["flags"], d["token"] = struct.unpack_from("=II", raw, 8)
        d["token"] = f"0x{d['token']:08x}"
    if len(raw) >= 43:
        d["csum_enabled"] = raw[42]
    return d


_libc = None


def subflow_states(sock, max_sub=8):
    """TCP states of all subflows via MPTCP_TCPINFO, or None if unsupported.

    struct mptcp_subflow_data { u32 size_subflow_data; u32 num_subflows;
    u32 size_kernel; u32 size_user; } is an in/out header, so the buffer has to
    be prepared (python's getsockopt(buflen) cannot), hence ctypes."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        user = 8  # we only need tcpi_state (first byte of struct tcp_info)
        hdr = 16
        size = hdr + user * max_sub
        buf = ctypes.create_string_buffer(size)
        struct.pack_into("=IIII", buf, 0, hdr, 0, 0, user)
        optlen = ctypes.c_uint32(size)
        rc = _libc.getsockopt(sock.fileno(), SOL_MPTCP, MPTCP_TCPINFO, buf,
                              ctypes.byref(optlen))
        if rc != 0:
            return None
        _, num, _, size_user = struct.unpack_from("=IIII", buf, 0)
        n = min(num, max_sub)
        return [buf.raw[hdr + i * size_user] for i in range(n)]
    except Exception:
        return None


def recv_exact(sock, n):
    chunks = []
    got = 0
    while got < n:
        b = sock.recv(min(65536, n - got))
        if not b:
            raise EOFError(f"EOF after {got}/{n} bytes")
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def recv_line(sock, limit=256):
    line = b""
    while not line.endswith(b"\n"):
        b = sock.recv(1)
        if not b:
            return line if line else None
        line += b
        if len(line) > limit:
            raise ValueError("request line too long")
    return line


def recv_all(sock):
    chunks = []
    while True:
        b = sock.recv(65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


# ---------------------------------------------------------------- server

def serve_conn(conn, peer, args):
    R = "server"
    log(R, f"accepted from {peer}; mptcp_info={mptcp_info(conn)}")
    while True:
        line = recv_line(conn)
        if line is None:
            log(R, "EOF from client, closing")
            break
        req = line.decode("ascii", "replace").strip()
        log(R, f"request {req!r}")
        try:
            verb, n = req.split()
            n = int(n)
        except ValueError:
            log(R, "bad request, closing")
            break
        if verb == "PUT":
            data = recv_exact(conn, n)
            h = hashlib.sha256(data).hexdigest()
            log(R, f"PUT {n} bytes sha256 {h}")
            conn.sendall(f"OK {h}\n".encode())
        elif verb == "GET":
            conn.sendall(pattern(n))
            log(R, f"GET sent {n} bytes, closing")
            break
        elif verb == "DATA":
            conn.sendall(pattern(n))
            log(R, f"DATA sent {n} bytes")
        elif verb == "ABORT":
            time.sleep(0.5)
            log(R, "ABORT: closing with unread data")
            break
        else:
            log(R, f"unknown verb {verb!r}, closing")
            break
    log(R, f"mptcp_info at close={mptcp_info(conn)}")
    conn.close()


def server(args):
    R = "server"
    s = mk_socket(args.family, args.tcp)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    bind = args.bind or ("::" if args.family == 6 else "0.0.0.0")
    s.bind((bind, args.port))
    s.listen(8)
    s.settimeout(args.timeout)
    log(R, f"listening {'tcp' if args.tcp else 'mptcp'} on [{bind}]:{args.port}")
    if args.ready_file:
        open(args.ready_file, "w").close()
    for _ in range(args.count):
        try:
            conn, peer = s.accept()
        except socket.timeout:
            log(R, "accept timeout")
            return 2
        conn.settimeout(args.timeout)
        try:
            serve_conn(conn, peer, args)
        except Exception as e:  # keep going: the capture is what matters
            log(R, f"connection error: {e!r}")
            conn.close()
    s.close()
    return 0


# ---------------------------------------------------------------- client

def wait_subflows(sock, n, timeout):
    R = "client"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = mptcp_info(sock)
        extra = info["subflows"] if info else 0
        states = subflow_states(sock)
        est = None if states is None else sum(1 for st in states if st == TCP_ESTABLISHED)
        if 1 + extra >= n and (est is None or est >= n):
            time.sleep(0.1)  # let the MP_JOIN 4th ACK go out
            log(R, f"{n} subflows reached (mptcpi_subflows={extra}, states={states})")
            return True
        time.sleep(0.02)
    log(R, f"timeout waiting for {n} subflows (info={mptcp_info(sock)}, "
           f"states={subflow_states(sock)})")
    return False


def pause(name, args):
    R = "client"
    if not args.sync_dir:
        log(R, f"pause {name}: no --sync-dir, skipping")
        return True
    ready = os.path.join(args.sync_dir, name + ".ready")
    go = os.path.join(args.sync_dir, name + ".go")
    open(ready, "w").close()
    log(R, f"pause {name}: waiting for {go}")
    deadline = time.monotonic() + args.pause_timeout
    while time.monotonic() < deadline:
        if os.path.exists(go):
            log(R, f"pause {name}: continuing")
            return True
        time.sleep(0.02)
    log(R, f"pause {name}: timeout")
    return False


def client(args):
    R = "client"
    s = mk_socket(args.family, args.tcp)
    s.settimeout(args.timeout)
    if args.bind:
        s.bind((args.bind, 0))
    s.connect((args.connect, args.port))
    log(R, f"connected {s.getsockname()} -> {s.getpeername()}; mptcp_info={mptcp_info(s)}")
    ops = [o for o in args.ops.split(",") if o] if args.ops else []
    shut = False
    ok = True
    closed_by_peer = False
    for i, op in enumerate(ops):
        name, _, val = op.partition(":")
        last = i == len(ops) - 1
        if name == "wait-subflows":
            ok &= wait_subflows(s, int(val), args.timeout)
        elif name == "pause":
            ok &= pause(val, args)
        elif name == "sleep":
            time.sleep(float(val))
        elif name == "PUT":
            n = int(val)
            data = pattern(n)
            h = hashlib.sha256(data).hexdigest()
            s.sendall(f"PUT {n}\n".encode() + data)
            if last:
                s.shutdown(socket.SHUT_WR)
                shut = True
            reply = recv_line(s)
            good = reply == f"OK {h}\n".encode()
            log(R, f"PUT {n} sha256 {h} reply {reply!r} {'match' if good else 'MISMATCH'}")
            ok &= good
        elif name == "DATA":
            n = int(val)
            s.sendall(f"DATA {n}\n".encode())
            d = recv_exact(s, n)
            good = d == pattern(n)
            log(R, f"DATA {n} received, pattern {'ok' if good else 'MISMATCH'}")
            ok &= good
        elif name == "GET":
            n = int(val)
            s.sendall(f"GET {n}\n".encode())
            d = recv_all(s)
            closed_by_peer = True
            good = d == pattern(n)
            log(R, f"GET {n}: got {len(d)} bytes sha256 {hashlib.sha256(d).hexdigest()} "
                   f"pattern {'ok' if good else 'MISMATCH'}")
            ok &= good
        elif name == "ABORT":
            n = int(val)
            try:
                s.sendall(f"ABORT {n}\n".encode() + pattern(n))
                d = recv_all(s)
                log(R, f"ABORT: peer closed without reset ({len(d)} bytes)")
            except ConnectionResetError as e:
                log(R, f"ABORT: got expected reset: {e!r}")
            closed_by_peer = True
            shut = True
        else:
            log(R, f"unknown op {op!r}")
            ok = False
        if not ok:
            break
    log(R, f"mptcp_info before close={mptcp_info(s)} states={subflow_states(s)}")
    try:
        if not shut:
            s.shutdown(socket.SHUT_WR)
        if not closed_by_peer:
            rest = recv_all(s)
            if rest:
                log(R, f"unexpected {len(rest)} trailing bytes")
    except OSError as e:
        log(R, f"close: {e!r}")
    s.close()
    log(R, "done" if ok else "FAILED")
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    for m in ("server", "client"):
        q = sub.add_parser(m)
        q.add_argument("--tcp", action="store_true", help="plain TCP (proto 0) instead of MPTCP")
        q.add_argument("-6", dest="family", action="store_const", const=6, default=4)
        q.add_argument("--port", type=int, default=8080)
        q.add_argument("--bind", default=None)
        q.add_argument("--timeout", type=float, default=20.0,
                       help="bound for every blocking operation (s)")
    sub.choices["server"].add_argument("--count", type=int, default=1,
                                       help="connections to serve before exiting")
    sub.choices["server"].add_argument("--ready-file", default=None,
                                       help="touch this file once listening")
    c = sub.choices["client"]
    c.add_argument("--connect", required=True)
    c.add_argument("--ops", default="PUT:688")
    c.add_argument("--sync-dir", default=None)
    c.add_argument("--pause-timeout", type=float, default=15.0)
    args = p.parse_args()
    try:
        return server(args) if args.mode == "server" else client(args)
    except Exception as e:
        log(args.mode, f"error: {e!r}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
