"""Helpers that unit, integration, browser tests and bench/ share (never a test module themselves):

- factories.py  make_run / FakeRun: a valid run folder with planted embeddings (local or s3://)
- live.py       a run loaded live for the API, API Gateway events, a uvicorn server in a thread
- servers.py    free ports, waiting for a server process to answer, stopping it, `milvus-lite server`
- logs.py       the JSON log lines of a fresh Python process
- synth.py      a tiny synthetic ratings dataset for the training-model tests
"""
