import re
from pathlib import Path

import pytest

from app import create_app
from app.config import ConfigError, load_settings, setting_names

ROOT = Path(__file__).resolve().parent.parent


def test_production_without_secret_key_fails_naming_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="KAIDOKI_SECRET_KEY is required"):
        load_settings({"KAIDOKI_BASE_URL": "https://shop.example"}, tmp_path)


def test_production_without_base_url_fails(tmp_path):
    with pytest.raises(ConfigError, match="KAIDOKI_BASE_URL is required"):
        load_settings({"KAIDOKI_SECRET_KEY": "x" * 40}, tmp_path)


def test_short_secret_key_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="at least 32 characters"):
        load_settings(
            {"KAIDOKI_SECRET_KEY": "short", "KAIDOKI_BASE_URL": "https://a.example"}, tmp_path
        )


def test_every_bad_variable_is_reported_at_once(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(
            {
                "KAIDOKI_ENV": "test",
                "KAIDOKI_DEFAULT_TIMEZONE": "Nowhere/City",
                "KAIDOKI_BASE_URL": "ftp:x",
            },
            tmp_path,
        )
    message = str(info.value)
    assert "KAIDOKI_DEFAULT_TIMEZONE" in message
    assert "KAIDOKI_BASE_URL" in message


def test_demo_generates_and_keeps_a_secret_key(tmp_path):
    first = load_settings({"KAIDOKI_ENV": "demo"}, tmp_path)
    second = load_settings({"KAIDOKI_ENV": "demo"}, tmp_path)
    assert len(first.secret_key) >= 32
    assert first.secret_key == second.secret_key


def test_default_database_is_a_sqlite_file_in_the_instance_folder(tmp_path):
    settings = load_settings({"KAIDOKI_ENV": "demo"}, tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path / 'kaidoki.sqlite3'}"
    assert settings.default_timezone == "Asia/Tokyo"


def test_plain_postgresql_url_uses_psycopg3(tmp_path):
    settings = load_settings(
        {"KAIDOKI_ENV": "demo", "KAIDOKI_DATABASE_URL": "postgresql://u@h/db"}, tmp_path
    )
    assert settings.database_url == "postgresql+psycopg://u@h/db"


def test_create_app_refuses_bad_configuration(tmp_path):
    with pytest.raises(ConfigError):
        create_app({"KAIDOKI_ENV": "staging"}, instance_path=str(tmp_path))


def test_readme_configuration_table_lists_every_setting_in_order():
    readme = (ROOT / "README.md").read_text()
    documented = re.findall(r"^\| `(KAIDOKI_[A-Z_]+)` \|", readme, flags=re.MULTILINE)
    assert documented == setting_names()


@pytest.mark.parametrize("mail_from", ["no-reply", "買い時 <no-reply@-例え.jp>", "Shop <>"])
def test_a_sender_that_is_no_email_address_is_refused(tmp_path, mail_from):
    with pytest.raises(ConfigError, match="KAIDOKI_MAIL_FROM must be an email address"):
        load_settings({"KAIDOKI_ENV": "test", "KAIDOKI_MAIL_FROM": mail_from}, tmp_path)


def test_a_sender_may_have_a_name_in_japanese(tmp_path):
    environ = {"KAIDOKI_ENV": "test", "KAIDOKI_MAIL_FROM": "買い時 <no-reply@例え.jp>"}
    settings = load_settings(environ, tmp_path)
    assert settings.mail_from == "買い時 <no-reply@例え.jp>"
