"""The operator schemas and kernels of onnxruntime releases: recorded data files, and the server's own, read live.

``record.py`` writes a release's registry from its real wheel; ``published_table.py`` turns a release's published
kernel table into the same shape where the registry cannot be listed here (CUDA without a GPU); ``load.py`` gives
the checker one ``Registry`` per release, whichever way it was obtained.
"""
