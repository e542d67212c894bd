from __future__ import annotations

import pytest

from devices.core.semver import Version, matches, parse_range, parse_version, range_covers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.3", Version(2, 3, 0)),
        ("2.3.1", Version(2, 3, 1)),
        ("v2.3", Version(2, 3, 0)),
        ("V2", Version(2, 0, 0)),
        ("2.3.1-beta.2", Version(2, 3, 1, ("beta", "2"))),
        (" 2.3.1+build.7 ", Version(2, 3, 1)),
    ],
)
def test_parse_version__reads_app_versions(text: str, expected: Version) -> None:
    assert parse_version(text) == expected


@pytest.mark.parametrize("text", ["", "2.", "2.3.1.4", "2.03", "abc", "2.3-", "2.3.1-beta..1", "2.3.1-01", "٢.٣"])
def test_parse_version__bad_version__raises_a_message_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match="version"):
        parse_version(text)


def test_parse_version__error_message_shows_the_expected_form() -> None:
    with pytest.raises(ValueError, match=r"invalid version '2\.x\.y': expected MAJOR"):
        parse_version("2.x.y")


def test_version_order__follows_semver_prerelease_rules() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.10.0",
        "2.0.0-0",
        "2.0.0",
    ]
    versions = [parse_version(text) for text in ordered]
    assert sorted(reversed(versions)) == versions


def test_version_equality__ignores_build_metadata_and_missing_zeros() -> None:
    assert parse_version("2.3+a") == parse_version("v2.3.0+b")
    assert len({parse_version("2.3"), parse_version("2.3.0")}) == 1


@pytest.mark.parametrize(
    ("range_text", "inside", "outside"),
    [
        (">=2.3,<3", ["2.3", "2.3.0", "2.9.9", "2.4.0-beta.1"], ["2.2.9", "3.0.0", "3.0.0-beta.1", "2.3.0-rc.1"]),
        ("~2.3", ["2.3.0", "2.3.9"], ["2.4.0", "2.2.0", "2.4.0-alpha"]),
        ("~2", ["2.0.0", "2.9.0"], ["3.0.0", "1.9.9"]),
        ("^1.2", ["1.2.0", "1.99.0"], ["2.0.0", "1.1.9", "2.0.0-rc.1"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "0.2.2"]),
        ("^0.0.3", ["0.0.3"], ["0.0.4"]),
        ("==2.3.1", ["2.3.1", "v2.3.1+build"], ["2.3.2", "2.3.1-beta"]),
        ("2.3.1", ["2.3.1"], ["2.3.0"]),
        ("!=2.3.1", ["2.3.0", "2.3.2"], ["2.3.1"]),
        ("2.x", ["2.0.0", "2.99.99"], ["3.0.0-alpha", "1.9.9"]),
        ("2.3.*", ["2.3.0", "2.3.7"], ["2.4.0"]),
        ("*", ["0.0.1", "99.0.0-alpha"], []),
        (">2.3", ["2.3.1"], ["2.3.0"]),
        ("<=2.3", ["2.3.0", "2.3.0-beta"], ["2.3.1"]),
        ("<3.0.0-rc.1", ["3.0.0-beta.9", "2.9.9"], ["3.0.0-rc.1", "3.0.0"]),
        ("<2 || >=3", ["1.9.9", "3.1.0"], ["2.5.0"]),
        (" >= 2.3 , < 3 ", ["2.5.0"], ["3.0.0"]),
    ],
)
def test_range__matches_exactly_the_versions_it_describes(range_text: str, inside: list, outside: list) -> None:
    for version in inside:
        assert matches(version, range_text), f"{version} should be in {range_text}"
    for version in outside:
        assert not matches(version, range_text), f"{version} should not be in {range_text}"


@pytest.mark.parametrize(
    ("range_text", "message"),
    [
        ("", "empty"),
        (">>2", "unknown operator"),
        ("~=2.3", "unknown operator"),
        (">=2.3,", "empty comparator"),
        ("<2 ||", "empty comparator"),
        (">=2.x", "wildcard"),
        ("abc", "'abc' is not a version"),
        ("2.x.y", "not a version"),
    ],
)
def test_parse_range__bad_range__raises_a_message_naming_the_problem(range_text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_range(range_text)


def test_range_covers__knows_when_one_range_holds_another() -> None:
    def covers(outer: str, inner: str) -> bool:
        return range_covers(parse_range(outer), parse_range(inner))

    assert covers("*", ">=2.3,<3")
    assert covers(">=2", "~2.3")
    assert covers("2.x", "^2.1")
    assert covers(">=2.3,<3", "==2.5.0")
    assert covers(">=2.3,<3 || >=4", "~4.1")
    assert not covers("~2.3", ">=2.3")
    assert not covers(">2.3", ">=2.3")
    assert not covers("!=2.5.0", "2.x")
    assert covers("!=2.5.0", "3.x")
