"""Static files: plotly.js from the plotly wheel, and storage that hashes and compresses what collectstatic writes.

Hashed names (``console.3f2a….css``) let whitenoise tell browsers to keep a file forever; a changed file gets a
new name. ``collectstatic`` also writes a gzip copy of each text file, which whitenoise sends to browsers that
accept it (plotly.min.js: 4.6 MB -> 1.4 MB).
"""

from __future__ import annotations

from pathlib import Path

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage
from whitenoise.storage import CompressedManifestStaticFilesStorage

PLOTLY_JS = "plotly.min.js"
PLOTLY_PREFIX = "vendor/plotly"


class PlotlyFinder(BaseFinder):
    """``vendor/plotly/plotly.min.js``: the plotly.js the server's plotly release was built with, so charts need
    no CDN. Only that file: the wheel's folder also holds a 4.8 MB widget bundle and datasets pages never use."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=Path(plotly.__file__).parent / "package_data")
        self.storage.prefix = PLOTLY_PREFIX  # read by collectstatic

    def find(self, path, find_all=False, **kwargs):
        if path != f"{PLOTLY_PREFIX}/{PLOTLY_JS}":
            return [] if find_all else None
        found = self.storage.path(PLOTLY_JS)
        return [found] if find_all else found

    def list(self, ignore_patterns):
        yield PLOTLY_JS, self.storage


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
