"""A stand-in for the Lambda context object, for calling a handler in-process (tests, `evaluate --handler`).

Mangum and Powertools read these attributes; AWS passes the real object in a deployed function.
"""

from __future__ import annotations


class LocalLambdaContext:
    """The attributes Mangum and Powertools read from the Lambda context object."""

    function_name = "graphrec-api"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:graphrec-api"
    memory_limit_in_mb = 512
    aws_request_id = "lambda-req-1"
    log_group_name = "/aws/lambda/graphrec-api"
    log_stream_name = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000
