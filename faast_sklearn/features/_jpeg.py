"""What a JPEG file is, from its bytes alone: size, colour components, coding, EXIF orientation.

:func:`scan_jpeg` walks the marker segments up to the first scan (SOS), without decoding and
without PIL: it is what lets the decoders choose a back-end per file, and plan each resize,
before any pixel is decoded. The orientation is read as ``PIL.ImageOps.exif_transpose`` reads
it: the Orientation tag (0x0112) of the first IFD of the first ``Exif`` APP1 segment; a damaged
EXIF block counts as no orientation (1), as PIL's decoders still show the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from struct import unpack_from

# Start-of-frame markers: 0xC0 baseline, 0xC1 extended and 0xC2 progressive (Huffman coding).
# The others are lossless (0xC3, 0xC7, 0xCB, 0xCF), hierarchical (0xC5-0xC7, 0xCD-0xCF) or
# arithmetic-coded (0xC9-0xCB, 0xCD-0xCF); 0xC4 (DHT), 0xC8 (JPG) and 0xCC (DAC) are not frames.
_SOF = {m for m in range(0xC0, 0xD0) if m not in (0xC4, 0xC8, 0xCC)}
_HUFFMAN = (0xC0, 0xC1, 0xC2)
_EXIF = b"Exif\x00\x00"
_XMP = b"http://ns.adobe.com/xap/1.0/\x00"


@dataclass(frozen=True)
class JpegInfo:
    """The header of a JPEG file.

    Attributes
    ----------
    height, width : int
        The stored size (before the EXIF orientation).
    components : int
        Colour components: 1 (grey), 3 (YCbCr, or RGB with an Adobe transform of 0), 4 (CMYK
        or YCCK).
    sof : int
        The start-of-frame marker (0xC0 baseline, 0xC1 extended, 0xC2 progressive, ...).
    precision : int
        Bits per sample (8 or 12).
    orientation : int
        The EXIF orientation (1 to 8; 1 where there is none).
    adobe_transform : int or None
        The colour transform of an Adobe APP14 segment, if any.
    xmp_orientation : bool
        An XMP packet mentions an orientation (PIL reads it where EXIF has none).
    sampling : tuple of (int, int) or None
        How many luma samples (across, down) share one chroma sample where both chroma
        components have one sampling factor: (1, 1) for 4:4:4 and grey, (2, 2) for 4:2:0,
        (2, 1) for 4:2:2; None for other layouts.
    """

    height: int
    width: int
    components: int
    sof: int
    precision: int
    orientation: int = 1
    adobe_transform: int | None = None
    xmp_orientation: bool = False
    sampling: tuple[int, int] | None = (1, 1)

    @property
    def progressive(self) -> bool:
        return self.sof == 0xC2

    @property
    def plain(self) -> bool:
        """Decoded alike by libjpeg-turbo, nvJPEG and PIL: 8-bit Huffman-coded, grey or YCbCr,
        its orientation in EXIF (or none)."""
        return (
            self.sof in _HUFFMAN
            and self.precision == 8
            and (self.components == 1 or (self.components == 3 and self.adobe_transform != 0))
            and not (self.xmp_orientation and self.orientation == 1)
            and self.height > 0
            and self.width > 0
        )


def _sampling(factors: list) -> tuple[int, int] | None:
    """Luma samples per chroma sample, (across, down), from the components' sampling bytes."""
    if len(set(factors)) == 1:
        return (1, 1)
    if len(factors) != 3 or factors[1] != factors[2]:
        return None
    (h0, v0), (h1, v1) = divmod(factors[0], 16), divmod(factors[1], 16)
    if h1 == 0 or v1 == 0 or h0 % h1 or v0 % v1:
        return None
    return (h0 // h1, v0 // v1)


def exif_orientation(exif: bytes | memoryview) -> int:
    """The Orientation tag of a TIFF-structured EXIF block (after ``Exif\\0\\0``); 1 if none or
    damaged."""
    try:
        order = {b"II": "<", b"MM": ">"}[bytes(exif[:2])]
        (ifd,) = unpack_from(order + "I", exif, 4)
        (count,) = unpack_from(order + "H", exif, ifd)
        for k in range(count):
            tag, kind = unpack_from(order + "HH", exif, ifd + 2 + 12 * k)
            if tag == 0x0112:
                fmt = "H" if kind == 3 else "I" if kind == 4 else None
                value = unpack_from(order + fmt, exif, ifd + 2 + 12 * k + 8)[0] if fmt else 1
                return value if 1 <= value <= 8 else 1
    except Exception:
        return 1
    return 1


def scan_jpeg(data: bytes | memoryview) -> JpegInfo | None:
    """The header of the JPEG file in ``data``, or None where ``data`` is not a JPEG file (or
    is cut short, or damaged, before its first scan)."""
    data = memoryview(data).cast("B")
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    pos, frame, orientation, adobe, xmp = 2, None, None, None, False
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # standalone markers
            pos += 2
            continue
        if marker == 0xD9:
            return None  # an image that ends before its first scan
        (length,) = unpack_from(">H", data, pos + 2)
        end = pos + 2 + length
        if length < 2 or end > n:
            return None
        seg = data[pos + 4 : end]
        if marker in _SOF:
            if len(seg) < 6:
                return None
            precision, height, width, components = unpack_from(">BHHB", seg)
            factors = [seg[6 + 3 * c + 1] for c in range(components) if 8 + 3 * c < len(seg)]
            frame = (height, width, components, marker, precision, _sampling(factors))
        elif marker == 0xE1 and orientation is None and bytes(seg[:6]) == _EXIF:
            orientation = exif_orientation(seg[6:])
        elif marker == 0xE1 and bytes(seg[: len(_XMP)]) == _XMP:
            xmp = xmp or b"Orientation" in bytes(seg)
        elif marker == 0xEE and len(seg) >= 12 and bytes(seg[:5]) == b"Adobe":
            adobe = seg[11]
        elif marker == 0xDA:  # start of scan: the header is over
            if frame is None:
                return None
            *size, sampling = frame
            return JpegInfo(*size, orientation or 1, adobe, xmp, sampling)
        pos = end
    return None
