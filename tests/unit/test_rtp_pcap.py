"""The e2e pcap writer: the file holds what its truth says (sequence numbers, send times, RTP fields)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from e2e.rtp_pcap import alternate_delay, every_nth, write_stream


def read_rtp(path: Path) -> list[tuple[float, int, int, int]]:
    """(send time, sequence number, timestamp, payload length) per packet."""
    data = path.read_bytes()
    magic, _, _, _, _, _, linktype = struct.unpack("<IHHiIII", data[:24])
    assert (magic, linktype) == (0xA1B2C3D4, 1)
    out, off = [], 24
    while off < len(data):
        sec, usec, incl, _ = struct.unpack("<IIII", data[off : off + 16])
        frame = data[off + 16 : off + 16 + incl]
        off += 16 + incl
        rtp = frame[14 + 20 + 8 :]
        _, pt, seq, ts, _ = struct.unpack("!BBHII", rtp[:12])
        assert pt == 0  # PCMU
        out.append((sec + usec / 1e6, seq, ts, len(rtp) - 12))
    return out


def test_loss_stream(tmp_path: Path) -> None:
    stream = write_stream(tmp_path / "l.pcap", 400, drop=every_nth(20, offset=10))
    packets = read_rtp(tmp_path / "l.pcap")
    assert (stream.received, stream.lost) == (380, 20) == (len(packets), 400 - len(packets))
    seqs = [p[1] for p in packets]
    assert seqs[0] == 1000 and seqs[-1] == 1399 and 1010 not in seqs and 1011 in seqs
    assert all(p[3] == 160 and p[2] == 8000 + 160 * (p[1] - 1000) for p in packets)
    assert stream.jitter_ms() == 0.0


@pytest.mark.parametrize(("delay", "ptime"), [(20, 20), (40, 40)])
def test_jitter_stream_keeps_order_and_converges(tmp_path: Path, delay: int, ptime: int) -> None:
    stream = write_stream(tmp_path / "j.pcap", 300, delay_ms=alternate_delay(delay), ptime_ms=ptime)
    packets = read_rtp(tmp_path / "j.pcap")
    assert [p[1] for p in packets] == sorted(p[1] for p in packets)  # no reordering
    assert [p[0] for p in packets] == sorted(p[0] for p in packets)
    assert packets[1][0] == pytest.approx((ptime + delay) / 1000)
    assert stream.jitter_ms() == pytest.approx(delay, abs=1e-6)
    assert all(p[3] == 8 * ptime for p in packets)
