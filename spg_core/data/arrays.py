"""Reading one 2-D score map from a ``.npy`` file (wsolevaluation's ``<image_id>.npy``) without
trusting it: the header is read and checked before any array memory is allocated.

Refused, each with one line naming the file: an empty or truncated file, a file that is not
``.npy``, object (pickled) and structured dtypes, an array that is not 2-D or has no element,
a header whose shape does not match the bytes the file holds (a 100-byte file claiming 10¹⁰
elements), and maps of more than :data:`MAX_MAP_ELEMENTS` elements.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

MAX_MAP_ELEMENTS = 4096 * 4096  # 128 MB as float64; wsolevaluation's maps are 224×224
MAP_KINDS = "biuf"  # bool, signed and unsigned integers, floats: what a score map may hold


class MapFileError(ValueError):
    """A ``.npy`` map file refused before its array is read, with the reason and the fix."""


def read_map(path: str | Path, max_elements: int = MAX_MAP_ELEMENTS) -> np.ndarray:
    """The 2-D array of a ``.npy`` score map, checked from its header before reading.

    Args:
        path: the ``.npy`` file.
        max_elements: the most elements the map may hold.

    Returns:
        The array as stored (its own numeric dtype).

    Raises:
        MapFileError: the file is refused (see the module docstring); FileNotFoundError when absent.
    """
    path = Path(path)
    fix = "write it with numpy.save(path, a 2-D float array), e.g. python -m spg_core evaluate --export-maps"
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            raise MapFileError(f"{path}: empty file (0 bytes), not a .npy map; {fix}")
        try:
            version = npy_format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = npy_format.read_array_header_1_0(handle)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = npy_format.read_array_header_2_0(handle)
            else:
                raise ValueError(f"version {version}")
        except (ValueError, EOFError, SyntaxError, TypeError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise MapFileError(f"{path}: not a readable .npy file ({reason}); {fix}") from None
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in MAP_KINDS:
            raise MapFileError(f"{path}: dtype {dtype.descr if dtype.fields else dtype.str} is not a plain number "
                               f"type (object and structured arrays are refused); {fix}")
        if len(shape) != 2:
            raise MapFileError(f"{path}: shape {shape} is not 2-D (a map is height × width); {fix}")
        elements = int(np.prod(shape, dtype=object))
        if elements == 0:
            raise MapFileError(f"{path}: shape {shape} holds no element; {fix}")
        if elements > max_elements:
            raise MapFileError(f"{path}: shape {shape} ({elements} elements) exceeds the limit of {max_elements}; "
                               "save the map at a smaller size (wsolevaluation's maps are 224×224)")
        expected = elements * dtype.itemsize
        held = size - handle.tell()
        if held != expected:
            raise MapFileError(f"{path}: the header claims shape {shape} of {dtype.str} ({expected} bytes) but the "
                               f"file holds {held} bytes after it (truncated or forged); {fix}")
        array = np.fromfile(handle, dtype=dtype, count=elements)
    return array.reshape(shape, order="F" if fortran else "C")
