"""App versions and version ranges for targeting rules.

Versions: ``MAJOR[.MINOR[.PATCH]][-PRERELEASE][+BUILD]`` (no leading zeros) with an optional
leading ``v``. Missing parts are zero ("2.3" is 2.3.0). Ordering follows
semver 2.0.0: a prerelease sorts before its release, identifiers compare
numerically when both are numbers, numbers before words, and a longer list of
identifiers wins when the shorter one is its prefix. Build metadata is ignored.

Ranges: comparators joined by ``,`` (and) and ``||`` (or):

- ``>=2.3``, ``>2.3``, ``<=2.3``, ``<3``, ``==2.3.1`` (also ``=``), ``!=2.3.1``;
  a bare version such as ``2.3.1`` means ``==``. Partial versions are filled
  with zeros, like versions are, so ``>2.3`` matches 2.3.1.
- ``~2.3`` = ``>=2.3.0,<2.4.0``; ``~2`` = ``>=2.0.0,<3.0.0``.
- ``^1.2`` = ``>=1.2.0,<2.0.0``; ``^0.2.3`` = ``>=0.2.3,<0.3.0``; ``^0.0.3`` =
  ``>=0.0.3,<0.0.4`` (npm's caret).
- ``2.x``, ``2.3.x`` (``*`` works for ``x``), ``*`` for any version.

Prereleases are plain points on the order, so ``>=2.3`` matches 2.4.0-beta.1,
with one exception borrowed from pip and npm: an exclusive upper bound on a
release (``<3``, and the upper ends of ``~``, ``^`` and ``x``) also excludes
that release's prereleases, so ``<3`` does not match 3.0.0-beta.1. Write
``<3.0.0-rc.1`` to let earlier prereleases of 3.0.0 in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import total_ordering

_VERSION_RE = re.compile(
    r"""^v?
    (?P<major>0|[1-9]\d*)
    (?:\.(?P<minor>0|[1-9]\d*))?
    (?:\.(?P<patch>0|[1-9]\d*))?
    (?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?
    (?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?
    $""",
    re.VERBOSE | re.IGNORECASE | re.ASCII,
)
_WILDCARD_RE = re.compile(r"^v?(?:(?P<major>0|[1-9]\d*)\.)?(?:(?P<minor>0|[1-9]\d*)\.)?[x*]$", re.IGNORECASE | re.ASCII)
_OPERATORS = (">=", "<=", "==", "!=", ">", "<", "=", "~", "^")
_VERSION_HELP = "expected MAJOR[.MINOR[.PATCH]][-PRERELEASE], e.g. 2.3, 2.3.1 or 2.3.1-beta.2"
_RANGE_HELP = "use comparators like >=2.3,<3 or ~2.3, ^1.2, ==2.3.1, 2.x, *"


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int = 0
    patch: int = 0
    prerelease: tuple[str, ...] = ()
    build: str = field(default="", compare=False)

    def _sort_key(self) -> tuple:
        # A release (no prerelease) sorts after every prerelease of the same core.
        if not self.prerelease:
            return (self.major, self.minor, self.patch, 1, ())
        identifiers = tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in self.prerelease)
        return (self.major, self.minor, self.patch, 0, identifiers)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._sort_key() == other._sort_key()

    def __lt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._sort_key() < other._sort_key()

    def __hash__(self) -> int:
        return hash(self._sort_key())

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + self.build
        return text

    def lowest_prerelease(self) -> Version:
        """The smallest version with this core (``X.Y.Z-0``): the bound that keeps its prereleases out."""
        return Version(self.major, self.minor, self.patch, ("0",))


def parse_version(text: str) -> Version:
    """Parse an app version; raises ``ValueError`` saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"version must be a string, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"version is empty; {_VERSION_HELP}")
    match = _VERSION_RE.match(stripped)
    if match is None:
        raise ValueError(f"invalid version {text!r}: {_VERSION_HELP}")
    prerelease = tuple(match["pre"].split(".")) if match["pre"] else ()
    for part in prerelease:
        if part.isdigit() and len(part) > 1 and part.startswith("0"):
            raise ValueError(f"invalid version {text!r}: numeric prerelease part {part!r} has a leading zero")
    return Version(
        int(match["major"]),
        int(match["minor"] or 0),
        int(match["patch"] or 0),
        prerelease,
        match["build"] or "",
    )


@dataclass(frozen=True)
class Interval:
    """Versions between two bounds (``None`` = unbounded) minus ``excluded`` points."""

    lower: Version | None = None
    lower_inclusive: bool = True
    upper: Version | None = None
    upper_inclusive: bool = False
    excluded: frozenset[Version] = frozenset()

    def contains(self, version: Version) -> bool:
        if self.lower is not None and (version < self.lower or (version == self.lower and not self.lower_inclusive)):
            return False
        if self.upper is not None and (version > self.upper or (version == self.upper and not self.upper_inclusive)):
            return False
        return version not in self.excluded

    def covers(self, other: Interval) -> bool:
        """Whether every version in ``other`` is in ``self`` (exact for intervals, ignoring ``other``'s holes)."""
        if self.lower is not None:
            if other.lower is None or other.lower < self.lower:
                return False
            if other.lower == self.lower and other.lower_inclusive and not self.lower_inclusive:
                return False
        if self.upper is not None:
            if other.upper is None or other.upper > self.upper:
                return False
            if other.upper == self.upper and other.upper_inclusive and not self.upper_inclusive:
                return False
        # A hole of ours that lies inside ``other`` (and is not one of its holes) breaks the cover.
        return not any(other.contains(point) for point in self.excluded)

    def intersect(self, other: Interval) -> Interval:
        lower, lower_inclusive = self.lower, self.lower_inclusive
        if other.lower is not None and (
            lower is None or other.lower > lower or (other.lower == lower and not other.lower_inclusive)
        ):
            lower, lower_inclusive = other.lower, other.lower_inclusive
        upper, upper_inclusive = self.upper, self.upper_inclusive
        if other.upper is not None and (
            upper is None or other.upper < upper or (other.upper == upper and not other.upper_inclusive)
        ):
            upper, upper_inclusive = other.upper, other.upper_inclusive
        return Interval(lower, lower_inclusive, upper, upper_inclusive, self.excluded | other.excluded)


@dataclass(frozen=True)
class VersionRange:
    """A parsed range: a version matches when any interval holds it."""

    text: str
    intervals: tuple[Interval, ...]

    def contains(self, version: Version | str) -> bool:
        if isinstance(version, str):
            version = parse_version(version)
        return any(interval.contains(version) for interval in self.intervals)

    def __str__(self) -> str:
        return self.text


def parse_range(text: str) -> VersionRange:
    """Parse a range; raises ``ValueError`` naming the bad part. Empty text is an error (callers treat "" as any)."""
    if not isinstance(text, str):
        raise ValueError(f"version range must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"version range is empty; {_RANGE_HELP}")
    intervals = []
    for alternative in text.split("||"):
        interval = Interval()
        comparators = [part.strip() for part in alternative.split(",")]
        if not any(comparators) or not all(comparators):
            raise ValueError(f"invalid version range {text!r}: empty comparator; {_RANGE_HELP}")
        for comparator in comparators:
            interval = interval.intersect(_parse_comparator(comparator, text))
        intervals.append(interval)
    return VersionRange(text.strip(), tuple(intervals))


def matches(version: str, range_text: str) -> bool:
    """Whether ``version`` is in ``range_text``; both are parsed, so both may raise ``ValueError``."""
    return parse_range(range_text).contains(parse_version(version))


def range_covers(outer: VersionRange, inner: VersionRange) -> bool:
    """Whether every version in ``inner`` is in ``outer``; conservative: may say False for true covers.

    Each of ``inner``'s intervals must fit inside a single interval of ``outer``,
    so ``>=1,<2 || >=2`` does not cover ``>=1.5,<2.5`` although it could.
    """
    return all(any(o.covers(i) for o in outer.intervals) for i in inner.intervals)


def _parse_comparator(comparator: str, whole: str) -> Interval:
    if comparator in ("*", "x", "X"):
        return Interval()
    operator = next((op for op in _OPERATORS if comparator.startswith(op)), "")
    operand = comparator[len(operator) :].strip()
    wildcard = _WILDCARD_RE.match(operand)
    if wildcard is not None:
        if operator:
            raise ValueError(f"invalid version range {whole!r}: {comparator!r} mixes {operator} with a wildcard")
        return _wildcard_interval(wildcard["major"], wildcard["minor"])
    if operand and operand[0] in "<>=!~^":
        raise ValueError(f"invalid version range {whole!r}: unknown operator in {comparator!r}; {_RANGE_HELP}")
    match = _VERSION_RE.match(operand)
    if match is None:
        raise ValueError(f"invalid version range {whole!r}: {operand!r} is not a version; {_RANGE_HELP}")
    version = parse_version(operand)
    if operator in ("", "=", "=="):
        return Interval(version, True, version, True)
    if operator == "!=":
        return Interval(excluded=frozenset({version}))
    if operator == ">=":
        return Interval(lower=version, lower_inclusive=True)
    if operator == ">":
        return Interval(lower=version, lower_inclusive=False)
    if operator == "<=":
        return Interval(upper=version, upper_inclusive=True)
    if operator == "<":
        # pip/npm rule: "<3" keeps 3.0.0's prereleases out too.
        return Interval(upper=version if version.prerelease else version.lowest_prerelease())
    given = sum(1 for part in ("major", "minor", "patch") if match[part] is not None)
    if operator == "~":
        upper = Version(version.major + 1) if given == 1 else Version(version.major, version.minor + 1)
    else:  # "^": bump the leftmost non-zero part among those given
        if version.major > 0 or given == 1:
            upper = Version(version.major + 1)
        elif version.minor > 0 or given == 2:
            upper = Version(0, version.minor + 1)
        else:
            upper = Version(0, 0, version.patch + 1)
    return Interval(lower=version, lower_inclusive=True, upper=upper.lowest_prerelease())


def _wildcard_interval(major: str | None, minor: str | None) -> Interval:
    if major is None:
        return Interval()
    if minor is None:
        return Interval(Version(int(major)), True, Version(int(major) + 1).lowest_prerelease())
    return Interval(Version(int(major), int(minor)), True, Version(int(major), int(minor) + 1).lowest_prerelease())
