"""Signing in and out, and who may do what."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import EmailField, PasswordField
from wtforms.validators import InputRequired, Length

from app.admin import bp, login_manager
from app.db import get_session, utcnow
from app.models import AdminRole, AdminUser
from app.services import admin_users

F = TypeVar("F", bound=Callable[..., Any])

# Flask-Login ships no type information; its decorator keeps the view's signature.
staff_required = cast(Callable[[F], F], login_required)


class StaffUser:
    """The signed-in account as Flask-Login sees it."""

    def __init__(self, user: AdminUser) -> None:
        assert user.id is not None
        self.id, self.email, self.role = user.id, user.email, user.role
        self.is_active = user.is_active

    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)

    @property
    def can_change(self) -> bool:
        return self.role is AdminRole.OPERATOR


def _load_user(user_id: str) -> StaffUser | None:
    user = get_session().get(AdminUser, int(user_id)) if user_id.isdigit() else None
    return StaffUser(user) if user is not None and user.is_active else None


login_manager.user_loader(_load_user)


def operator_required(view: F) -> F:
    """Only operators may run ``view``; viewers get 403."""

    @wraps(view)
    @staff_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.can_change:
            abort(403)
        return view(*args, **kwargs)

    return cast(F, wrapped)


class LoginForm(FlaskForm):  # type: ignore[misc]
    email = EmailField("Email", validators=[InputRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=1000)])


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response | tuple[str, int]:
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("admin/login.html", form=form), 400 if form.errors else 200
    db = get_session()
    try:
        user = admin_users.sign_in(db, form.email.data, form.password.data,
                                   request.remote_addr or "unknown", utcnow())  # fmt: skip
    except admin_users.TooManyAttempts:
        db.commit()
        form.form_errors.append("Too many failed sign-ins. Wait 15 minutes and try again.")
        return render_template("admin/login.html", form=form), 429
    except admin_users.SignInRefused:
        db.commit()  # the failed attempt counts
        form.form_errors.append("Wrong email or password.")
        return render_template("admin/login.html", form=form), 401
    db.commit()
    session.clear()  # a fresh session (and CSRF token) for the signed-in user
    login_user(StaffUser(user))
    return redirect(_safe_next(request.args.get("next")))


@bp.post("/logout")
@staff_required
def logout() -> Response:
    logout_user()
    session.clear()
    flash("Signed out.")
    return redirect(url_for("admin.login"))


def _safe_next(target: str | None) -> str:
    # Only a path on this site: never an open redirect to somewhere else.
    if target and target.startswith("/admin") and not urlsplit(target).netloc:
        return target
    return url_for("admin.dashboard")
