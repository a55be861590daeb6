"""``Plan.next_prompt``: when a plan's customer hears from it next, as the pages show it."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from app.models import NextPrompt, Plan, PlanStatus, Prompt, PromptStatus

TOKYO = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 12, 2, 16, 0, tzinfo=UTC)  # 3 Dec, 01:00 in Tokyo; still 2 Dec in UTC
TODAY = date(2026, 12, 3)  # the customer's


def _plan(**fields) -> Plan:
    return Plan(customer_id=1, product_id=1, **({"prompt_on": date(2026, 12, 10)} | fields))


def _prompt(status: PromptStatus, due_at: datetime = NOW) -> Prompt:
    return Prompt(plan_id=1, customer_id=1, status=status, due_at=due_at, nonce="n", quantity=1)


def test_a_prompt_sent_and_not_answered_awaits_the_answer_instead_of_a_day():
    plan = _plan(prompt_on=date(2026, 12, 2))
    for status in (PromptStatus.SENDING, PromptStatus.SENT):
        assert plan.next_prompt(_prompt(status), NOW, TOKYO) == NextPrompt(None, True)


def test_an_overdue_prompt_day_is_the_customers_today_not_a_past_day():
    plan = _plan(prompt_on=date(2026, 12, 1), prompt_not_before=date(2026, 12, 2))
    assert plan.next_prompt(None, NOW, TOKYO) == NextPrompt(TODAY, False)


def test_a_scheduled_prompt_comes_on_its_due_day_in_the_customers_calendar():
    due = datetime(2026, 12, 4, 15, 30, tzinfo=UTC)  # 5 Dec, 00:30 in Tokyo
    plan = _plan(prompt_on=date(2026, 12, 4))
    assert plan.next_prompt(_prompt(PromptStatus.SCHEDULED, due), NOW, TOKYO) == NextPrompt(
        date(2026, 12, 5), False
    )


def test_a_rest_after_the_forecast_day_holds_the_prompt_until_it_ends():
    rest = date(2026, 12, 10) + timedelta(days=6)
    assert _plan(prompt_not_before=rest).next_prompt(None, NOW, TOKYO) == NextPrompt(rest, False)
    assert _plan().next_prompt(None, NOW, TOKYO) == NextPrompt(date(2026, 12, 10), False)


def test_a_plan_that_is_not_active_or_has_no_prompt_day_has_no_next_prompt():
    for plan in (_plan(status=PlanStatus.PAUSED), _plan(prompt_on=None)):
        assert plan.next_prompt(None, NOW, TOKYO) == NextPrompt(None, False)
