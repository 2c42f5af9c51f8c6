"""Helpers that unit, integration, browser tests and bench/ share (never a test module themselves):

- factories.py  make_run / FakeRun: a valid run folder with planted embeddings (local or s3://)
- live.py       a run loaded live for the API, API Gateway events, a uvicorn server in a thread, free ports
- synth.py      a tiny synthetic ratings dataset for the training-model tests
"""
