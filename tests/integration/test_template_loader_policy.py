"""Issue 10: the loader's role reads run folders only (runs/ prefix), not the whole bucket."""

from __future__ import annotations

import json

from infra.sam_template import functions


def test_loader_s3_access_is_read_only_and_limited_to_the_runs_prefix() -> None:
    loader = functions()["LoaderFunction"]
    policies = loader.properties["Policies"]
    text = json.dumps(policies)
    assert "S3ReadPolicy" not in text and "S3CrudPolicy" not in text  # SAM templates granting the whole bucket
    statements = [st for p in policies if isinstance(p, dict) and "Statement" in p for st in p["Statement"]]
    s3 = [st for st in statements if any(str(a).startswith("s3:") for a in _list(st["Action"]))]
    assert s3, "the loader must still be able to read run folders"
    for st in s3:
        assert st["Effect"] == "Allow" and set(_list(st["Action"])) <= {"s3:GetObject", "s3:ListBucket"}
        resource = st["Resource"]["Fn::Sub"] if isinstance(st["Resource"], dict) else st["Resource"]
        assert resource.startswith("arn:${AWS::Partition}:s3:::graphrec-${Stage}-")
        if "s3:GetObject" in _list(st["Action"]):
            assert resource.endswith("/runs/*")
        else:  # unconditioned: a missing run file must be a 404 (needs s3:ListBucket), not a 403
            assert "Condition" not in st


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else [value]
