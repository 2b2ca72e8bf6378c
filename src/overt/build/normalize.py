"""Archive metadata normalisation, applied to build outputs only when a recipe asks for it.

Rewrites what reproducible-builds.org lists as archive noise, and nothing else: zip entry timestamps, extra
fields, creator system and permission bits (``zip``); tar member mtimes, owners and names (``tar``); the gzip
header's mtime and file name (``gzip``; a ``.tar.gz`` gets both). Member order and contents are kept, so two
outputs that normalise to the same bytes differ only in that metadata. Callers must report such outputs as
"equivalent after normalisation", never as identical. Pure: bytes in, bytes out.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile

from overt.errors import FormatError

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
MAX_UNPACKED = 1 << 31


def formats_for(name: str) -> tuple[str, ...]:
    """Which of zip/tar/gzip a file name implies."""
    lower = name.lower()
    if lower.endswith((".zip", ".whl", ".jar", ".egg")):
        return ("zip",)
    if lower.endswith((".tar.gz", ".tgz")):
        return ("gzip", "tar")
    if lower.endswith(".tar"):
        return ("tar",)
    if lower.endswith(".gz"):
        return ("gzip",)
    return ()


def normalize_zip(data: bytes) -> bytes:
    out = io.BytesIO()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
            for info in src.infolist():
                new = zipfile.ZipInfo(info.filename, ZIP_EPOCH)
                new.compress_type = info.compress_type
                new.create_system = 3
                executable = (info.external_attr >> 16) & 0o111
                is_dir = info.filename.endswith("/")
                new.external_attr = (0o40755 if is_dir else 0o100755 if executable else 0o100644) << 16
                dst.writestr(new, src.read(info))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise FormatError(f"cannot normalise zip: {e}") from e
    return out.getvalue()


def normalize_tar(data: bytes) -> bytes:
    out = io.BytesIO()
    try:
        with (
            tarfile.open(fileobj=io.BytesIO(data), mode="r:") as src,
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst,
        ):
            for m in src.getmembers():
                m.mtime = 0
                m.uid = m.gid = 0
                m.uname = m.gname = ""
                m.pax_headers = {}
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    except (tarfile.TarError, OSError, ValueError, EOFError) as e:
        raise FormatError(f"cannot normalise tar: {e}") from e
    return out.getvalue()


def normalize_gzip(data: bytes, *, inner_tar: bool) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as g:
            raw = g.read(MAX_UNPACKED)
    except (OSError, EOFError) as e:
        raise FormatError(f"cannot normalise gzip: {e}") from e
    if inner_tar:
        raw = normalize_tar(raw)
    return gzip.compress(raw, compresslevel=9, mtime=0)


def normalize(name: str, data: bytes, allowed: tuple[str, ...]) -> bytes:
    """``data`` with the metadata of the formats ``name`` implies and the recipe allows rewritten."""
    kinds = [k for k in formats_for(name) if k in allowed]
    if "zip" in kinds:
        return normalize_zip(data)
    if "gzip" in kinds:
        return normalize_gzip(data, inner_tar="tar" in kinds)
    if "tar" in kinds:
        return normalize_tar(data)
    return data
