"""The device-side agent: ``Agent`` in ``devices.agent.client``, the CLI in ``devices.agent.cli``.

Standard library HTTP, onnxruntime, numpy and cryptography only; no Django.
"""
