"""The operations admin pages (``/admin``): sign-in, dashboard, products, customers,
deliveries, audit log, and the mailbox when no SMTP is configured. English first; every
change is audited with who, before and after.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, g, request
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFProtect

from app.config import SETTINGS_KEY

bp = Blueprint("admin", __name__, url_prefix="/admin")
login_manager = LoginManager()
csrf = CSRFProtect()

# Scripts and styles only from our own static files: no inline code at all.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'; "
    "frame-src 'self'"  # the mailbox shows an email's HTML part in a sandboxed frame
)


@bp.before_request
def _english() -> None:
    # The admin pages are English (form validation messages included), whatever the browser.
    g.locale = "en"


@bp.before_request
def _check_csrf() -> None:
    # Every state-changing admin request needs the session's CSRF token; forms carry it.
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()


@bp.after_request
def security_headers(response: Response) -> Response:
    """The admin pages' headers; a view may loosen the framing ones for itself."""
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if request.is_secure:
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
    return response


def init_app(app: Flask) -> None:
    from app.admin import auth, mailbox, views  # noqa: F401 - register the routes

    settings = app.extensions[SETTINGS_KEY]
    if settings.smtp_url is None:
        # Without SMTP, emails land in the database mailbox, readable there (demo and tests).
        app.register_blueprint(mailbox.bp)
    app.jinja_env.globals["mailbox_enabled"] = settings.smtp_url is None

    # Cookies are marked Secure when the service is reached over HTTPS.
    secure = settings.base_url.startswith("https://")
    app.config.update(
        # CSRF is checked on the admin blueprint only: the API uses bearer keys and the
        # customer pages signed links, neither carries a session.
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_NAME="kaidoki_admin",
        PERMANENT_SESSION_LIFETIME=8 * 3600,
        REMEMBER_COOKIE_SECURE=secure,
    )
    csrf.init_app(app)
    # Flask-Login's own context processor loads the user for every template rendered, the
    # customers' pages and emails included; the proxy loads it only where a template asks.
    login_manager.init_app(app, add_context_processor=False)
    app.context_processor(lambda: {"current_user": current_user})
    login_manager.login_view = "admin.login"
    login_manager.session_protection = "strong"
    app.register_blueprint(bp)
