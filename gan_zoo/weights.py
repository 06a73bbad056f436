"""Finding and verifying shipped weight files (zoo generators and metric extractors).

A file named in a manifest is looked for, in order, in the zoo's ``checkpoints/`` folder (the repository's top-level
``checkpoints/`` in a source checkout, installed as ``gan_zoo/checkpoints`` by the wheel), in ``$GAN_ZOO_WEIGHTS``
(a directory) and in the download cache (``$GAN_ZOO_CACHE``, default ``~/.cache/gan_zoo``). If it is in none of
them and the manifest gives a URL, it is downloaded into the cache (to a temporary name, verified, then renamed, so
the cache never holds a partial or unverified file). Every file's sha256 is checked against the manifest on every
load; a mismatch is refused with both hashes.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.request
from pathlib import Path



def shipped_checkpoints() -> Path:
    """The folder of the zoo's manifests and weights: ``gan_zoo/checkpoints`` in an installed wheel, else the
    repository's top-level ``checkpoints/`` (a source checkout or an editable install)."""
    installed = Path(__file__).resolve().parent / "checkpoints"
    return installed if installed.is_dir() else Path(__file__).resolve().parents[1] / "checkpoints"


CHECKPOINTS = shipped_checkpoints()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_failure(e: BaseException) -> str:
    """One line saying why ``torch.load(weights_only=True)`` refused a file: for pickled code, the global it named
    (torch's own message spans several lines and says so only in the middle)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    hit = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if hit:
        return (f"it refers to {hit.group(1)}, which a weights file never holds (pickled code): refused, nothing in it "
                "was run")
    detail = text.split("WeightsUnpickler error:", 1)[-1]
    line = next((ln.strip() for ln in detail.splitlines() if ln.strip()), "")
    return f"{type(e).__name__}: {line}" if line else type(e).__name__


def cache_dir() -> Path:
    return Path(os.environ.get("GAN_ZOO_CACHE") or Path.home() / ".cache" / "gan_zoo").expanduser()


def search_dirs() -> list[Path]:
    """Where weight files are looked for, in order: ``checkpoints/``, ``$GAN_ZOO_WEIGHTS``, the download cache."""
    dirs = [CHECKPOINTS]
    if os.environ.get("GAN_ZOO_WEIGHTS"):
        dirs.append(Path(os.environ["GAN_ZOO_WEIGHTS"]).expanduser())
    dirs.append(cache_dir())
    return dirs


def locate(file: str, sha256: str, what: str, error: type[Exception], url: str | None = None) -> Path:
    """The verified path of ``file`` (see the module docstring); ``error`` is raised with the reason."""
    for d in search_dirs():
        path = d / file
        if path.is_file():
            break
    else:
        where = ", ".join(str(d) for d in search_dirs())
        if not url:
            raise error(f"{what}: weights file {file} not found in {where} (set $GAN_ZOO_WEIGHTS to a directory "
                        "holding it)")
        path = _download(url, cache_dir() / file, sha256, what, error)
    digest = sha256_file(path)
    if digest != sha256:
        raise error(f"{what}: {path} has sha256 {digest[:16]}..., the manifest says {sha256[:16]}...: the file is "
                    "corrupt, truncated or not the shipped one")
    return path


def _download(url: str, dest: Path, sha256: str, what: str, error: type[Exception]) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                with urllib.request.urlopen(url, timeout=60) as r:
                    for chunk in iter(lambda: r.read(1 << 20), b""):
                        f.write(chunk)
            except OSError as e:
                raise error(f"{what}: not in {', '.join(str(d) for d in search_dirs())}, and downloading {url} "
                            f"failed ({type(e).__name__}: {e})") from e
        digest = sha256_file(tmp)
        if digest != sha256:
            raise error(f"{what}: the download from {url} has sha256 {digest[:16]}..., the manifest says "
                        f"{sha256[:16]}...: refused (not kept in the cache)")
        os.replace(tmp, dest)
        return dest
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
