"""Frame numbers drawn into the picture as a grid of black/white luma cells.

The grid covers the top third of the frame and scales with it, so that the cells stay
large enough to survive downscaling to 256x144 and low-bitrate re-encoding. Each frame
carries 16 bits of frame number and a 16-bit CRC of it: a garbled read is rejected, never
mistaken for another frame.
"""

from __future__ import annotations

import binascii
import functools

import numpy as np
import numpy.typing as npt

COLUMNS = 8
ROWS = 4
FRAME_BITS = 16
MAX_FRAME_NUMBER = (1 << FRAME_BITS) - 1
BAND_FRACTION = 1 / 3  # share of the frame height the grid occupies

BLACK = 16
WHITE = 235
_THRESHOLD = (BLACK + WHITE) / 2
# Cells whose mean falls this close to the threshold are ambiguous: reject the read.
_MIN_MARGIN = 40

LumaPlane = npt.NDArray[np.uint8]


def _checksum(frame_number: int) -> int:
    return binascii.crc_hqx(frame_number.to_bytes(2, "big"), 0xFFFF)


def _bits(frame_number: int) -> npt.NDArray[np.bool_]:
    word = (frame_number << 16) | _checksum(frame_number)
    return np.array([(word >> (31 - i)) & 1 for i in range(COLUMNS * ROWS)], dtype=bool)


def band_height(height: int) -> int:
    return int(height * BAND_FRACTION)


def _cell_edges(size: int, count: int) -> npt.NDArray[np.int64]:
    return np.linspace(0, size, count + 1).round().astype(np.int64)


def draw(luma: LumaPlane, frame_number: int) -> None:
    """Draws the timecode of `frame_number` into a luma plane (in place)."""
    if not 0 <= frame_number <= MAX_FRAME_NUMBER:
        raise ValueError(f"frame number {frame_number} out of range 0..{MAX_FRAME_NUMBER}")
    height, width = luma.shape
    xs = _cell_edges(width, COLUMNS)
    ys = _cell_edges(band_height(height), ROWS)
    bits = _bits(frame_number).reshape(ROWS, COLUMNS)
    for row in range(ROWS):
        for col in range(COLUMNS):
            value = WHITE if bits[row, col] else BLACK
            luma[ys[row] : ys[row + 1], xs[col] : xs[col + 1]] = value


@functools.lru_cache(maxsize=16)
def _layout(
    height: int, width: int
) -> tuple[
    npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.float64]
]:
    """Where the cells' middle halves are in a frame of this size (edges blur under
    scaling and compression): (rows to read, where each cell row starts among them, column
    bounds for np.add.reduceat, pixels per cell)."""
    xs = _cell_edges(width, COLUMNS)
    ys = _cell_edges(band_height(height), ROWS)
    rows: list[int] = []
    row_starts = []
    heights = []
    for row in range(ROWS):
        y0, y1 = int(ys[row]), int(ys[row + 1])
        qy = (y1 - y0) // 4
        row_starts.append(len(rows))
        rows.extend(range(y0 + qy, y1 - qy))
        heights.append(y1 - 2 * qy - y0)
    bounds = []
    widths = []
    for col in range(COLUMNS):
        x0, x1 = int(xs[col]), int(xs[col + 1])
        qx = (x1 - x0) // 4
        bounds += [x0 + qx, x1 - qx]
        widths.append(x1 - 2 * qx - x0)
    pixels = np.outer(heights, widths).astype(np.float64)
    return (
        np.array(rows, dtype=np.intp),
        np.array(row_starts, dtype=np.intp),
        np.array(bounds, dtype=np.intp),
        pixels,
    )


def read(luma: LumaPlane) -> int | None:
    """Reads the frame number from a luma plane of any size; None when not readable."""
    height, width = luma.shape
    if height < ROWS * 4 or width < COLUMNS * 4:
        return None
    rows, row_starts, bounds, pixels = _layout(height, width)
    # Every cell's mean in two reductions: across the columns of each cell, then down the
    # rows of each cell row (one numpy call each, not one per cell: this runs per frame).
    across = np.add.reduceat(luma[rows], bounds, axis=1, dtype=np.uint32)[:, ::2]
    means = np.add.reduceat(across, row_starts, axis=0) / pixels
    if np.min(np.abs(means - _THRESHOLD)) < _MIN_MARGIN:
        return None
    word = 0
    for bit in (means > _THRESHOLD).ravel():
        word = (word << 1) | int(bit)
    frame_number, checksum = word >> 16, word & 0xFFFF
    return frame_number if _checksum(frame_number) == checksum else None
