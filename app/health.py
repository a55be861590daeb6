"""Liveness and readiness probes for the process supervisor and load balancer."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.db import get_engine
from app.migrate import current_revisions, head_revisions

bp = Blueprint("health", __name__)
logger = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """The process is up and serving requests; says nothing about its dependencies."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Ready for traffic: the database answers and its schema is at the latest migration."""
    engine = get_engine()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current = current_revisions(conn)
    except SQLAlchemyError as exc:
        logger.warning("readiness check failed: %s", exc)
        return jsonify(status="unavailable", database="unreachable"), 503
    heads = head_revisions()
    if current != heads:
        return jsonify(
            status="unavailable",
            database="ok",
            migrations="pending",
            current=sorted(current),
            head=sorted(heads),
        ), 503
    return jsonify(status="ok", database="ok", migrations="at head", head=sorted(heads))
