"""Where MovieLens files come from: a folder, an ml-1m.zip, an s3:// prefix (or its zip), or a download.

Returns the three files' raw bytes and a description (kind, hashes) that travels into the manifest, so a
run says exactly which input it was trained on. Parsing is data.py's job.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from shared.config.log import get_logger
from shared.contract import objectstore
from training_job.data.report import FILES, ZIP_NAME, MovieLensError

logger = get_logger(__name__)

DOWNLOAD_URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _from_zip(blob: bytes, label: str) -> dict[str, bytes]:
    """The three files from an ml-1m.zip (members found by basename, e.g. under 'ml-1m/')."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(blob))
    except zipfile.BadZipFile as exc:
        raise MovieLensError(f"{label} is not a valid zip archive: {exc}") from exc
    with zf:
        found: dict[str, list[str]] = {f: [] for f in FILES}
        for name in zf.namelist():
            base = name.rsplit("/", 1)[-1]
            if base in found and not name.startswith("__MACOSX/"):
                found[base].append(name)
        missing = [f for f, names in found.items() if not names]
        if missing:
            raise MovieLensError(f"{label} does not contain {missing} (members: {zf.namelist()[:10]})")
        ambiguous = {f: names for f, names in found.items() if len(names) > 1}
        if ambiguous:
            raise MovieLensError(f"{label} holds several copies of {ambiguous}; cannot tell which to read")
        return {f: zf.read(names[0]) for f, names in found.items()}


def _from_folder(folder: Path) -> tuple[dict[str, bytes], str, dict[str, Any]]:
    for candidate in (folder, folder / "ml-1m"):
        if all((candidate / f).is_file() for f in FILES):
            return {f: (candidate / f).read_bytes() for f in FILES}, "folder", {"path": str(candidate)}
    zip_path = folder / ZIP_NAME
    if zip_path.is_file():
        blob = zip_path.read_bytes()
        return _from_zip(blob, str(zip_path)), "zip", {"zip_sha256": _sha(blob), "path": str(zip_path)}
    present = sorted(p.name for p in folder.iterdir())[:20]
    raise MovieLensError(
        f"folder {folder} holds neither {list(FILES)} (directly or under ml-1m/) nor {ZIP_NAME}; found {present}"
    )


def _from_s3(uri: str) -> tuple[dict[str, bytes], str, dict[str, Any]]:
    if uri.endswith(".zip"):
        if not objectstore.exists(uri):
            raise MovieLensError(f"no object at {uri}")
        blob = objectstore.read_bytes(uri)
        return _from_zip(blob, uri), "s3-zip", {"zip_sha256": _sha(blob)}
    prefix = uri.rstrip("/")
    keys = list(objectstore.list_uris(prefix))
    for candidate in (prefix, f"{prefix}/ml-1m"):
        wanted = {f: f"{candidate}/{f}" for f in FILES}
        if all(w in keys for w in wanted.values()):
            return {f: objectstore.read_bytes(w) for f, w in wanted.items()}, "s3", {"prefix": candidate}
    zips = [k for k in keys if k.endswith(".zip")]
    preferred = [k for k in zips if objectstore.basename(k) == ZIP_NAME] or zips
    if len(preferred) == 1:
        blob = objectstore.read_bytes(preferred[0])
        return _from_zip(blob, preferred[0]), "s3-zip", {"zip_uri": preferred[0], "zip_sha256": _sha(blob)}
    shown = [k[len(prefix) :] for k in keys[:20]]
    raise MovieLensError(
        f"s3 prefix {uri} holds neither {list(FILES)} (directly or under ml-1m/) nor exactly one .zip; found {shown}"
    )


def download(cache_dir: str | Path = ".local/data", url: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch the official ml-1m.zip into cache_dir (reused when already there and a valid zip).

    Written to a '.part' file and renamed only once complete and readable as a zip, so an interrupted
    download never poisons the cache.
    """
    url = url or DOWNLOAD_URL
    cache = Path(cache_dir)
    target = cache / ZIP_NAME
    if target.is_file() and zipfile.is_zipfile(target):
        logger.info("using cached MovieLens archive", extra={"path": str(target)})
        return target
    cache.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    logger.info("downloading MovieLens-1M", extra={"url": url, "cache": str(cache)})
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as out:  # noqa: S310 - fixed https URL
            shutil.copyfileobj(resp, out, length=1 << 20)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        part.unlink(missing_ok=True)
        raise MovieLensError(
            f"could not download {url}: {exc}. Without network, fetch it elsewhere and pass its path "
            f"(or an s3:// prefix holding it) as the source, or put it at {target}."
        ) from exc
    if not zipfile.is_zipfile(part):
        part.unlink(missing_ok=True)
        raise MovieLensError(f"download from {url} is not a zip archive (proxy or error page?)")
    part.replace(target)
    return target


def resolve(
    source: str, download_ok: bool, cache_dir: str | Path
) -> tuple[dict[str, bytes], dict[str, Any]]:
    if source and objectstore.is_s3(source):
        files, kind, extra = _from_s3(source)
    elif source and Path(source).is_dir():
        files, kind, extra = _from_folder(Path(source))
    elif source and Path(source).is_file():
        blob = Path(source).read_bytes()
        files, kind, extra = _from_zip(blob, source), "zip", {"zip_sha256": _sha(blob)}
    elif download_ok:
        path = download(cache_dir)
        blob = path.read_bytes()
        files, kind, extra = (
            _from_zip(blob, str(path)),
            "download",
            {"zip_sha256": _sha(blob), "url": DOWNLOAD_URL},
        )
        extra["path"] = str(path)
    else:
        raise MovieLensError(
            f"MovieLens source {source!r} does not exist (expected a folder, an ml-1m.zip or an s3:// prefix; "
            "pass download=True / --download to fetch the official archive)"
        )
    desc: dict[str, Any] = {"uri": source or DOWNLOAD_URL, "kind": kind, **extra}
    desc["files"] = {name: {"bytes": len(b), "sha256": _sha(b)} for name, b in files.items()}
    return files, desc
