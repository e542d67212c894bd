"""The device-side agent: ``Agent`` in ``devices.agent.client`` (wiring ``state``, ``delivery`` and
``inference``), the CLI in ``devices.agent.cli``, the fleet simulator in ``devices.agent.simulate``.

Standard library HTTP, onnxruntime, numpy and cryptography only, plus the pure ``devices.core`` and
``devices.catalog.builtin``; no Django.
"""
