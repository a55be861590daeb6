from pathlib import Path

from sqlmodel import col

from app.db import get_session
from app.models import Customer, Order, Plan
from tests.admin.conftest import sign_in


def test_demo_load_fills_an_empty_database_and_writes_a_key(app, runner):
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert (Path(app.instance_path) / "demo_api_key").read_text().strip() == key
    with app.app_context():
        session = get_session()
        assert session.query(Customer).count() == 60
        assert session.query(Order).count() > 500
        assert session.query(Plan).filter(col(Plan.n_purchases) >= 2).count() > 50


def test_demo_load_if_empty_leaves_existing_data_alone(app, runner):
    runner.invoke(args=["demo", "load"])
    with app.app_context():
        orders = get_session().query(Order).count()
    result = runner.invoke(args=["demo", "load", "--if-empty"])
    assert result.exit_code == 0
    assert "already has data" in result.output
    with app.app_context():
        assert get_session().query(Order).count() == orders


def test_demo_load_refuses_a_non_empty_database(runner):
    runner.invoke(args=["demo", "load"])
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code != 0


def test_demo_load_makes_an_operator_who_can_sign_in(app, runner):
    result = runner.invoke(args=["demo", "load"])
    assert "sign in as admin@example.jp" in result.output
    password = (Path(app.instance_path) / "demo_admin_password").read_text().strip()
    client = app.test_client()
    assert sign_in(client, "admin@example.jp", password).status_code == 302
    assert "admin@example.jp (operator)" in client.get("/admin/").text
