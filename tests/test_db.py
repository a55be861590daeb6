"""``db.Prepared``: statements run on the driver's cursor behave as through SQLAlchemy."""

import pytest
from sqlalchemy import bindparam, insert, update
from sqlalchemy.exc import IntegrityError

from app.db import Prepared, get_session, table_of
from app.models import Customer, Locale
from tests.factories import NOW

_customer = table_of(Customer)
_COLUMNS = ("external_id", "timezone", "locale", "is_placeholder", "link_version", "created_at",
            "updated_at")  # fmt: skip
_ADD = Prepared(insert(_customer).values({name: bindparam(name) for name in _COLUMNS}).inline())
_RENAME = Prepared(
    update(_customer)
    .where(_customer.c.external_id == bindparam("external_id"))
    .values(name=bindparam("name"))
)


def _add(session, external_id):
    _ADD.execute(session, {"external_id": external_id, "timezone": "Asia/Tokyo",
                           "locale": Locale.EN, "is_placeholder": False, "link_version": 0,
                           "created_at": NOW, "updated_at": NOW})  # fmt: skip


def test_written_values_read_back_as_the_orm_writes_them_and_count_the_rows(app):
    with app.app_context():
        session = get_session()
        _add(session, "c-1")
        assert _RENAME.execute(session, {"external_id": "c-1", "name": "山田"}) == 1
        assert _RENAME.execute(session, {"external_id": "nobody", "name": "x"}) == 0
        session.commit()
        [customer] = session.query(Customer).all()
        assert (customer.name, customer.locale, customer.created_at) == ("山田", Locale.EN, NOW)


def test_a_violated_constraint_is_sqlalchemys_integrity_error_and_rolls_back(app):
    with app.app_context():
        session = get_session()
        _add(session, "c-1")
        with pytest.raises(IntegrityError):
            _add(session, "c-1")
        session.rollback()
        assert session.query(Customer).count() == 0


def test_a_statement_that_needs_python_side_defaults_is_refused(app):
    """SQLAlchemy fills those in while it executes; run here they would be NULL."""
    missing = Prepared(insert(_customer).values(external_id=bindparam("external_id")).inline())
    with app.app_context(), pytest.raises(ValueError, match="link_version"):
        missing.execute(get_session(), {"external_id": "c-1"})
