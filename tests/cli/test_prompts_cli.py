"""``flask prompts send-now``: an operator sends scheduled prompts before their send hour."""

from datetime import UTC, date, datetime, timedelta

from app.db import get_session
from app.models import AuditLog, PromptStatus
from tests.factories import make_plan
from tests.scheduler.helpers import deliver, dispatch, mailbox, prompt_rows

# Midnight in Tokyo: inside the quiet hours, ten hours before the default send hour.
NIGHT = datetime(2026, 11, 19, 15, 0, tzinfo=UTC)


def _two_customers_due_tomorrow_morning(app):
    with app.app_context():
        for customer in ("c-1", "c-2"):
            make_plan(get_session(), customer=customer, prompt_on=date(2026, 11, 20))
        get_session().commit()


def test_send_now_makes_one_customers_prompt_go_out_at_once(app, runner, monkeypatch):
    monkeypatch.setattr("app.cli.ops.utcnow", lambda: NIGHT)
    _two_customers_due_tomorrow_morning(app)
    result = runner.invoke(args=["prompts", "send-now", "--customer", "c-1", "--by", "ops@shop.jp"])
    assert result.exit_code == 0, result.output
    assert "1 prompts due now" in result.output
    dispatch(app, NIGHT)
    deliver(app, NIGHT)
    [message] = mailbox(app)
    assert message["To"].addresses[0].addr_spec == "c-1@example.jp"
    waiting = [p for p in prompt_rows(app) if p.status is PromptStatus.SCHEDULED]
    assert [p.due_at for p in waiting] == [NIGHT + timedelta(hours=10)]  # 10:00 in Tokyo
    with app.app_context():
        [entry] = get_session().query(AuditLog).filter_by(action="prompts.send_now").all()
        assert (entry.actor, entry.entity_id, entry.after) == ("ops@shop.jp", "c-1", {"prompts": 1})


def test_send_now_without_a_customer_brings_every_scheduled_prompt_forward(
    app, runner, monkeypatch
):
    monkeypatch.setattr("app.cli.ops.utcnow", lambda: NIGHT)
    _two_customers_due_tomorrow_morning(app)
    assert "2 prompts due now" in runner.invoke(args=["prompts", "send-now"]).output
    dispatch(app, NIGHT)
    assert {p.status for p in prompt_rows(app)} == {PromptStatus.SENT}


def test_send_now_for_an_unknown_customer_is_refused(app, runner):
    result = runner.invoke(args=["prompts", "send-now", "--customer", "nobody"])
    assert result.exit_code != 0
    assert "no customer 'nobody'" in result.output
