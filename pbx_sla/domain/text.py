"""Bytes → text for CDR sources that are not always UTF-8 (Master.csv records, the AMI stream).

Real PBXs write caller names and application data in Latin-1, CP1252 or CP1251, or cut a multi-byte
character in half. Rejecting such a record would lose a real call, so text is read as UTF-8 and every
byte that is not part of valid UTF-8 is read as CP1252 instead (the bytes CP1252 leaves undefined,
0x81 0x8D 0x8F 0x90 0x9D, as the Latin-1 control characters of the same value). Nothing is dropped or
replaced, and valid UTF-8 is never altered. The structural fields (times, durations, disposition) are
ASCII in every real file: a byte there still fails their validation, naming the field.

Both sources use :data:`TEXT_ERRORS` (a codec error handler), so the same bytes give the same text, and
the same leg fingerprint, whichever source delivered them. Pure.
"""

from __future__ import annotations

import codecs

#: the codec error handler's name: ``data.decode("utf-8", TEXT_ERRORS)``
TEXT_ERRORS = "pbx-sla-cp1252"


def _cp1252_byte(byte: int) -> str:
    try:
        return bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:
        return chr(byte)  # undefined in CP1252: the Latin-1 character of the same value


_CP1252 = [_cp1252_byte(b) for b in range(256)]


def _read_as_cp1252(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "".join(_CP1252[b] for b in exc.object[exc.start : exc.end]), exc.end


codecs.register_error(TEXT_ERRORS, _read_as_cp1252)


def decode_text(data: bytes) -> tuple[str, bool]:
    """The text of ``data`` and whether any byte was not UTF-8 (then read as CP1252)."""
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", TEXT_ERRORS), True


class TextDecoder(codecs.BufferedIncrementalDecoder):
    """Incremental :func:`decode_text` for a stream (a character split across two reads is kept whole);
    :attr:`recoded` counts the chunks that held bytes that are not UTF-8."""

    def __init__(self) -> None:
        super().__init__()
        self.recoded = 0

    def _buffer_decode(self, data: bytes, errors: str, final: bool) -> tuple[str, int]:  # type: ignore[override]
        try:
            return codecs.utf_8_decode(data, "strict", final)
        except UnicodeDecodeError:
            self.recoded += 1
            return codecs.utf_8_decode(data, TEXT_ERRORS, final)
