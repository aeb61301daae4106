import os
import stat
from pathlib import Path

import pytest

from node.config import (
    CONFIG_FILENAME,
    ConfigError,
    default_database_url,
    load_settings,
    new_settings,
    normalize_base_url,
    write_settings,
)


def make(tmp_path: Path, **overrides: object):
    values = {"url": "https://lille.example/", "name": "Lille"} | overrides
    return new_settings(tmp_path, **values)  # type: ignore[arg-type]


def test_round_trip_through_the_toml_file(tmp_path: Path) -> None:
    settings = make(tmp_path, description="Les communs", chamber_username="lille")
    path = write_settings(settings)
    loaded = load_settings(tmp_path, environ={})
    assert loaded == settings
    assert loaded.url == "https://lille.example"
    assert loaded.host == "lille.example"
    assert loaded.database_url == default_database_url(tmp_path)
    assert path.name == CONFIG_FILENAME


def test_the_file_holding_the_secret_is_private(tmp_path: Path) -> None:
    path = write_settings(make(tmp_path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_the_default_database_follows_the_data_dir(tmp_path: Path) -> None:
    write_settings(make(tmp_path / "a"))
    (tmp_path / "a").rename(tmp_path / "b")
    moved = load_settings(tmp_path / "b", environ={})
    assert moved.database_url == default_database_url(tmp_path / "b")


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    write_settings(make(tmp_path))
    env = {
        "ARCHIPEL_NAME": "Gand",
        "ARCHIPEL_ALLOW_PRIVATE_ADDRESSES": "true",
        "ARCHIPEL_DATABASE_URL": "postgresql://u@db/archipel",
        "ARCHIPEL_MAX_BODY_BYTES": "2048",
    }
    loaded = load_settings(tmp_path, environ=env)
    assert loaded.name == "Gand"
    assert loaded.allow_private_addresses is True
    assert loaded.database_url == "postgresql://u@db/archipel"
    assert loaded.max_body_bytes == 2048


def test_private_addresses_are_refused_by_default(tmp_path: Path) -> None:
    write_settings(make(tmp_path))
    assert load_settings(tmp_path, environ={}).allow_private_addresses is False


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ARCHIPEL_ALLOW_PRIVATE_ADDRESSES": "maybe"}, "expected true or false"),
        ({"ARCHIPEL_MAX_BODY_BYTES": "lots"}, "expected an integer"),
        ({"ARCHIPEL_URL": "ftp://lille.example"}, "is not an http(s) URL"),
        ({"ARCHIPEL_URL": "https://lille.example/archipel"}, "must be the root of a host"),
        ({"ARCHIPEL_SECRET_KEY": "short"}, "at least 32 characters"),
        ({"ARCHIPEL_LANGUAGE": "de"}, "language"),
        ({"ARCHIPEL_CHAMBER_USERNAME": "Not Valid"}, "chamber_username"),
    ],
)
def test_bad_values_are_refused_with_the_key_named(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    write_settings(make(tmp_path))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(tmp_path, environ=env)


def test_missing_file_says_to_run_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="archipel init"):
        load_settings(tmp_path, environ={})


def test_broken_toml_is_reported(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILENAME).write_text("url = [unclosed")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(tmp_path, environ={})


def test_unknown_keys_are_kept_for_later_versions(tmp_path: Path) -> None:
    write_settings(make(tmp_path))
    path = tmp_path / CONFIG_FILENAME
    path.write_text(path.read_text() + 'future_option = "x"\n')
    loaded = load_settings(tmp_path, environ={})
    assert loaded.extra == {"future_option": "x"}
    write_settings(loaded)
    assert 'future_option = "x"' in path.read_text()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://Lille.Example/", "https://lille.example"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ],
)
def test_base_url_normalisation(given: str, expected: str) -> None:
    assert normalize_base_url(given) == expected


def test_each_new_chamber_gets_its_own_secret(tmp_path: Path) -> None:
    assert make(tmp_path / "a").secret_key != make(tmp_path / "b").secret_key


def test_smtp_settings_from_the_file_and_the_environment(tmp_path: Path) -> None:
    write_settings(make(tmp_path))
    plain = load_settings(tmp_path, environ={})
    assert not plain.smtp_configured and plain.smtp_port == 587 and plain.smtp_starttls
    env = {
        "ARCHIPEL_SMTP_HOST": "mail.lille.example",
        "ARCHIPEL_SMTP_PORT": "465",
        "ARCHIPEL_SMTP_USERNAME": "chambre",
        "ARCHIPEL_SMTP_PASSWORD": "s3cret",
        "ARCHIPEL_SMTP_FROM": "chambre@lille.example",
        "ARCHIPEL_SMTP_STARTTLS": "false",
    }
    mail = load_settings(tmp_path, environ=env)
    assert mail.smtp_configured and mail.smtp_host == "mail.lille.example"
    assert (mail.smtp_port, mail.smtp_username, mail.smtp_password) == (465, "chambre", "s3cret")
    assert mail.smtp_from == "chambre@lille.example" and mail.smtp_starttls is False
    for bad, key in [
        ({"ARCHIPEL_SMTP_FROM": ""}, "smtp_from"),
        ({"ARCHIPEL_SMTP_PORT": "0"}, "smtp_port"),
        ({"ARCHIPEL_SMTP_PASSWORD": ""}, "smtp_username and smtp_password"),
    ]:
        with pytest.raises(ConfigError, match=key):
            load_settings(tmp_path, environ=env | bad)
