"""Routes of the link pages: thin, each parses the token and form and calls one service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Blueprint, Response, g, render_template, request
from sqlalchemy.orm import Session
from wtforms import Form, IntegerField, SelectField
from wtforms.validators import InputRequired, NumberRange, Optional

from app.config import Settings, current_settings
from app.db import MAX_ID, end_reading, get_session, read_first, utcnow
from app.links import URL_PREFIX
from app.links.tokens import (
    ExpiredLink,
    LinkClaim,
    LinkError,
    Purpose,
    SupersededLink,
    TamperedLink,
    make_token,
    read_token,
)
from app.models import Customer, Plan, PlanStatus, Product, PromptStatus
from app.services import answers, preferences, prompts
from app.services.answers import Action, PromptView
from app.services.fresh_links import send_fresh_link

bp = Blueprint("links", __name__, url_prefix=URL_PREFIX)


@bp.after_request
def _private(response: Response) -> Response:
    # The URL carries a token: never leak it in a Referer, never cache or index the page.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    return response


class AnswerForm(Form):  # type: ignore[misc]
    action = SelectField(choices=[a.value for a in Action], validators=[InputRequired()])
    quantity = IntegerField(validators=[Optional(), NumberRange(1, prompts.MAX_QUANTITY)])
    snooze_days = SelectField(
        choices=[str(d) for d in answers.SNOOZE_CHOICES], validators=[Optional()]
    )


class PlanForm(Form):  # type: ignore[misc]
    action = SelectField(
        choices=["pause", "resume", "stop", "interval", "unsubscribe", "subscribe"],
        validators=[InputRequired()],
    )
    plan_id = IntegerField(validators=[Optional(), NumberRange(1, MAX_ID)])
    interval_days = IntegerField(
        validators=[
            Optional(),
            NumberRange(preferences.MIN_PREFERRED_DAYS, preferences.MAX_PREFERRED_DAYS),
        ]
    )


def _claim(purpose: Purpose, token: str, now: datetime) -> LinkClaim:
    """The token's claim; raises a LinkError. Unsubscribe links never expire: a mail client's
    one-click unsubscribe (RFC 8058) on an old email must still work."""
    settings = current_settings()
    max_age = timedelta(days=settings.link_max_age_days)
    claim = read_token(settings.secret_key, purpose, token,
                       None if purpose is Purpose.UNSUBSCRIBE else max_age, now)  # fmt: skip
    if purpose is not Purpose.PROMPT:
        customer = get_session().get(Customer, claim.record_id)
        if customer is not None and str(customer.link_version) != claim.nonce:
            raise SupersededLink(claim.record_id)
    return claim


def _link_problem(error: LinkError, purpose: Purpose, token: str) -> tuple[str, int]:
    """The friendly page for a link we cannot use, offering a fresh one when we know whose."""
    if isinstance(error, ExpiredLink):
        customer = _owner(purpose, error.record_id)
        if customer is not None:
            g.locale = customer.locale.value
        problem = "superseded" if isinstance(error, SupersededLink) else "expired"
        page = render_template("links/problem.html", problem=problem, token=token,
                               purpose=purpose.value, can_refresh=customer is not None)  # fmt: skip
        return page, 410
    return render_template("links/problem.html", problem="invalid", can_refresh=False), 404


def _owner(purpose: Purpose, record_id: int) -> Customer | None:
    """The customer a link was made for (a prompt's customer, or the customer itself)."""
    if purpose is Purpose.PROMPT:
        view = answers.find_prompt(get_session(), record_id)
        return view.customer if view else None
    return get_session().get(Customer, record_id)


@bp.route("/p/<token>", methods=["GET", "POST"])
def prompt_page(token: str) -> tuple[str, int] | str:
    now = utcnow()
    session = get_session()
    if request.method == "POST":
        read_first(session)  # the answer itself is a guarded update: look up without the lock
    try:
        claim = _claim(Purpose.PROMPT, token, now)
    except LinkError as error:
        return _link_problem(error, Purpose.PROMPT, token)
    view = answers.find_prompt(session, claim.record_id)
    if view is None:
        return _link_problem(TamperedLink("unknown prompt"), Purpose.PROMPT, token)
    if view.prompt.nonce != claim.nonce:  # the customer's links were revoked since
        return _link_problem(SupersededLink(claim.record_id), Purpose.PROMPT, token)
    g.locale = view.customer.locale.value
    g.timezone = view.customer.timezone
    form = AnswerForm(request.form if request.method == "POST" else None)
    if request.method == "POST":
        problem = _answer_problem(form)
        if problem:
            return _prompt_template(view, form, token, now, problem), 400
        end_reading(session)
        view = answers.answer(
            session, current_settings(), view, Action(form.action.data), now,
            quantity=form.quantity.data, snooze_days=int(form.snooze_days.data or 0) or None,
        )  # fmt: skip
        session.commit()
        if form.action.data == Action.UNDO and view.handed_off(now):
            # The window passed between showing the button and the click: say why, in words.
            return _prompt_template(view, form, token, now, problem="too_late_to_undo")
    return _prompt_template(view, form, token, now)


def _answer_problem(form: AnswerForm) -> str | None:
    """The field an answer cannot be taken for (``action``, ``quantity``, ``snooze_days``)."""
    form.validate()
    if form.action.data == "snooze" and not form.snooze_days.data:
        form.snooze_days.errors = [*form.snooze_days.errors, "required"]
    return next(iter(form.errors), None)


def _prompt_template(
    view: PromptView, form: AnswerForm, token: str, now: datetime, problem: str | None = None
) -> str:
    """The prompt page; ``problem`` is why an answer was not taken: a form field
    (``_answer_problem``), or ``too_late_to_undo``."""
    return render_template(
        "links/prompt.html",
        view=view,
        form=form,
        problem=problem,
        token=token,
        can_undo=view.can_undo(now),
        open=view.prompt.status is PromptStatus.SENT,
        snooze_choices=answers.SNOOZE_CHOICES,
        max_quantity=prompts.MAX_QUANTITY,
        manage_token=_manage_token(current_settings(), view.customer, now),
    )


def _manage_token(settings: Settings, customer: Customer, now: datetime) -> str:
    assert customer.id is not None
    return make_token(
        settings.secret_key, Purpose.MANAGE, customer.id, str(customer.link_version), now
    )


def _customer(purpose: Purpose, token: str, now: datetime) -> Customer | tuple[str, int]:
    try:
        claim = _claim(purpose, token, now)
    except LinkError as error:
        return _link_problem(error, purpose, token)
    customer = get_session().get(Customer, claim.record_id)
    if customer is None:
        return _link_problem(TamperedLink("no such customer"), purpose, token)
    g.locale = customer.locale.value
    return customer


@bp.route("/m/<token>", methods=["GET", "POST"])
def manage_page(token: str) -> tuple[str, int] | str:
    now = utcnow()
    session = get_session()
    customer = _customer(Purpose.MANAGE, token, now)
    if not isinstance(customer, Customer):
        return customer
    form = PlanForm(request.form if request.method == "POST" else None)
    error: PlanProblem | None = None
    if request.method == "POST":
        error = _apply_plan_form(session, customer, form, now)
        if error is None:
            session.commit()
        else:
            session.rollback()
    plans = preferences.customer_plans(session, customer, now)
    saved = request.method == "POST" and error is None
    page = render_template("links/manage.html", customer=customer, plans=plans, form=form,
                           error=error, token=token, ranges=_interval_ranges(plans),
                           saved=saved)  # fmt: skip
    return page, (error.status if error else 200)


@dataclass(frozen=True)
class PlanProblem:
    """Why a change on the plans page was not made, for the page to say in the customer's
    language: ``plan`` (not one of theirs, or not a plan id), ``interval`` (outside the
    product's range ``low``..``high``; ``plan_id`` and the text ``entered``, for the page to
    show it back), ``action`` (no such change)."""

    kind: str
    status: int = 400
    product: str = ""
    low: int = 0
    high: int = 0
    plan_id: int | None = None
    entered: str = ""


def _interval_ranges(plans: list[preferences.CustomerPlan]) -> dict[int, tuple[int, int]]:
    return {item.product.id: preferences.interval_range(item.product) for item in plans}  # type: ignore[misc]


def _apply_plan_form(
    session: Session, customer: Customer, form: PlanForm, now: datetime
) -> PlanProblem | None:
    form.validate()
    if form.action.errors:
        return PlanProblem("action")
    action = form.action.data
    if action in ("unsubscribe", "subscribe"):
        preferences.set_subscribed(session, customer, action == "subscribe", now)
        return None
    plan = _own_plan(session, customer, form)
    if isinstance(plan, PlanProblem):
        return plan
    if action == "interval":
        return _change_interval(session, customer, plan, form, now)
    status = {"pause": PlanStatus.PAUSED, "resume": PlanStatus.ACTIVE,
              "stop": PlanStatus.STOPPED}[action]  # fmt: skip
    preferences.change_plan(session, customer, plan, now, status=status)
    return None


def _own_plan(session: Session, customer: Customer, form: PlanForm) -> Plan | PlanProblem:
    if form.plan_id.errors or form.plan_id.data is None:
        return PlanProblem("plan")
    plan = session.get(Plan, form.plan_id.data)
    if plan is None or plan.customer_id != customer.id:
        return PlanProblem("plan", status=404)
    return plan


def _change_interval(
    session: Session, customer: Customer, plan: Plan, form: PlanForm, now: datetime
) -> PlanProblem | None:
    product = session.get(Product, plan.product_id)
    assert product is not None
    low, high = preferences.interval_range(product)
    problem = PlanProblem("interval", product=product.name or product.external_id, low=low,
                          high=high, plan_id=plan.id,
                          entered=(form.interval_days.raw_data or [""])[0])  # fmt: skip
    if form.interval_days.errors:
        return problem
    try:
        preferences.change_plan(session, customer, plan, now,
                                preferred_interval_days=form.interval_days.data)  # fmt: skip
    except preferences.IntervalOutOfRange:
        return problem
    return None


@bp.route("/u/<token>", methods=["GET", "POST"])
def unsubscribe_page(token: str) -> tuple[str, int] | str:
    """RFC 8058: mail clients POST ``List-Unsubscribe=One-Click`` here without a page view."""
    now = utcnow()
    customer = _customer(Purpose.UNSUBSCRIBE, token, now)
    if not isinstance(customer, Customer):
        return customer
    if request.method == "POST":
        preferences.set_subscribed(get_session(), customer, False, now)
        get_session().commit()
    manage_token = _manage_token(current_settings(), customer, now)
    return render_template("links/unsubscribe.html", customer=customer, token=token,
                           done=customer.unsubscribed_at is not None,
                           manage_token=manage_token)  # fmt: skip


@bp.route("/fresh", methods=["POST"])
def fresh_link() -> tuple[str, int] | str | Response:
    """Email a new plans-page link to the owner of an expired link."""
    now = utcnow()
    token = request.form.get("token", "")
    try:
        purpose = Purpose(request.form.get("purpose", ""))
        claim = _claim(purpose, token, now)
    except ValueError:
        return _link_problem(TamperedLink("bad purpose"), Purpose.MANAGE, token)
    except ExpiredLink as expired:
        return _send_fresh_link(purpose, expired.record_id, token, now)
    except LinkError as error:
        return _link_problem(error, purpose, token)
    if purpose is Purpose.PROMPT:
        view = answers.find_prompt(get_session(), claim.record_id)
        if view is not None and view.prompt.nonce != claim.nonce:  # revoked
            return _send_fresh_link(purpose, claim.record_id, token, now)
    # Still valid: nothing to refresh.
    return render_template("links/problem.html", problem="valid", can_refresh=False)


def _send_fresh_link(
    purpose: Purpose, record_id: int, token: str, now: datetime
) -> tuple[str, int] | str:
    """Email a new plans-page link to the customer a link was made for, at their address."""
    session = get_session()
    customer = _owner(purpose, record_id)
    if customer is None:
        return _link_problem(TamperedLink("unknown"), purpose, token)
    g.locale = customer.locale.value
    send_fresh_link(session, current_settings(), customer, now)
    session.commit()
    return render_template("links/problem.html", problem="sent", can_refresh=False)
