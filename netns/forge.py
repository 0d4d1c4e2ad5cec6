#!/usr/bin/env python3
"""Forged segments into a live MPTCP subflow, for the netns injection tests
(netns/inject.sh). Python 3 standard library only (no scapy).

Run in the namespace of the MPTCP end whose address it spoofs (the kernel
server S): it first watches that end's own packets for a moment (AF_PACKET,
every interface, both directions), so it knows the subflow's 4-tuple and its
current numbers, then sends ONE forged segment from that end's address with
a raw socket. The forged segment leaves by the same route and queue as the
server's own packets, so it reaches the gateway right behind the last one the
server sent. When the subflow asked for is not seen, it watches again (200 ms
at a time) for up to --wait-ms.

  python3 forge.py KIND --port 5002 --client 10.41.1.1 [--subflow initial|join]
                        [--sniff-ms 200] [--wait-ms 3000] [--offset N]

KIND (what is sent; SND.NXT = the server's next sequence number on the
subflow, seen on the wire; ACK, window and timestamps are the server's last):
  rst-out     RST|ACK at SND.NXT + 2^30 (outside any window)
  rst-in      RST|ACK at SND.NXT + OFFSET (default 1000: in the window, not exact)
  fastclose   ACK with MP_FASTCLOSE and a random key (not the receiver's)
  remove-addr ACK with REMOVE_ADDR, address id OFFSET (default 0)
  datafin     ACK with DSS: DATA_ACK (the server's last), DATA_FIN alone at
              the server's next DSN + 2^40 (64-bit DSN, subflow seq 0, length 1);
              the next DSN: the end of the server's highest mapping, or the
              gateway's 8-byte DATA_ACK to it when that is further (an upload)
  dataack     ACK with DSS: DATA_ACK = the server's last + 2^40 (8 bytes)
  infinite    ACK with DSS: DATA_ACK, mapping DSN = the DSN of SND.NXT
              (+ OFFSET, default 0), subflow seq = SND.NXT's relative
              sequence number, data-level length 0 (an infinite mapping)

The MPTCP options are built by hand (RFC 8684 §3): kind 30, length, subtype
in the high nibble of the third byte. The TCP checksum is computed; the
kernel fills in the IP header's. Prints one JSON line: what was seen and
what was sent. Exit status 0 when a segment was sent, 2 when no live
subflow was seen.
"""
import json, os, socket, struct, sys, time
from collections import Counter

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def parse_options(b):
    """TCP options -> dict: ts=(val, ecr), dss={...}."""
    out = {}
    i = 0
    while i < len(b):
        kind = b[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(b):
            break
        ln = b[i + 1]
        if ln < 2 or i + ln > len(b):
            break
        body = b[i + 2:i + ln]
        if kind == 8 and ln == 10:
            out["ts"] = struct.unpack("!II", body)
        elif kind == 30 and len(body) >= 2 and body[0] >> 4 == 2:  # DSS
            flags = body[1]
            d = {"len": ln, "flags": flags}
            j = 2
            if flags & 0x01:  # A: DATA_ACK present
                if flags & 0x02:
                    d["ack"], d["ack8"] = struct.unpack_from("!Q", body, j)[0], True; j += 8
                else:
                    d["ack"], d["ack8"] = struct.unpack_from("!I", body, j)[0], False; j += 4
            if flags & 0x04:  # M: mapping present
                if flags & 0x08:
                    d["dsn"], d["dsn8"] = struct.unpack_from("!Q", body, j)[0], True; j += 8
                else:
                    d["dsn"], d["dsn8"] = struct.unpack_from("!I", body, j)[0], False; j += 4
                d["ssn"], d["dlen"] = struct.unpack_from("!IH", body, j); j += 6
                d["csum"] = len(body) >= j + 2
            d["fin"] = bool(flags & 0x10)
            out["dss"] = d
        i += ln
    return out


class Flow:
    """What was seen of one subflow, from the server's side."""
    def __init__(self):
        self.snd_nxt = None      # server -> peer: highest seq + len (+FIN)
        self.ack = None          # the server's last ACK number
        self.win = 0
        self.ts = None
        self.data_ack = None     # the server's last DATA_ACK (64-bit when sent so)
        self.data_ack8 = False
        self.dsn_end = None      # the server's next DSN (end of its highest mapping)
        self.last_map = None     # (dsn, ssn, dlen, seq of the packet)
        self.isn = Counter()     # seq - ssn of data packets (the subflow's ISN)
        self.dss_csum = False
        self.peer_data_ack = None  # the gateway's DATA_ACK to the server (64-bit: 8 bytes)
        self.pkts_out = 0
        self.pkts_in = 0
        self.bytes_out = 0
        self.last_seen = 0.0


def after(a, b):  # a after b, modulo 2^32
    return ((a - b) & MASK32) != 0 and ((a - b) & MASK32) < (1 << 31)


def sniff(ms, port):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    flows = {}
    end = time.monotonic() + ms / 1000.0
    buf = bytearray(262144)
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            n, addr = s.recvfrom_into(buf)
        except socket.timeout:
            break
        ifname, proto, pkttype = addr[0], addr[1], addr[2]
        if proto != 0x0800 or ifname == "lo":
            continue
        p = memoryview(buf)[:n]
        off = 14 if addr[3] == 1 else 0  # ARPHRD_ETHER
        if n < off + 40 or p[off] >> 4 != 4:
            continue
        ihl = (p[off] & 15) * 4
        if p[off + 9] != 6:
            continue
        tot = struct.unpack_from("!H", p, off + 2)[0] or (n - off)
        src = socket.inet_ntoa(bytes(p[off + 12:off + 16])); dst = socket.inet_ntoa(bytes(p[off + 16:off + 20]))
        t = off + ihl
        sport, dport, seq, ack, doff, flags, win = struct.unpack_from("!HHIIBBH", p, t)
        thl = (doff >> 4) * 4
        plen = max(0, min(tot, n - off) - ihl - thl)
        opts = parse_options(bytes(p[t + 20:t + thl]))
        if pkttype == PACKET_OUTGOING and sport == port:
            key = (src, sport, dst, dport)
            f = flows.setdefault(key, Flow())
            f.pkts_out += 1; f.bytes_out += plen; f.last_seen = time.monotonic()
            e = (seq + plen + (1 if flags & 0x01 else 0) + (1 if flags & 0x02 else 0)) & MASK32
            if f.snd_nxt is None or after(e, f.snd_nxt):
                f.snd_nxt = e
            if flags & 0x10:
                f.ack = ack
            f.win = win
            if "ts" in opts:
                f.ts = opts["ts"]
            d = opts.get("dss")
            if d:
                if "ack" in d:
                    f.data_ack, f.data_ack8 = d["ack"], d["ack8"]
                if "dsn" in d and d["dlen"] > 0:
                    f.dss_csum = d["csum"]
                    me = (d["dsn"] + d["dlen"]) & MASK64
                    if f.dsn_end is None or ((me - f.dsn_end) & MASK64) < (1 << 63):
                        f.dsn_end = me
                        f.last_map = (d["dsn"], d["ssn"], d["dlen"], seq)
                    if plen > 0 and d["ssn"] != 0:
                        f.isn[(seq - d["ssn"]) & MASK32] += 1
        elif pkttype != PACKET_OUTGOING and dport == port:
            key = (dst, dport, src, sport)
            f = flows.setdefault(key, Flow())
            f.pkts_in += 1; f.last_seen = time.monotonic()
            d = opts.get("dss")
            if d and d.get("ack8"):
                f.peer_data_ack = d["ack"]
    s.close()
    return flows


def mptcp(subtype_byte, body):
    return bytes([30, 2 + 1 + len(body), subtype_byte]) + body


def build(kind, f, offset):
    """-> (seq, flags, mptcp option bytes, description)."""
    seq = f.snd_nxt
    if kind == "rst-out":
        return (seq + (1 << 30)) & MASK32, 0x14, b"", {}
    if kind == "rst-in":
        return (seq + (offset if offset is not None else 1000)) & MASK32, 0x14, b"", {}
    if kind == "fastclose":
        key = os.urandom(8)
        return seq, 0x10, mptcp(0x70, b"\0" + key), {"key": key.hex()}
    if kind == "remove-addr":
        aid = offset if offset is not None else 0
        return seq, 0x10, mptcp(0x40, bytes([aid])), {"address_id": aid}
    if f.data_ack is None:
        raise SystemExit("no DATA_ACK seen from the server on this subflow")
    if kind == "dataack":
        a = (f.data_ack + (1 << 40)) & MASK64
        return seq, 0x10, mptcp(0x20, bytes([0x03]) + struct.pack("!Q", a)), {"data_ack": a, "server_data_ack": f.data_ack}
    if kind == "datafin":
        # The server's next DSN: the end of its highest mapping, or (nothing
        # sent yet: an upload) what the gateway acknowledges at data level.
        nxt = f.dsn_end
        if f.peer_data_ack is not None and (nxt is None or ((f.peer_data_ack - nxt) & MASK64) < (1 << 63)):
            nxt = f.peer_data_ack
        if nxt is None:
            raise SystemExit("neither a mapping from the server nor an 8-byte DATA_ACK to it seen")
        dsn = (nxt + (1 << 40)) & MASK64
        body = bytes([0x1F]) + struct.pack("!QQIH", f.data_ack, dsn, 0, 1) + (b"\0\0" if f.dss_csum else b"")
        return seq, 0x10, mptcp(0x20, body), {"data_fin_dsn": dsn, "server_next_dsn": nxt}
    if f.dsn_end is None:
        raise SystemExit("no mapping seen from the server on this subflow")
    if kind == "infinite":
        isn = f.isn.most_common(1)[0][0] if f.isn else None
        if isn is None:
            raise SystemExit("no data packet with a mapping seen (cannot place SND.NXT at data level)")
        dsn0, ssn0, _, _ = f.last_map
        rel = (seq - isn) & MASK32
        dsn = (dsn0 + ((rel - ssn0) & MASK32) + (offset or 0)) & MASK64
        body = bytes([0x0F]) + struct.pack("!QQIH", f.data_ack, dsn, rel, 0) + (b"\0\0" if f.dss_csum else b"")
        return seq, 0x10, mptcp(0x20, body), {"dsn": dsn, "subflow_seq": rel, "server_next_dsn": f.dsn_end}
    raise SystemExit("unknown kind " + kind)


def send(src, sport, dst, dport, seq, ack, flags, win, ts, mopt):
    opts = b""
    if ts:
        opts += b"\x01\x01\x08\x0a" + struct.pack("!II", *ts)
    opts += mopt
    while len(opts) % 4:
        opts += b"\x01"  # NOP padding in front would shift nothing: pad at the end
    thl = 20 + len(opts)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack if ack is not None else 0, (thl // 4) << 4,
                      flags, win, 0, 0) + opts
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    c = csum(pseudo + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.bind((src, 0))  # routed from the server's address (its policy rules)
    s.sendto(ip + tcp, (dst, 0))
    s.close()
    return (ip + tcp).hex()


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__); return 2
    kind = argv[0]
    def opt(name, default=None):
        return argv[argv.index(name) + 1] if name in argv else default
    port = int(opt("--port", "5002"))
    client = opt("--client")
    which = opt("--subflow", "initial")
    ms = int(opt("--sniff-ms", "200"))
    offset = int(opt("--offset")) if "--offset" in argv else None
    wait = int(opt("--wait-ms", "3000"))
    t_end = time.monotonic() + wait / 1000.0
    while True:
        flows = sniff(ms, port)
        live = [(k, f) for k, f in flows.items() if f.pkts_out > 0 and f.snd_nxt is not None
                and (which != "initial" or client is None or k[2] == client)
                and (which != "join" or client is None or k[2] != client)]
        if live or time.monotonic() >= t_end:
            break
    if not live:
        print(json.dumps({"sent": False, "why": "no live %s subflow on port %d" % (which, port),
                          "flows": ["%s:%d-%s:%d" % k for k in flows]}))
        return 2
    key, f = max(live, key=lambda kf: (kf[1].pkts_out + kf[1].pkts_in, kf[1].last_seen))
    seq, flags, mopt, extra = build(kind, f, offset)
    pkt = send(key[0], key[1], key[2], key[3], seq, f.ack, flags, f.win, f.ts, mopt)
    out = {"sent": True, "kind": kind, "subflow": "%s:%d -> %s:%d" % key, "seen_snd_nxt": f.snd_nxt,
           "seq": seq, "ack": f.ack, "flags": "0x%02x" % flags, "mptcp_option": mopt.hex(),
           "server_data_ack": f.data_ack, "server_next_dsn": f.dsn_end, "pkts_seen": [f.pkts_out, f.pkts_in],
           "bytes_seen": f.bytes_out}
    out.update(extra)
    out["packet"] = pkt
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
