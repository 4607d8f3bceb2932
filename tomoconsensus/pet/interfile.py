"""The Interfile header of a Siemens PETLINK list-mode file (``*.l.hdr``), validated for what we read.

An Interfile header is ASCII lines ``key := value`` (Interfile 3.3 with the Siemens ``%`` keys of
the PETLINK guideline). Keys are matched case-insensitively after removing the leading ``!`` / ``%``
and collapsing spaces, e.g. ``!name of data file := small_listmode_file.l``.

What is used, and what is *not* trusted (docs/pet.md):

* ``name of data file`` (relative to the header's folder) and ``data offset in bytes``;
* ``originating system`` must be ``2008`` (Siemens Biograph mMR, the only scanner whose sinogram
  layout we decode); the ``%number of projections`` / ``%number of views`` / ``number of rings`` /
  ``%maximum ring difference`` / ``%axial compression`` / ``%LM event and tag words format (bits)``,
  where present, must match the mMR's span-1 32-bit list-mode (344 / 252 / 64 / 60 / 1 / 32);
* ``isotope name`` and ``isotope gamma halflife (sec)`` are recorded;
* ``image duration (sec)`` and ``%total listmode word counts`` are only *compared* with the file:
  the duration comes from the file's time marks, the word count from its size (an excerpt of an
  acquisition keeps the full acquisition's header). The ``%segment table`` (span 11 in the STIR
  test file) describes the scanner's sinograms, not the list-mode events (span 1): it is ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from tomoconsensus.errors import InputError

#: PETLINK "originating system" of the Siemens Biograph mMR (STIR Scanner.cxx: "Siemens mMR", "mMR", "2008").
MMR_SYSTEM = "2008"
#: Header fields that must match the mMR's span-1 32-bit list-mode where the header has them.
MMR_FIELDS = {"number of projections": 344, "number of views": 252, "number of rings": 64,
              "maximum ring difference": 60, "axial compression": 1, "lm event and tag words format (bits)": 32}
_MAX_HEADER_BYTES = 1 << 20


@dataclass(frozen=True)
class ListmodeHeader:
    """What a PETLINK header says.

    Attributes
    ----------
    path : Path
        The header.
    data_file : Path
        The list-mode data file it names (resolved against the header's folder).
    data_offset : int
        Bytes to skip at the start of the data file.
    scanner : str
        ``originating system`` (``"2008"``: Biograph mMR).
    isotope : str or None
    half_life_s : float or None
        ``isotope gamma halflife (sec)``, > 0.
    header_duration_s : float or None
        ``image duration (sec)`` (compared with the time marks, not used).
    header_words : int or None
        ``%total listmode word counts`` (compared with the file size, not used).
    """

    path: Path
    data_file: Path
    data_offset: int
    scanner: str
    isotope: str | None
    half_life_s: float | None
    header_duration_s: float | None
    header_words: int | None


def parse_interfile(text: str) -> dict[str, str]:
    """``key := value`` lines -> {normalised key: value}; the first occurrence of a key wins.

    Normalised key: lower case, leading ``!``/``%`` removed, runs of spaces as one space, and
    spaces before ``[`` / ``(`` kept (``%energy window lower level (keV) [1]``).
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":=" not in line:
            continue
        key, value = line.split(":=", 1)
        key = " ".join(key.strip().lstrip("!%").strip().lower().split())
        fields.setdefault(key, value.strip())
    return fields


def _number(fields: dict[str, str], key: str, path: Path, kind: type = float, positive: bool = True):
    """A numeric field (None where absent); InputError where it is not one finite number."""
    if key not in fields or fields[key] == "":
        return None
    text = fields[key]
    try:
        value = float(text)
    except ValueError:
        raise InputError(path, key, "one number", text) from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise InputError(path, key, "a finite number > 0" if positive else "a finite number >= 0", text)
    if kind is int:
        if value != round(value):
            raise InputError(path, key, "an integer", text)
        value = int(value)
    return value


def read_listmode_header(path: str | Path) -> ListmodeHeader:
    """Read and check a PETLINK Interfile header (module docstring); InputError names the field."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "--listmode", "an existing Interfile list-mode header (*.l.hdr)",
                         "a folder" if path.is_dir() else "not found")
    raw = path.read_bytes()[:_MAX_HEADER_BYTES]
    if b"\0" in raw[:4096] or not raw.lstrip().upper().startswith(b"!INTERFILE"):
        raise InputError(path, "header", "an Interfile header starting with '!INTERFILE' (give the .l.hdr file, "
                         "not the .l data)", raw[:16])
    fields = parse_interfile(raw.decode("latin-1"))
    scanner = fields.get("originating system", "")
    if scanner != MMR_SYSTEM:
        raise InputError(path, "originating system", f"{MMR_SYSTEM} (Siemens Biograph mMR: the only PETLINK sinogram "
                         "layout supported)", scanner or "missing")
    for key, expected in MMR_FIELDS.items():
        value = _number(fields, key, path, int)
        if value is not None and value != expected:
            raise InputError(path, key, f"{expected} (the mMR's span-1 32-bit list-mode)", value)
    name = fields.get("name of data file", "")
    if not name:
        raise InputError(path, "name of data file", "the list-mode data file's name", "missing")
    data_file = Path(name) if Path(name).is_absolute() else path.parent / name
    if not data_file.is_file():
        raise InputError(path, "name of data file", "an existing list-mode data file (next to the header)",
                         f"{data_file} not found")
    offset = _number(fields, "data offset in bytes", path, int, positive=False) or 0
    return ListmodeHeader(path, data_file, int(offset), scanner, fields.get("isotope name") or None,
                          _number(fields, "isotope gamma halflife (sec)", path),
                          _number(fields, "image duration (sec)", path),
                          _number(fields, "total listmode word counts", path, int))
