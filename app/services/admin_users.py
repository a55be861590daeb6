"""Operations staff accounts: Argon2id password hashes, sign-in with a brake on guessing.

Failed sign-ins are counted in the database (``login_attempt``), not in process memory, so
the limit holds across gunicorn workers and restarts.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.models import ActorType, AdminRole, AdminUser, LoginAttempt
from app.services.audit import record

logger = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 12
ATTEMPT_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_IP = 20
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HASHER = PasswordHasher()  # Argon2id with the library's current recommended parameters
# Verified when the email is unknown, so a wrong address costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash("not a password anyone has")


class AdminUserError(ValueError):
    """The account cannot be created as asked (the message says why)."""


class SignInRefused(Exception):
    """Wrong email or password (deliberately not saying which)."""


class TooManyAttempts(SignInRefused):
    """Too many failed sign-ins lately for this email or from this address."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


def create_user(
    session: Session, email: str, password: str, role: AdminRole, actor: str, now: datetime
) -> AdminUser:
    """Add a staff account; raises AdminUserError for a bad email, a short password or an
    email already in use."""
    email = normalise_email(email)
    if not _EMAIL.match(email) or len(email) > 320:
        raise AdminUserError(f"not an email address: {email!r}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AdminUserError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    if session.scalar(select(AdminUser).where(col(AdminUser.email) == email)) is not None:
        raise AdminUserError(f"{email} already has an account")
    user = AdminUser(email=email, password_hash=_HASHER.hash(password), role=role, created_at=now)
    session.add(user)
    session.flush()
    record(session, now, ActorType.USER, actor, "create", "admin_user", str(user.id), None,
           {"email": email, "role": role.value})  # fmt: skip
    return user


def sign_in(session: Session, email: str, password: str, ip: str, now: datetime) -> AdminUser:
    """The active account with this email and password; every try is recorded.

    Raises TooManyAttempts (without checking the password) after too many recent failures
    for the email or from the address, and SignInRefused for a wrong email or password.
    """
    email = normalise_email(email)[:320]
    since = now - ATTEMPT_WINDOW
    failures = (
        select(func.count())
        .select_from(LoginAttempt)
        .where(col(LoginAttempt.succeeded).is_(False), col(LoginAttempt.at) >= since)
    )
    if (
        session.scalar(failures.where(col(LoginAttempt.email) == email)) or 0
    ) >= MAX_FAILURES_PER_EMAIL or (
        session.scalar(failures.where(col(LoginAttempt.ip) == ip)) or 0
    ) >= MAX_FAILURES_PER_IP:
        logger.warning("sign-in for %s from %s refused: too many failures", email, ip)
        raise TooManyAttempts(email)
    user = session.scalar(select(AdminUser).where(col(AdminUser.email) == email))
    ok = _verify(user.password_hash if user else _DUMMY_HASH, password) and bool(
        user and user.is_active
    )
    session.add(LoginAttempt(email=email, ip=ip[:45], succeeded=ok, at=now))
    if not ok or user is None:
        logger.info("failed sign-in for %s from %s", email, ip)
        raise SignInRefused(email)
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    user.last_login_at = now
    # Old attempts only matter inside the window.
    session.execute(delete(LoginAttempt).where(col(LoginAttempt.at) < since - ATTEMPT_WINDOW))
    logger.info("admin %s signed in from %s", user.id, ip)
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
