"""Video frames as planes straight into and out of the cpu backend (`Program.run_yuv`).

A decoded frame's Y, Cb and Cr planes are read where the decoder left them (its strides
kept) and the upscaled frame's planes are written in the encoder's pixel format, so
`fastsr video` runs no swscale conversion around the model. A Y model takes its luma
from the Y plane (corrected by the chroma where the video's matrix is not BT.601) and
its chroma is the bicubic upscale of the source chroma; an RGB model gets R'G'B' built
in C++. Chroma is resampled where the frames' chroma location puts it. Formats, matrices,
locations or frames this cannot take go through RGB as before.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

# FFmpeg pixel format -> (bits, log2 chroma subsampling of rows, of columns).
PLANAR_FORMATS = {
    "yuv420p": (8, 1, 1), "yuvj420p": (8, 1, 1), "yuv422p": (8, 0, 1), "yuvj422p": (8, 0, 1),
    "yuv444p": (8, 0, 0), "yuvj444p": (8, 0, 0), "yuv420p10le": (10, 1, 1),
    "yuv422p10le": (10, 0, 1), "yuv444p10le": (10, 0, 0),
}  # fmt: skip
# FFmpeg AVColorSpace tag -> the matrix's luma weights (Kr, Kb), from ITU-T H.273.
LUMA_WEIGHTS = {1: (0.2126, 0.0722), 4: (0.30, 0.11), 5: (0.299, 0.114), 6: (0.299, 0.114),
                7: (0.212, 0.087), 9: (0.2627, 0.0593), 10: (0.2627, 0.0593)}  # fmt: skip
_JPEG_RANGE = 2
# FFmpeg AVChromaLocation -> is chroma co-sited with the first luma (rows, columns) of its
# block, else centred. 0 is unspecified; bottom (5, 6) is not modelled.
CHROMA_SITES = {1: (False, True), 2: (False, False), 3: (True, True), 4: (True, False)}
_UNSPECIFIED_LOCATION = 0


def chroma_location(source) -> int:
    """A frame's or codec context's AVChromaLocation, 0 where PyAV does not expose it
    (PyAV 18 has neither; later ones name it chroma_location / chroma_sample_location)."""
    for name in ("chroma_location", "chroma_sample_location"):
        value = getattr(source, name, None)
        if value is not None:
            return int(value)
    return _UNSPECIFIED_LOCATION


def chroma_sites(location: int, pix_fmt: str) -> tuple[bool, bool] | None:
    """(rows, columns) co-sited, for a location and pixel format; unspecified is JPEG's
    centre for yuvj formats and MPEG-2/H.264's left otherwise, as FFmpeg reads it. None
    for a location not modelled."""
    if location == _UNSPECIFIED_LOCATION:
        return (False, False) if pix_fmt.startswith("yuvj") else (False, True)
    return CHROMA_SITES.get(location)


def plane_arrays(frame, bits: int) -> tuple[np.ndarray, ...]:
    """Numpy views of a video frame's planes (rows keep the frame's line size)."""
    dtype = np.dtype(np.uint8 if bits == 8 else "<u2")
    views = []
    for plane in frame.planes:
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, abs(plane.line_size))
        if plane.line_size < 0:  # bottom-up rows: the buffer starts at the last one
            rows = rows[::-1]
        views.append(rows[:, : plane.width * dtype.itemsize].view(dtype))
    return tuple(views)


@dataclass
class DecodedPlanes:
    frame: object  # the decoded frame, kept alive while its planes are read
    planes: tuple[np.ndarray, ...]


class PlanarVideo:
    """One video's frames through `Upscaler.upscale_planes`: a decoded frame of the
    source's format and size in, a new frame of the encoder's format out."""

    def __init__(self, av, up, source: str, target: str, size: tuple[int, int], colour: dict,
                 location: int = _UNSPECIFIED_LOCATION):  # fmt: skip
        self.av, self.up, self.source, self.target, self.size = av, up, source, target, size
        bits, *source_shift = PLANAR_FORMATS[source]
        _, *target_shift = PLANAR_FORMATS[target]
        kr, kb = LUMA_WEIGHTS[colour["colorspace"]]
        self.bits, self.tags = bits, (colour["colorspace"], colour["color_range"])
        self.location = location  # the output is tagged as the input
        self.coding = {"src_shift": tuple(source_shift), "dst_shift": tuple(target_shift),
                       "bits": bits, "full_range": colour["color_range"] == _JPEG_RANGE,
                       "kr": kr, "kb": kb, "src_cosited": chroma_sites(location, source),
                       "dst_cosited": chroma_sites(location, target)}  # fmt: skip

    def takes(self, frame) -> bool:
        return (
            frame.format.name == self.source
            and (frame.width, frame.height) == self.size
            and chroma_location(frame) in (self.location, _UNSPECIFIED_LOCATION)
        )

    def planes(self, frame) -> DecodedPlanes:
        return DecodedPlanes(frame, plane_arrays(frame, self.bits))

    def upscale(self, decoded: DecodedPlanes):
        width, height = self.size
        out = self.av.VideoFrame(width * self.up.scale, height * self.up.scale, self.target)
        out.colorspace, out.color_range = self.tags
        if hasattr(out, "chroma_location"):
            out.chroma_location = self.location
        self.up.upscale_planes(decoded.planes, plane_arrays(out, self.bits), **self.coding)
        return out


def planar_video(av, up, source: str, target: str, size: tuple[int, int], colour: dict,
                 location: int = _UNSPECIFIED_LOCATION):  # fmt: skip
    """A PlanarVideo when frames of `source` can go to `target` as planes, else None."""
    if source not in PLANAR_FORMATS or target not in PLANAR_FORMATS:
        return None
    if chroma_sites(location, source) is None:
        return None
    bits, *source_shift = PLANAR_FORMATS[source]
    target_bits, *target_shift = PLANAR_FORMATS[target]
    if bits != target_bits or colour["colorspace"] not in LUMA_WEIGHTS:
        return None
    if bits > 8 and sys.byteorder != "little":  # the p10le planes are little-endian
        return None
    takes_planes = getattr(up, "takes_planes", None)
    if takes_planes is None or not takes_planes(size[1], size[0]):
        return None
    if up.color == "y":  # its chroma goes up by one whole factor per axis
        for shift_in, shift_out in zip(source_shift, target_shift, strict=True):
            if (up.scale << shift_in) % (1 << shift_out):
                return None
    return PlanarVideo(av, up, source, target, size, colour, location)
