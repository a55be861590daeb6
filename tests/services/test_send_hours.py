"""Each customer's send hour, learned from when they answer (the scheduler's re-score sweep)."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlmodel import col

from app.config import current_settings
from app.db import get_session
from app.models import Customer, Prompt, PromptStatus
from app.services.answers import RECENT_ANSWERS, learn_send_hours
from tests.factories import NOW, make_plan


def _answered(session, plan, *moments):
    for n, moment in enumerate(moments):
        prompt = Prompt(plan_id=plan.id, customer_id=plan.customer_id,
                        status=PromptStatus.SKIPPED, due_at=moment, nonce=f"n{plan.id}-{n}",
                        quantity=1, answered_at=moment, created_at=NOW, updated_at=NOW)  # fmt: skip
        session.add(prompt)


def _hours(session):
    rows = session.execute(select(col(Customer.external_id), col(Customer.send_hour)))
    return {r.external_id: r.send_hour for r in rows}


def test_each_customer_gets_the_hour_of_their_own_latest_answers_in_their_own_zone(app):
    day = datetime(2026, 6, 1, tzinfo=UTC)
    with app.app_context():
        session = get_session()
        # Tokyo: 25 old answers at 12:00, then the latest 20 at 19:00 local (10:00 UTC).
        tokyo = make_plan(session, customer="c-tokyo")
        _answered(session, tokyo, *(day.replace(hour=3) + timedelta(days=n) for n in range(25)))
        late = day + timedelta(days=40)
        _answered(session, tokyo, *(late.replace(hour=10) + timedelta(days=n)
                                    for n in range(RECENT_ANSWERS)))  # fmt: skip
        # New York: 13:00 UTC is 09:00 there in summer.
        york = make_plan(session, customer="c-york", timezone="America/New_York")
        _answered(session, york, *(day.replace(hour=13) + timedelta(days=n) for n in range(3)))
        # Two answers tell nothing yet; an hour learned before (from an answer since undone)
        # goes back to the default.
        few = make_plan(session, customer="c-few")
        _answered(session, few, day.replace(hour=10), day.replace(hour=10) + timedelta(days=1))
        session.get_one(Customer, few.customer_id).send_hour = 19
        untouched = make_plan(session, customer="c-other")
        session.get_one(Customer, untouched.customer_id).send_hour = 15
        session.commit()
        zones = {p.customer_id: tz for p, tz in ((tokyo, "Asia/Tokyo"),
                 (york, "America/New_York"), (few, "Asia/Tokyo"))}  # fmt: skip
        assert learn_send_hours(session, current_settings(), zones) == 3
        session.commit()
        assert _hours(session) == {"c-tokyo": 19, "c-york": 9, "c-few": None, "c-other": 15}
        assert learn_send_hours(session, current_settings(), zones) == 0  # nothing new
