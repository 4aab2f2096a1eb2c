"""The model core, framework-free: a turn's features, the ONNX bundle, the policy and its costs.

Nothing here imports FastAPI or Starlette (tests/test_layering.py checks); router.http serves it.
"""
