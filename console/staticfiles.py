"""Static files: storage that hashes and compresses what collectstatic writes.

Hashed names (``console.3f2a….css``) let whitenoise tell browsers to keep a file forever; a changed file gets a
new name. ``collectstatic`` also writes a gzip copy of each text file, which whitenoise sends to browsers that
accept it (plotly-basic.min.js: 1.2 MB -> 0.4 MB).
"""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class ConsoleStaticStorage(CompressedManifestStaticFilesStorage):
    """Hashed and compressed once ``collectstatic`` ran (``make run`` and the test session run it).

    Before that (a fresh checkout started by hand), a page still renders: the plain name is used and whitenoise
    serves the file from its app folder (``WHITENOISE_USE_FINDERS``), just without the long cache lifetime.
    """

    def stored_name(self, name):
        try:
            return super().stored_name(name)
        except ValueError:  # no manifest entry, and the file is not in STATIC_ROOT either
            return name
