"""The admin pages. Views parse, call one service or query, and render."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlmodel import col
from werkzeug.wrappers import Response
from wtforms import DecimalField, IntegerField, SelectField
from wtforms.validators import InputRequired, NumberRange, Optional, ValidationError

from app.admin import bp, queries
from app.admin.auth import operator_required, staff_required
from app.admin.charts import Series, bar_chart, forecast_chart, legend
from app.config import current_settings
from app.db import ID_IN_PATH, get_session, utcnow
from app.models import ActorType, Customer, OutboxKind, OutboxStatus, Plan, PlanStatus, Product
from app.services import outbox, preferences, product_settings

T = TypeVar("T")


def _today() -> date:
    return utcnow().astimezone(ZoneInfo(current_settings().default_timezone)).date()


def _page() -> int:
    return max(request.args.get("page", 1, type=int) or 1, 1)


@bp.get("/")
@staff_required
def dashboard() -> str:
    session, today, now = get_session(), _today(), utcnow()
    days = [today + timedelta(days=i) for i in range(30)]
    scheduled = [Series("Prompts due", queries.prompts_per_day(session, today))]
    return render_template(
        "admin/dashboard.html",
        active_plans=queries.active_plans(session),
        rates=[queries.answer_rates(session, now, d) for d in (7, 30)],
        backlog=outbox.backlog(session, outbox.WAITING_OR_DEAD),
        rescores=queries.rescores_waiting(session),
        unrenderable=queries.unrenderable_prompts(session),
        accuracy=queries.forecast_accuracy(session, today),
        conversion=queries.first_to_second(session, today),
        chart=bar_chart("Prompts due per day, next 30 days", days, scheduled),
    )


@bp.get("/products")
@staff_required
def products() -> str:
    query = select(Product).order_by(col(Product.external_id))
    return render_template("admin/products.html",
                           page=queries.paginate(get_session(), query, _page()))  # fmt: skip


class ProductSettingsForm(FlaskForm):  # type: ignore[misc]
    default_interval_days = IntegerField(
        "Default interval (days)", validators=[InputRequired(), NumberRange(1, 3650)]
    )
    min_interval_days = IntegerField(
        "Minimum interval (days)", validators=[InputRequired(), NumberRange(1, 3650)]
    )
    max_interval_days = IntegerField(
        "Maximum interval (days)", validators=[InputRequired(), NumberRange(1, 3650)]
    )
    lead_time_days = IntegerField(
        "Lead time (days)", validators=[InputRequired(), NumberRange(0, 60)]
    )
    target_stockout_risk = DecimalField(
        "Target stock-out risk", places=3,
        validators=[InputRequired(), NumberRange(0.01, 0.49)],
        description="Accepted chance that the reorder arrives after the customer runs out "
                    "(0.01–0.49).",
    )  # fmt: skip
    prompt_expiry_days = IntegerField(
        "Prompt expiry (days)", validators=[InputRequired(), NumberRange(1, 60)]
    )

    def validate_max_interval_days(self, field: IntegerField) -> None:
        low = self.min_interval_days.data
        if low is not None and field.data is not None and field.data < low:
            raise ValidationError("must be at least the minimum interval")

    def validate_default_interval_days(self, field: IntegerField) -> None:
        low, high = self.min_interval_days.data, self.max_interval_days.data
        if None in (low, high, field.data) or low > high:  # reported on those fields
            return
        if not low <= field.data <= high:
            raise ValidationError(f"must lie between the minimum and maximum interval "
                                  f"({low}–{high} days)")  # fmt: skip

    def change(self) -> product_settings.SettingsChange:
        return product_settings.SettingsChange(
            self.default_interval_days.data, self.min_interval_days.data,
            self.max_interval_days.data, self.lead_time_days.data,
            float(self.target_stockout_risk.data), self.prompt_expiry_days.data,
        )  # fmt: skip


def _get_or_404(model: type[T], record_id: int) -> T:
    found = get_session().get(model, record_id)
    if found is None:
        abort(404)
    return found


@bp.get(f"/products/<{ID_IN_PATH}:product_id>")
@staff_required
def product(product_id: int) -> str:
    found = _get_or_404(Product, product_id)
    form = ProductSettingsForm(obj=found)
    return render_template("admin/product.html", product=found, form=form, preview=None)


@bp.post(f"/products/<{ID_IN_PATH}:product_id>")
@operator_required
def product_change(product_id: int) -> str | Response | tuple[str, int]:
    """``action=preview`` shows what the change would do; ``action=save`` applies it."""
    session, found = get_session(), _get_or_404(Product, product_id)
    form = ProductSettingsForm()
    if not form.validate():
        return render_template("admin/product.html", product=found, form=form, preview=None), 422
    change = form.change()
    # The save reports what it did in the preview's terms: the same scoring, with the settings
    # before and after (it runs before the save, while those are still the product's).
    result = product_settings.preview(session, found, change, _today())
    if request.form.get("action") != "save":
        series = [Series("Now", result.before), Series("With the change", result.after)]
        chart = bar_chart(f"Prompts per day for {found.external_id}", result.days, series)
        return render_template("admin/product.html", product=found, form=form, preview=result,
                               moves=_moves(result, saved=False), chart=chart,
                               legend=legend(series))  # fmt: skip
    scored = product_settings.save(session, found, change, current_user.email, utcnow(),
                                   current_settings().default_timezone)  # fmt: skip
    session.commit()
    flash(f"Saved {found.external_id}: {_moves(result, saved=True)} "
          f"{scored} plans re-scored.")  # fmt: skip
    return redirect(url_for("admin.product", product_id=product_id))


def _moves(preview: product_settings.Preview, saved: bool) -> str:
    """How a settings change moves the product's prompt dates: what it would do (the preview)
    or, ``saved``, what it did."""
    moved, got, lost = ("are now", "got", "lost") if saved else ("would be", "would get",
                                                                 "would lose")  # fmt: skip
    text = (f"{preview.earlier} plans {moved} prompted earlier, {preview.later} later, "
            f"{preview.unchanged} unchanged")  # fmt: skip
    if preview.gained:
        text += f"; {preview.gained} {got} a prompt date"
    if preview.lost:
        text += f"; {preview.lost} {lost} theirs"
    return text + "."


@bp.get("/deliveries")
@staff_required
def deliveries() -> str:
    status = request.args.get("status") or None
    kind = request.args.get("kind") or None
    if status not in (None, *[s.value for s in OutboxStatus]) or kind not in (
        None, *[k.value for k in OutboxKind]
    ):  # fmt: skip
        abort(400, "Unknown status or kind: choose one from the filters on this page.")
    query = queries.deliveries(OutboxStatus(status) if status else None, kind)
    return render_template("admin/deliveries.html", page=queries.paginate(get_session(), query,
                           _page()), status=status, kind=kind, statuses=list(OutboxStatus),
                           kinds=list(OutboxKind))  # fmt: skip


@bp.post(f"/deliveries/<{ID_IN_PATH}:outbox_id>/replay")
@operator_required
def replay(outbox_id: int) -> Response:
    session = get_session()
    try:
        row = outbox.replay(session, outbox_id, utcnow(), actor=current_user.email)
    except LookupError:
        abort(404)
    except ValueError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.deliveries"))
    session.commit()
    flash(f"Message {row.id} ({row.event_type}) queued again.")
    return redirect(url_for("admin.deliveries"))


@bp.get("/audit")
@staff_required
def audit() -> str:
    actor = request.args.get("actor", "").strip()[:320] or None
    entity = request.args.get("entity_type", "").strip()[:50] or None
    action = request.args.get("action", "").strip()[:50] or None
    query = queries.audit_entries(actor, entity, action)
    return render_template("admin/audit.html", page=queries.paginate(get_session(), query,
                           _page()), actor=actor, entity_type=entity, action=action)  # fmt: skip


@bp.get("/customers")
@staff_required
def customers() -> str:
    search = request.args.get("q", "").strip()[:320] or None
    query = queries.customers(search)
    return render_template("admin/customers.html", q=search,
                           page=queries.paginate(get_session(), query, _page()))  # fmt: skip


@bp.get(f"/customers/<{ID_IN_PATH}:customer_id>")
@staff_required
def customer(customer_id: int) -> str:
    found, today = _get_or_404(Customer, customer_id), _today()
    plans = [
        (item, forecast_chart(
            f"{item.product.external_id}: purchases and forecast", item.purchases, today,
            item.plan.median_on,
            (item.plan.q10_on, item.plan.q90_on) if item.plan.q10_on and item.plan.q90_on
            else None,
            item.coming.on, item.coming.awaiting_answer,
        ))
        for item in queries.customer_plans(get_session(), found, utcnow())
    ]  # fmt: skip
    return render_template("admin/customer.html", customer=found, plans=plans,
                           interval_range=preferences.interval_range)  # fmt: skip


class PlanControlForm(FlaskForm):  # type: ignore[misc]
    action = SelectField(choices=["pause", "resume", "stop", "interval", "forecast"],
                         validators=[InputRequired()])  # fmt: skip
    interval_days = IntegerField(
        validators=[Optional(), NumberRange(preferences.MIN_PREFERRED_DAYS,
                                            preferences.MAX_PREFERRED_DAYS)]
    )  # fmt: skip


# What a plan already is when a plan control changes nothing, by action.
_UNCHANGED = {"pause": "is paused", "resume": "is active", "stop": "is stopped",
              "interval": "has that interval", "forecast": "follows the forecast"}  # fmt: skip


def _refused(back: Response, why: str) -> Response:
    flash(f"Not changed: {why}", "error")
    return back


def _interval_problem(low: int, high: int) -> str:
    return f"the interval must be {low}–{high} days (the product's min and max interval)."


def _plan_form_problem(form: PlanControlForm, plan: Plan) -> str:
    """What is wrong with a plan control form that did not validate (its CSRF token was
    checked before the view)."""
    if form.action.errors:
        return "that is not a change a plan can have."
    product = get_session().get_one(Product, plan.product_id)
    return _interval_problem(*preferences.interval_range(product))


@bp.post(f"/customers/<{ID_IN_PATH}:customer_id>/plans/<{ID_IN_PATH}:plan_id>")
@operator_required
def plan_control(customer_id: int, plan_id: int) -> Response:
    """Pause, resume or stop a plan, fix its interval, or give it back to the forecast."""
    session, found = get_session(), _get_or_404(Customer, customer_id)
    plan = session.get(Plan, plan_id)
    if plan is None or plan.customer_id != found.id:
        abort(404)
    form = PlanControlForm()
    action = form.action.data
    back = redirect(url_for("admin.customer", customer_id=customer_id))
    if not form.validate() or (action == "interval" and form.interval_days.data is None):
        return _refused(back, _plan_form_problem(form, plan))
    actor = (ActorType.USER, current_user.email)
    if action in ("interval", "forecast"):
        days = form.interval_days.data if action == "interval" else None
        try:
            changed = preferences.change_plan(
                session, found, plan, utcnow(), preferred_interval_days=days, actor=actor
            )
        except preferences.IntervalOutOfRange as error:
            session.rollback()
            return _refused(back, _interval_problem(error.low, error.high))
    else:
        status = {"pause": PlanStatus.PAUSED, "resume": PlanStatus.ACTIVE,
                  "stop": PlanStatus.STOPPED}[action]  # fmt: skip
        changed = preferences.change_plan(session, found, plan, utcnow(), status=status,
                                          actor=actor)  # fmt: skip
    session.commit()
    if changed:
        flash(f"Plan {plan_id} updated ({action}).")
    else:  # a second tab, or a button from a page loaded before another change
        flash(f"Plan {plan_id} not changed: it already {_UNCHANGED[action]}.")
    return back
