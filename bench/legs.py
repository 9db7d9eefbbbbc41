#!/usr/bin/env python3
"""Where a streamed chat turn spends its time, from packet timestamps.

Reads a pcap of the loopback taken during a bench run (`tcpdump -i lo -s 0 -w
FILE 'tcp port CHAT or tcp port GATEWAY'`) and, for each run, pairs four
packets by run id (`chatcmpl_...`):

  1. the HTTP request arriving at clawbridge (the last `POST` on that
     client connection before the run's first content),
  2. the `agent` frame clawbridge sends to the gateway (unmasked here),
  3. the gateway's first `assistant` event for the run,
  4. the first SSE chunk with `"content":` leaving clawbridge.

It prints p50/p90/p99 of each leg. The WebSocket streams are reassembled per
direction; a frame's time is that of the packet holding its last byte.

    bench/legs.py FILE [CHAT_PORT=23110] [GATEWAY_PORT=23102]
"""

import bisect
import re
import struct
import sys

RUN_ID = re.compile(rb"chatcmpl_[0-9a-zA-Z_-]+")


def packets(path):
    """(time, src port, dst port, TCP payload) of each IPv4 TCP packet."""
    with open(path, "rb") as f:
        head = f.read(24)
        nano = struct.unpack("<I", head[:4])[0] == 0xA1B23C4D
        link = struct.unpack("<I", head[20:24])[0]
        l2 = {1: 14, 113: 16}.get(link, 0)  # Ethernet, Linux cooked
        while len(rec := f.read(16)) == 16:
            sec, frac, incl, _ = struct.unpack("<IIII", rec)
            pkt = f.read(incl)[l2:]
            if not pkt or pkt[0] >> 4 != 4 or pkt[9] != 6:
                continue
            tcp = pkt[(pkt[0] & 15) * 4 :]
            sport, dport = struct.unpack(">HH", tcp[:4])
            data = tcp[(tcp[12] >> 4) * 4 :]
            if data:
                yield sec + frac / (1e9 if nano else 1e6), sport, dport, data


def ws_frames(buf, marks):
    """(time, unmasked payload) of each whole frame in a reassembled stream."""
    ends = [end for end, _ in marks]
    i = 0
    while i + 2 <= len(buf):
        n = buf[i + 1] & 0x7F
        masked = buf[i + 1] & 0x80
        j = i + 2
        if n == 126:
            n, j = struct.unpack(">H", buf[j : j + 2])[0], j + 2
        elif n == 127:
            n, j = struct.unpack(">Q", buf[j : j + 8])[0], j + 8
        key = buf[j : j + 4] if masked else None
        j += 4 if masked else 0
        if j + n > len(buf):
            return
        payload = buf[j : j + n]
        if key:
            payload = bytes(b ^ key[k % 4] for k, b in enumerate(payload))
        yield marks[bisect.bisect_left(ends, j + n)][1], payload
        i = j + n


def main():
    path = sys.argv[1]
    chat = int(sys.argv[2]) if len(sys.argv) > 2 else 23110
    gateway = int(sys.argv[3]) if len(sys.argv) > 3 else 23102
    last_post, t_post, t_content, t_agent, t_event = {}, {}, {}, {}, {}
    streams = {}
    for t, sport, dport, data in packets(path):
        if dport == chat and data.startswith(b"POST "):
            last_post[sport] = t
        elif sport == chat and b'"content":' in data:
            m = RUN_ID.search(data)
            if m and m.group() not in t_content:
                t_content[m.group()] = t
                t_post[m.group()] = last_post.get(dport)
        elif gateway in (sport, dport):
            buf, marks = streams.setdefault((sport, dport), (bytearray(), []))
            buf += data
            marks.append((len(buf), t))
    for (sport, dport), (buf, marks) in streams.items():
        for t, payload in ws_frames(bytes(buf), marks):
            m = RUN_ID.search(payload)
            if not m:
                continue
            if dport == gateway and b'"method":"agent"' in payload:
                t_agent.setdefault(m.group(), t)
            elif sport == gateway and b'"stream":"assistant"' in payload:
                t_event.setdefault(m.group(), t)
    runs = [r for r in t_content if t_post.get(r) and r in t_agent and r in t_event]
    if not runs:
        sys.exit("legs: no complete run in the capture")
    legs = [
        ("request in -> agent frame out (clawbridge)", lambda r: t_agent[r] - t_post[r]),
        ("agent frame out -> first event in (gateway)", lambda r: t_event[r] - t_agent[r]),
        ("first event in -> first content out (clawbridge)", lambda r: t_content[r] - t_event[r]),
        ("request in -> first content out", lambda r: t_content[r] - t_post[r]),
    ]
    print(f"{len(runs)} runs")
    for name, leg in legs:
        v = sorted(leg(r) * 1e6 for r in runs)
        p = lambda q: v[min(len(v) - 1, int(len(v) * q))]
        print(f"{name:50s} p50 {p(0.5):7.0f} us   p90 {p(0.9):7.0f} us   p99 {p(0.99):7.0f} us")


if __name__ == "__main__":
    main()
