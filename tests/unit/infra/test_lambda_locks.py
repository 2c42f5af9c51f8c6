"""The Lambda lock files (infra/lambda/<fn>.lock) stay in step with pyproject.toml and the runtime."""

from __future__ import annotations

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from infra import lambda_build, stage_lambdas


def _pins(pkg: stage_lambdas.Package) -> dict[str, Version]:
    return {canonicalize_name(k): Version(v) for k, v in stage_lambdas.read_lock(pkg).items()}


@pytest.mark.parametrize("name", sorted(p.name for p in stage_lambdas.PACKAGES.values()))
def test_every_requirement_is_pinned_within_its_range(name: str) -> None:
    pkg = next(p for p in stage_lambdas.PACKAGES.values() if p.name == name)
    pins = _pins(pkg)
    for line in stage_lambdas.requirements(pkg) + list(pkg.add):
        req = Requirement(line)
        dist = canonicalize_name(req.name)
        assert dist in pins, f"{name}.lock lacks {dist} (python -m infra.stage_lambdas --lock)"
        assert req.specifier.contains(pins[dist], prereleases=True), f"{name}.lock: {dist}=={pins[dist]} not {req}"
    # pandas is never a requirement of ours, but pymilvus requires (and imports) it: shipped where pymilvus is
    never = stage_lambdas.FORBIDDEN - {"pandas"} | {"milvus-lite", "boto3", "botocore", "s3transfer"}
    forbidden = {canonicalize_name(f) for f in never}
    assert not set(pins) & forbidden, set(pins) & forbidden
    if "pymilvus" not in pins:
        assert "pandas" not in pins


def test_mysql_clients_ship_cryptography_for_sha2_auth() -> None:
    for key in ("build/lambda/api/", "build/lambda/loader/", "build/lambda/events_export/"):
        assert "cryptography" in _pins(stage_lambdas.PACKAGES[key])


def test_shipped_dependencies_of_botocore_stay_within_its_ranges() -> None:
    """/var/task comes first on sys.path: a shipped python-dateutil 3+ or urllib3 3+ would break the
    runtime's boto3."""
    for pkg in stage_lambdas.PACKAGES.values():
        pins = _pins(pkg)
        if "python-dateutil" in pins:
            assert pins["python-dateutil"] < Version("3")
        if "urllib3" in pins:
            assert pins["urllib3"] < Version("3")


def test_the_platform_tags_are_those_of_amazon_linux_2023() -> None:
    tags = lambda_build.PLATFORMS
    assert tags[0] == "manylinux_2_34_x86_64"  # glibc 2.34
    assert not any(t.startswith(("manylinux_2_35", "manylinux_2_36", "manylinux_2_39")) for t in tags)
    assert lambda_build.PYTHON_VERSION == "3.12"
