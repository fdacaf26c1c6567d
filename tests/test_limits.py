"""DecodeLimits: defaults, environment overrides, validation (pure, no ffmpeg)."""

from __future__ import annotations

import dataclasses

import pytest

from diarization.limits import DecodeLimits, default_decode_timeout_s


def test_defaults() -> None:
    limits = DecodeLimits()

    assert limits.max_file_bytes == 2 * 1024**3
    assert limits.max_duration_s == 6 * 3600
    assert limits.max_channels == 32
    assert limits.decode_timeout_s == 600


def test_from_env_without_variables_gives_the_defaults() -> None:
    assert DecodeLimits.from_env({}) == DecodeLimits()


def test_empty_variables_keep_the_defaults() -> None:
    env = dict.fromkeys(
        [
            "DIARIZATION_MAX_FILE_BYTES",
            "DIARIZATION_MAX_DURATION_S",
            "DIARIZATION_MAX_CHANNELS",
            "DIARIZATION_DECODE_TIMEOUT_S",
        ],
        " ",
    )
    assert DecodeLimits.from_env(env) == DecodeLimits()


def test_each_variable_overrides_its_limit() -> None:
    env = {
        "DIARIZATION_MAX_FILE_BYTES": "1000000",
        "DIARIZATION_MAX_DURATION_S": "90.5",
        "DIARIZATION_MAX_CHANNELS": "2",
        "DIARIZATION_DECODE_TIMEOUT_S": "12",
    }

    assert DecodeLimits.from_env(env) == DecodeLimits(
        max_file_bytes=1_000_000, max_duration_s=90.5, max_channels=2, decode_timeout_s=12.0
    )


def test_from_env_reads_os_environ_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIARIZATION_MAX_CHANNELS", "4")

    assert DecodeLimits.from_env().max_channels == 4


@pytest.mark.parametrize(
    ("max_duration_s", "timeout_s"),
    [(6 * 3600, 600), (24 * 3600, 2400), (3600, 100), (600, 60), (1, 60)],
)
def test_timeout_follows_the_duration_limit_unless_set(
    max_duration_s: float, timeout_s: float
) -> None:
    assert default_decode_timeout_s(max_duration_s) == timeout_s
    assert DecodeLimits(max_duration_s=max_duration_s).decode_timeout_s == timeout_s
    env = {"DIARIZATION_MAX_DURATION_S": str(max_duration_s)}
    assert DecodeLimits.from_env(env).decode_timeout_s == timeout_s


def test_an_explicit_timeout_wins_over_the_derived_one() -> None:
    env = {"DIARIZATION_MAX_DURATION_S": "86400", "DIARIZATION_DECODE_TIMEOUT_S": "30"}

    assert DecodeLimits.from_env(env).decode_timeout_s == 30


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DIARIZATION_MAX_FILE_BYTES", "2GB", "must be a positive integer, got '2GB'"),
        ("DIARIZATION_MAX_FILE_BYTES", "1.5", "must be a positive integer, got '1.5'"),
        ("DIARIZATION_MAX_CHANNELS", "0", "must be a positive integer, got '0'"),
        ("DIARIZATION_MAX_DURATION_S", "-1", "must be a positive finite number, got '-1'"),
        ("DIARIZATION_MAX_DURATION_S", "inf", "must be a positive finite number, got 'inf'"),
        ("DIARIZATION_DECODE_TIMEOUT_S", "nan", "must be a positive finite number, got 'nan'"),
        ("DIARIZATION_DECODE_TIMEOUT_S", "ten", "must be a positive finite number, got 'ten'"),
    ],
)
def test_malformed_variables_name_the_variable_and_value(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(ValueError) as excinfo:
        DecodeLimits.from_env({name: value})

    assert str(excinfo.value) == f"{name} {message}"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_file_bytes", 0),
        ("max_file_bytes", 1.5),
        ("max_channels", True),
        ("max_duration_s", -1.0),
        ("max_duration_s", float("inf")),
        ("decode_timeout_s", 0),
    ],
)
def test_constructor_rejects_non_positive_or_mistyped_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"DecodeLimits.{field} must be a positive"):
        DecodeLimits(**{field: value})


def test_limits_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DecodeLimits().max_channels = 64  # type: ignore[misc]
