"""Tiny object-storage layer: the same calls for local folders and s3:// URIs.

Why not awswrangler/fsspec here: this module is imported by the loader Lambda, which must stay small;
boto3 is already in the Lambda runtime and honours AWS_ENDPOINT_URL (moto, LocalStack, MinIO).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """'s3://bucket/a/b' -> ('bucket', 'a/b')."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def join(base: str, *parts: str) -> str:
    """Join path segments onto a local path or s3:// URI."""
    if is_s3(base):
        out = base.rstrip("/")
        for p in parts:
            out = f"{out}/{p.strip('/')}"
        return out
    return str(Path(base, *parts))


def parent(uri: str) -> str:
    if is_s3(uri):
        return uri.rstrip("/").rsplit("/", 1)[0]
    return str(Path(uri).parent)


def basename(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


@lru_cache(maxsize=1)
def s3_client() -> Any:
    """One boto3 S3 client per process (created lazily; endpoint from AWS_ENDPOINT_URL[_S3])."""
    import boto3

    from shared.config.settings import get_settings

    settings = get_settings()
    endpoint = settings.aws_endpoint_url_s3 or settings.aws_endpoint_url or None
    return boto3.client("s3", endpoint_url=endpoint)


def read_bytes(uri: str) -> bytes:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]
    return Path(uri).read_bytes()


def write_bytes(uri: str, data: bytes) -> None:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        s3_client().put_object(Bucket=bucket, Key=key, Body=data)
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # atomic on POSIX: readers never see half a file


def upload_file(local_path: str | Path, uri: str) -> None:
    """Copy a local file to `uri` (multipart upload on S3 for big files)."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        s3_client().upload_file(str(local_path), bucket, key)
        return
    dest = Path(uri)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.copyfile(local_path, tmp)
    tmp.replace(dest)


def open_read(uri: str) -> BinaryIO:
    """A readable binary stream (streams from S3 without loading the whole object)."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        return s3_client().get_object(Bucket=bucket, Key=key)["Body"]  # type: ignore[no-any-return]
    return open(uri, "rb")  # noqa: SIM115 - caller closes


def exists(uri: str) -> bool:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        from botocore.exceptions import ClientError

        try:
            s3_client().head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
    return Path(uri).exists()


def list_uris(prefix: str) -> Iterator[str]:
    """Every object/file under `prefix` (recursive), as full URIs."""
    if is_s3(prefix):
        bucket, key = split_s3(prefix)
        key = key.rstrip("/") + "/" if key else ""
        paginator = s3_client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=key):
            for obj in page.get("Contents", []):
                yield f"s3://{bucket}/{obj['Key']}"
        return
    root = Path(prefix)
    if root.is_dir():
        for p in sorted(root.rglob("*")):
            if p.is_file():
                yield str(p)


def delete_prefix(prefix: str) -> None:
    if is_s3(prefix):
        bucket, _ = split_s3(prefix)
        keys = [split_s3(u)[1] for u in list_uris(prefix)]
        for i in range(0, len(keys), 1000):
            s3_client().delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]})
        return
    shutil.rmtree(prefix, ignore_errors=True)
