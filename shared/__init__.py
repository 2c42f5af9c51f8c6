"""Code used on both sides of the Lambda boundary: settings, artefact format, stores, schemas.

Keep this package light: nothing here may import torch, dgl, pandas or awswrangler at module level,
because the API Lambda imports it on every cold start.
"""
