"""G.711 RTP streams of known quality, written as pcap files for sipp's ``play_pcap_audio``.

A stream is ``count`` packets of PCMU, 20 ms each by default (160 bytes, timestamps +160). Quality is
injected by *schedule*: packet ``i`` is meant to leave at ``i * ptime``; ``drop`` removes sequence numbers from the
file (loss), ``delay_ms`` shifts individual send times (jitter). The truth a receiver should report is
computed here from the schedule alone, independently of pbx-sla:

* lost = dropped sequence numbers strictly inside the stream (a receiver cannot count a missing last
  packet), received = the packets in the file;
* jitter: the RFC 3550 (6.4.1) interarrival jitter estimator run over the send times in arrival order,
  ``J += (|D| - J) / 16``; with ``alternate_delay(d)`` every other packet is late by ``d`` ms, so every
  ``|D|`` equals ``d`` and the estimate converges to ``d`` (the injected jitter). ``d`` must not exceed
  the packet time: Asterisk leaves reordered packets out of its jitter estimate (measured: a 40 ms
  alternation of 20 ms packets read 0), so 40 ms jitter is injected on 40 ms packets.

Only the standard library: the e2e harness and the unit tests both use it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

PTIME_MS = 20
SILENCE = 0xFF  # PCMU
_LINKTYPE_ETHERNET = 1


def every_nth(n: int, *, offset: int = 0) -> Callable[[int], bool]:
    """Drop rule: sequence offsets ``i`` with ``i % n == offset`` (1 in n packets: 100/n % loss)."""
    return lambda i: i % n == offset


def alternate_delay(delay_ms: float) -> Callable[[int], float]:
    """Every odd packet leaves ``delay_ms`` late: each transit difference is ``delay_ms`` (RFC 3550 J → d)."""
    return lambda i: delay_ms if i % 2 else 0.0


@dataclass(frozen=True)
class Stream:
    """What was written: packets (sequence offset, send time in seconds) and the truth they carry."""

    packets: tuple[tuple[int, float], ...]
    count: int
    ptime_ms: int = PTIME_MS

    @property
    def received(self) -> int:
        return len(self.packets)

    @property
    def lost(self) -> int:
        last = max(i for i, _ in self.packets)
        first = min(i for i, _ in self.packets)
        return (last - first + 1) - self.received

    @property
    def seconds(self) -> float:
        return max(t for _, t in self.packets)

    def jitter_ms(self) -> float:
        """RFC 3550 interarrival jitter at the end of the stream, in ms (arrival order = send order)."""
        order = sorted(self.packets, key=lambda p: (p[1], p[0]))
        jitter = 0.0
        previous: float | None = None
        for i, sent in order:
            transit = sent - i * self.ptime_ms / 1000
            if previous is not None:
                jitter += (abs(transit - previous) - jitter) / 16
            previous = transit
        return jitter * 1000


def _udp_frame(payload: bytes, src_port: int = 6000, dst_port: int = 6002) -> bytes:
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
    total = 20 + len(udp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 17, 0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    checksum = 0
    for k in range(0, 20, 2):
        checksum += (ip[k] << 8) | ip[k + 1]
    checksum = (checksum & 0xFFFF) + (checksum >> 16)
    checksum = ~((checksum & 0xFFFF) + (checksum >> 16)) & 0xFFFF
    ip = ip[:10] + struct.pack("!H", checksum) + ip[12:]
    ether = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00"
    return ether + ip + udp


def write_stream(
    path: Path,
    count: int,
    *,
    drop: Callable[[int], bool] = lambda i: False,
    delay_ms: Callable[[int], float] = lambda i: 0.0,
    ssrc: int = 0x5EED1234,
    first_seq: int = 1000,
    first_ts: int = 8000,
    ptime_ms: int = PTIME_MS,
) -> Stream:
    """Write ``count`` scheduled packets minus the dropped ones; the first and last are never dropped."""
    packets: list[tuple[int, float]] = []
    for i in range(count):
        if 0 < i < count - 1 and drop(i):
            continue
        # whole microseconds: float sums would reorder packets meant to leave at the same instant
        packets.append((i, (i * ptime_ms * 1000 + round(delay_ms(i) * 1000)) / 1_000_000))
    samples = 8 * ptime_ms
    payload = bytes([SILENCE]) * samples
    records: Iterable[tuple[int, float]] = sorted(packets, key=lambda p: (p[1], p[0]))
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, _LINKTYPE_ETHERNET))
    for i, sent in records:
        ts = (first_ts + i * samples) & 0xFFFFFFFF
        rtp = struct.pack("!BBHII", 0x80, 0, (first_seq + i) & 0xFFFF, ts, ssrc)
        frame = _udp_frame(rtp + payload)
        micros = round(sent * 1_000_000)
        out += struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))
    return Stream(tuple(packets), count, ptime_ms)
