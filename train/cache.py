"""The training caches of decoded images and box crops: their key, and reading and writing them.

A cache is keyed by what its arrays were made from: each image's path, label and labelled box, the file's size
and modification time, and the caller's own settings. Path and label alone once served the crops of an image
replaced under the same name (a data set fixed in place) until someone deleted the cache by hand.
"""
from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from pathlib import Path

import numpy as np

from .datasets import Record

log = logging.getLogger("agegate.train")


def file_stamp(path: Path) -> str:
    """Size and modification time: a file rewritten in place gets another stamp (a missing file: '-')."""
    try:
        st = os.stat(path)
    except OSError:
        return "-"
    return f"{st.st_size}:{st.st_mtime_ns}"


def cache_key(records: list[Record], settings: str) -> str:
    text = "\n".join(f"{r.path}\t{r.age:g}\t{file_stamp(r.path)}" + ("" if r.box is None else f"\t{r.box}")
                     for r in records)
    return hashlib.sha256(f"{text}\n{settings}".encode()).hexdigest()[:20]


def load_cache(path: Path | None) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or None when there is none. A file that does not read (a disk that failed
    under it) is warned about and made again, not the end of the run."""
    if path is None or not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        log.warning("cache %s does not read (%s); making it again", path, e)
        return None


def save_cache(path: Path | None, **arrays: np.ndarray) -> None:
    """Write atomically: a killed run leaves the previous cache or none, never half of one."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
