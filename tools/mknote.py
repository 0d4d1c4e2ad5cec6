#!/usr/bin/env python3
"""mknote.py - write the Markdown note for a reference capture (stdout).

Everything about packets comes from tshark (field names from `tshark -G fields`);
the token / IDSN are derived here from the keys tshark reports
(token = top 32 bits of SHA-256(key), IDSN = low 64 bits).
Called by tools/capture.sh; can be re-run on an existing pcap.
"""
import argparse
import hashlib
import os
import re
import subprocess
import sys

SUBTYPES = [(0, "MP_CAPABLE"), (1, "MP_JOIN"), (2, "DSS"), (3, "ADD_ADDR"),
            (4, "REMOVE_ADDR"), (5, "MP_PRIO"), (6, "MP_FAIL"), (7, "MP_FASTCLOSE"),
            (8, "MP_TCPRST")]

FIELDS = ["frame.number", "ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst",
          "tcp.dstport", "tcp.stream", "tcp.flags.syn", "tcp.flags.ack", "tcp.flags.fin",
          "tcp.flags.reset", "tcp.len",
          "tcp.options.mptcp.subtype", "tcp.options.mptcp.echo",
          "tcp.options.mptcp.datafin.flag", "tcp.options.mptcp.sendkey",
          "tcp.options.mptcp.recvkey", "tcp.options.mptcp.checksumreq.flags",
          "tcp.options.mptcp.flags", "tcp.options.mptcp.backup.flag",
          "tcp.options.mptcp.addrid", "tcp.options.mptcp.ipv4",
          "tcp.options.mptcp.ipv6", "tcp.options.mptcp.port",
          "tcp.options.mptcp.recvtok", "tcp.options.mptcp.checksum",
          "tcp.options.mptcp.rst_reason", "tcp.option_len", "tcp.option_kind",
          "tcp.options.mptcp.dataackpresent.flag", "tcp.options.mptcp.dataack8.flag",
          "tcp.options.mptcp.dseqnpresent.flag", "tcp.options.mptcp.dseqn8.flag"]

TOPOLOGY = """Topology (tools/capture.sh): two namespaces `mpcap-c-<pid>` (client) and `mpcap-s-<pid>` (server), three veth pairs created directly inside them, offloads off (`ethtool -K ... tso off gso off gro off tx off rx off`) so segments are wire-sized and TCP checksums are real:
`a1 10.20.1.1/24 <-> b1 10.20.1.2/24` (path 1), `a2 10.20.2.1/24 + fd20:2::1/64 <-> b2 10.20.2.2/24 + fd20:2::2/64` (path 2), `a3 fd20:3::1/64 <-> b3 fd20:3::2/64` (IPv6 pair). MACs 02:20:0N:00:00:0a (client side) / 02:20:0N:00:00:0b (server side), N = pair.
Captured in the server namespace on b1, b2, b3 (`tcpdump -s 0`, filter `tcp`), merged with `mergecap -F pcap` (classic pcap, Ethernet, usec). Apps: `tools/refapp.py` (python3, IPPROTO_MPTCP=262; `--tcp` = protocol 0). pattern(n): byte i = i mod 251."""


def tshark(*args):
    r = subprocess.run(["tshark", *args], capture_output=True, text=True)
    return r.stdout


def ival(s):
    if s in ("", None):
        return None
    s = s.strip()
    try:
        return int(s, 0) if s.startswith("0x") else int(s)
    except ValueError:
        return None


def key_info(k):
    h = hashlib.sha256(k.to_bytes(8, "big")).digest()
    return int.from_bytes(h[:4], "big"), int.from_bytes(h[-8:], "big")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pcap", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--desc")
    ap.add_argument("--config")
    ap.add_argument("--client-log")
    ap.add_argument("--server-log")
    ap.add_argument("--mib")
    ap.add_argument("--pauses", help="run log; 'client paused' sections are quoted")
    a = ap.parse_args()

    data = open(a.pcap, "rb").read()
    sha = hashlib.sha256(data).hexdigest()
    cmd = ["-r", a.pcap, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a",
           "-E", "aggregator=|"]
    for f in FIELDS:
        cmd += ["-e", f]
    pkts = []
    for line in tshark(*cmd).splitlines():
        v = line.split("\t")
        if len(v) < len(FIELDS):
            v += [""] * (len(FIELDS) - len(v))
        p = dict(zip(FIELDS, v))
        p["n"] = int(p["frame.number"])
        p["src"] = (p["ip.src"] or p["ipv6.src"])
        p["dst"] = (p["ip.dst"] or p["ipv6.dst"])
        p["sub"] = [ival(x) for x in p["tcp.options.mptcp.subtype"].split("|") if x]
        for k in ("tcp.flags.syn", "tcp.flags.ack", "tcp.flags.fin", "tcp.flags.reset",
                  "tcp.len", "tcp.stream"):
            p[k] = ival(p[k].split("|")[0]) or 0
        # MPTCP options of this packet as (subtype, length): option kinds without a
        # length (EOL, NOP) have no tcp.option_len entry, so align on the others
        kinds = [ival(x) for x in p["tcp.option_kind"].split("|") if x]
        lens = [ival(x) for x in p["tcp.option_len"].split("|") if x]
        kl = [k for k in kinds if k not in (0, 1)]
        ml = [ln for k, ln in zip(kl, lens) if k == 30]
        p["opts"] = list(zip(p["sub"], ml))
        # DSS checksum: tshark 4.0 does not decode it, detect it by the DSS length
        p["dss_csum"] = False
        if 2 in p["sub"]:
            f1 = lambda k: p[k].split("|")[0] == "1"
            exp = 4
            if f1("tcp.options.mptcp.dataackpresent.flag"):
                exp += 8 if f1("tcp.options.mptcp.dataack8.flag") else 4
            if f1("tcp.options.mptcp.dseqnpresent.flag"):
                exp += (8 if f1("tcp.options.mptcp.dseqn8.flag") else 4) + 6
                p["dss_csum"] = any(st == 2 and ln == exp + 2 for st, ln in p["opts"])
        pkts.append(p)
    total = len(pkts)

    # counts per subtype, exactly as tshark's display filter reports them
    counts = {}
    for st, _ in SUBTYPES:
        out = tshark("-r", a.pcap, "-Y", f"tcp.options.mptcp.subtype == {st}",
                     "-T", "fields", "-e", "frame.number")
        counts[st] = len([x for x in out.splitlines() if x.strip()])
    mptcp_pkts = len([x for x in tshark("-r", a.pcap, "-Y", "mptcp", "-T", "fields",
                                        "-e", "frame.number").splitlines() if x.strip()])
    malformed = len([x for x in tshark("-r", a.pcap, "-Y", "_ws.malformed || _ws.expert.severity == error",
                                       "-T", "fields", "-e", "frame.number").splitlines() if x.strip()])
    summary = tshark("-r", a.pcap)
    malformed_txt = summary.count("Malformed")
    ver = tshark("-v").splitlines()[0]

    # classify
    def has(p, st):
        return st in p["sub"]

    client = pkts[0]["src"] if pkts else "?"
    frames = {}

    def add(label, n):
        frames.setdefault(label, []).append(n)

    streams = {}
    join_streams = {}
    for p in pkts:
        s = p["tcp.stream"]
        st = streams.setdefault(s, {"a": (p["src"], p["tcp.srcport"]), "b": (p["dst"], p["tcp.dstport"]),
                                    "pk": 0, "bytes_ab": 0, "bytes_ba": 0, "first": p["n"]})
        st["pk"] += 1
        if (p["src"], p["tcp.srcport"]) == st["a"]:
            st["bytes_ab"] += p["tcp.len"]
        else:
            st["bytes_ba"] += p["tcp.len"]
        syn, ack = p["tcp.flags.syn"], p["tcp.flags.ack"]
        if has(p, 0):
            if syn and not ack:
                add("MP_CAPABLE SYN", p["n"])
            elif syn and ack:
                add("MP_CAPABLE SYN/ACK", p["n"])
            elif p["tcp.len"] == 0:
                add("MP_CAPABLE third ACK", p["n"])
            else:
                add("MP_CAPABLE ACK + data (both keys + data-level length)", p["n"])
        if has(p, 1):
            if syn and not ack:
                add("MP_JOIN SYN", p["n"])
                join_streams[s] = {"state": "syn", "initiator": p["src"]}
            elif syn and ack:
                add("MP_JOIN SYN/ACK", p["n"])
            else:
                add("MP_JOIN third ACK (HMAC-160)", p["n"])
                if s in join_streams:
                    join_streams[s]["state"] = "ack3"
        elif s in join_streams and join_streams[s]["state"] == "ack3" \
                and p["src"] != join_streams[s]["initiator"] and not syn:
            add("MP_JOIN 4th ACK (responder)", p["n"])
            join_streams[s]["state"] = "done"
        if has(p, 3):
            echo = p["tcp.options.mptcp.echo"].split("|")[0]
            add("ADD_ADDR echo" if echo == "1" else "ADD_ADDR", p["n"])
        if has(p, 4):
            add("REMOVE_ADDR", p["n"])
        if has(p, 5):
            add("MP_PRIO", p["n"])
        if has(p, 6):
            add("MP_FAIL", p["n"])
        if has(p, 7):
            add("MP_FASTCLOSE", p["n"])
        if has(p, 8):
            add("MP_TCPRST", p["n"])
        if "1" in p["tcp.options.mptcp.datafin.flag"].split("|"):
            add("DATA_FIN (DSS F=1)", p["n"])
        if p["tcp.flags.fin"]:
            add("TCP FIN", p["n"])
        if p["tcp.flags.reset"]:
            add("TCP RST", p["n"])
        if p["dss_csum"]:
            add("DSS mapping carrying a DSS checksum (by option length)", p["n"])

    # keys
    mpc = [p for p in pkts if has(p, 0)]
    ck = sk = None
    csum_flags = []
    for p in mpc:
        sendk = ival(p["tcp.options.mptcp.sendkey"].split("|")[0])
        recvk = ival(p["tcp.options.mptcp.recvkey"].split("|")[0])
        if p["tcp.flags.syn"] and p["tcp.flags.ack"] and sendk is not None:
            sk = sendk
        if not p["tcp.flags.syn"]:
            if sendk is not None and ck is None:
                ck = sendk
            if recvk is not None and sk is None:
                sk = recvk
        if p["tcp.flags.syn"]:
            csum_flags.append(("SYN/ACK" if p["tcp.flags.ack"] else "SYN",
                               p["tcp.options.mptcp.checksumreq.flags"].split("|")[0]))

    out = []
    w = out.append
    w(f"# {a.name}\n")
    w(f"File: `{a.name}.pcap` ({len(data)} bytes, sha256 `{sha}`), {total} TCP packets "
      f"({mptcp_pkts} with an MPTCP option), classic pcap, Ethernet, full packets (tcpdump -s 0).\n")
    w(f"Reproduce: `bash tools/capture.sh {a.name}` (root; creates and always deletes its two namespaces; "
      f"needs iproute2, ethtool, tcpdump, mergecap, tshark, python3). Keys, nonces, ports and timings differ on every run.\n")
    uname = os.uname()
    w(f"Recorded with Linux {uname.release} on both ends (same kernel, two namespaces); decoded with {ver.rstrip('.')}.\n")
    w("## Scenario\n")
    if a.desc:
        w(open(a.desc).read().strip() + "\n")
    w(TOPOLOGY + "\n")
    if a.config:
        w("## PM / sysctl configuration (as shown before the run)\n")
        w("```\n" + open(a.config).read().strip() + "\n```\n")
    if a.pauses:
        txt = open(a.pauses).read()
        sect = []
        grab = False
        for line in txt.splitlines():
            if "client paused at" in line:
                grab = True
            elif line.startswith("[capture") or line.startswith("[client") or line.startswith("[server"):
                grab = False
            if grab:
                sect.append(re.sub(r"^\[capture [0-9:.]+\] ", "", line))
        if sect:
            w("## Mid-connection commands (client paused, command run, client resumed)\n")
            w("```\n" + "\n".join(sect) + "\n```\n")

    w("## Keys, tokens, IDSNs (keys from tshark fields `tcp.options.mptcp.sendkey` / `recvkey`)\n")
    if sk is None:
        w("- no MP_CAPABLE key on the wire: the server never answered with MP_CAPABLE (fallback at the handshake)")
    else:
        w(f"- MP_CAPABLE checksum-required flag (A, `tcp.options.mptcp.checksumreq.flags`): "
          + ", ".join(f"{k} {v}" for k, v in csum_flags) + "")
        for who, k in (("client", ck), ("server", sk)):
            if k is None:
                w(f"- {who} key: not seen")
                continue
            t, i = key_info(k)
            w(f"- {who} key `0x{k:016x}` -> token `0x{t:08x}`, IDSN `0x{i:016x}` (first data byte DSN = IDSN+1)")
        for who, f in (("client", a.client_log), ("server", a.server_log)):
            if f and os.path.exists(f):
                m = re.search(r"'token': '(0x[0-9a-f]+)'", open(f).read())
                k = ck if who == "client" else sk
                if m and k is not None:
                    ok = int(m.group(1), 16) == key_info(k)[0]
                    w(f"- {who} app's MPTCP_INFO mptcpi_token {m.group(1)}: "
                      f"{'matches' if ok else 'DOES NOT match'} the token derived from the {who} key")
        toks = set()
        for p in pkts:
            for x in p["tcp.options.mptcp.recvtok"].split("|"):
                if ival(x) is not None:
                    toks.add(ival(x))
        if toks:
            known = {key_info(k)[0]: who for who, k in (("client", ck), ("server", sk)) if k is not None}
            w("- MP_JOIN SYN receiver token(s): " + ", ".join(
                f"`0x{t:08x}` (= {known.get(t, 'UNKNOWN')} token)" for t in sorted(toks)) + "")
        fck = set()
        for p in pkts:
            if has(p, 7):
                for x in p["tcp.options.mptcp.recvkey"].split("|"):
                    if ival(x) is not None:
                        fck.add((p["src"], ival(x)))
        for src, k in sorted(fck):
            who = "client" if k == ck else "server" if k == sk else "UNKNOWN"
            w(f"- MP_FASTCLOSE from {src} carries receiver key `0x{k:016x}` (= {who} key)")
        adds = set()
        for p in pkts:
            if has(p, 3):
                a4 = p["tcp.options.mptcp.ipv4"] or p["tcp.options.mptcp.ipv6"]
                adds.add((p["src"], p["tcp.options.mptcp.echo"], a4, p["tcp.options.mptcp.port"],
                          p["tcp.options.mptcp.addrid"]))
        for src, e, addr, port, aid in sorted(adds):
            w(f"- ADD_ADDR{' echo' if e.startswith('1') else ''} from {src}: address {addr}"
              f"{' port ' + port if port else ''}, address id {aid}")
    w("")

    w("## MPTCP subtype counts (packets, tshark `-Y 'tcp.options.mptcp.subtype == N'`)\n")
    w("| N | subtype | packets |\n|---|---|---|")
    for st, nm in SUBTYPES:
        w(f"| {st} | {nm} | {counts[st]} |")
    w("")

    w("## MPTCP option lengths seen (tshark `tcp.option_len` of kind 30)\n")
    names = dict(SUBTYPES)
    lenstat = {}
    for p in pkts:
        for st, ln in p["opts"]:
            lenstat.setdefault(st, {}).setdefault(ln, 0)
            lenstat[st][ln] += 1
    for st in sorted(lenstat):
        w(f"- {names.get(st, st)}: " + ", ".join(f"len {ln} x{c}" for ln, c in sorted(lenstat[st].items())))
    w("")
    w("## Packets that matter (frame numbers in this file)\n")
    order = ["MP_CAPABLE SYN", "MP_CAPABLE SYN/ACK", "MP_CAPABLE third ACK",
             "MP_CAPABLE ACK + data (both keys + data-level length)", "ADD_ADDR", "ADD_ADDR echo",
             "MP_JOIN SYN", "MP_JOIN SYN/ACK", "MP_JOIN third ACK (HMAC-160)",
             "MP_JOIN 4th ACK (responder)", "MP_PRIO", "REMOVE_ADDR", "MP_FAIL", "MP_FASTCLOSE",
             "MP_TCPRST", "DSS mapping carrying a DSS checksum (by option length)", "DATA_FIN (DSS F=1)", "TCP FIN", "TCP RST"]
    for k in order:
        if k in frames:
            v = frames[k]
            s = ", ".join(map(str, v[:12]))
            if len(v) > 12:
                s += f", ... ({len(v)} packets in total)"
            w(f"- {k}: {s}")
    w("")
    w("## TCP connections (subflows) in the file\n")
    w("| tcp.stream | from | to | first frame | packets | payload bytes ->/<- |\n|---|---|---|---|---|---|")
    for s, st in sorted(streams.items()):
        ep = lambda e: f"[{e[0]}]:{e[1]}" if ":" in e[0] else f"{e[0]}:{e[1]}"
        fa, fb = ep(st["a"]), ep(st["b"])
        w(f"| {s} | {fa} | {fb} | {st['first']} | {st['pk']} | {st['bytes_ab']} / {st['bytes_ba']} |")
    w("")

    prio = [p for p in pkts if has(p, 5)]
    for pp in prio:
        s_ = pp["tcp.stream"]
        before = [p["n"] for p in pkts if p["tcp.stream"] == s_ and p["tcp.len"] > 0 and p["n"] < pp["n"]]
        after = [p["n"] for p in pkts if p["tcp.stream"] == s_ and p["tcp.len"] > 0 and p["n"] > pp["n"]]
        w(f"- MP_PRIO in frame {pp['n']} (tcp.stream {s_}, backup flag "
          f"{pp['tcp.options.mptcp.backup.flag'] or '?'}): payload segments on that subflow before it: "
          f"{len(before)}, after it: {len(after)}")
    if prio:
        w("")
    w("## Decode check\n")
    w(f"`tshark -r {a.name}.pcap -Y mptcp -V` shows the MPTCP option trees; "
      f"'Malformed' in `tshark -r`: {malformed_txt}; frames matching `_ws.malformed || _ws.expert.severity == error`: {malformed}.\n")

    for title, f in (("Client log", a.client_log), ("Server log", a.server_log)):
        if f and os.path.exists(f):
            w(f"## {title} (tools/refapp.py)\n")
            w("```\n" + open(f).read().strip() + "\n```\n")
    if a.mib and os.path.exists(a.mib):
        w("## Non-zero MPTCP MIB counters after the run (`nstat -as 'MPTcp*'`)\n")
        w("```\n" + "\n".join(l for l in open(a.mib).read().splitlines()
                              if not l.startswith("#")).strip() + "\n```\n")
    sys.stdout.write("\n".join(out).rstrip() + "\n")


if __name__ == "__main__":
    main()
