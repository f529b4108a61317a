"""Fetch abseil's source (the LTS that Debian 12 ships) for the ThreadSanitizer build.

    python fetch_abseil.py DEST

Downloads Debian's pristine upstream tarball once, checks its SHA-256 and unpacks it into DEST.
Nothing happens when DEST already holds this version.
"""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

VERSION = "20220623.1"
URL = f"https://deb.debian.org/debian/pool/main/a/abseil/abseil_{VERSION}.orig.tar.gz"
# From Debian's abseil_20220623.1-1+deb12u2.dsc (Checksums-Sha256).
SHA256 = "abfe2897f3a30edaa74bc34365afe3c2a3cd012091a97dc7e008f7016adcd5fe"
# Python 3.12+ checks members itself (and 3.14 warns without a filter).
SAFE = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def main(dest: Path) -> None:
    stamp = dest / ".offload-version"
    if stamp.is_file() and stamp.read_text() == VERSION:
        return
    print(f"fetching abseil {VERSION} from {URL}", flush=True)
    with urllib.request.urlopen(URL, timeout=120) as response:
        data = response.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        sys.exit(f"fetch_abseil: {URL} has SHA-256 {digest}, expected {SHA256}")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            parts = Path(member.name).parts[1:]  # drop the top directory
            if not parts or ".." in parts or member.issym() or member.islnk():
                continue
            member.name = str(Path(*parts))
            archive.extract(member, dest, **SAFE)
    stamp.write_text(VERSION)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: fetch_abseil.py DEST")
    main(Path(sys.argv[1]))
