"""nplusone's own SQLAlchemy suite as labelled scenarios.

Ported from https://github.com/jmcarp/nplusone (``tests/test_sqlalchemy.py``,
``tests/utils.py``), MIT License, Copyright 2016 Joshua Carp. Only the scenarios are
ported (models, the ORM code of each test, nplusone's verdict); the string loader
options of SQLAlchemy 1.x (``subqueryload('addresses')``) are written with attributes,
as SQLAlchemy 2.x requires. Verdicts: ``TestProfile.test_profile`` shows that a lazy
load on an instance of a multi-row query is an N+1 to nplusone even with one row, so
each ``users[0].addresses``-style test is labelled N+1 and each eager-loaded variant
not. Those are single lazy loads: a conflict with django-zeal's rule, pulsegate's default
(two loads from one line), listed as such by the scoring; pulsegate's
``single_lazy_loads=True`` (nplusone's rule, by the query's form) meets them.

Scaled: every user of 10 gets an address and a hobby, and the ``[0]`` read runs for
each of them (``run_scaled``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Session, joinedload, relationship, subqueryload


class NBase(DeclarativeBase):
    pass


users_hobbies = sa.Table(
    "np_users_hobbies", NBase.metadata,
    sa.Column("user_id", sa.Integer, sa.ForeignKey("np_user.user_id")),
    sa.Column("hobby_id", sa.Integer, sa.ForeignKey("np_hobby.id")),
)


class User(NBase):
    __tablename__ = "np_user"
    id = sa.Column("user_id", sa.Integer, primary_key=True)
    addresses = relationship("Address", backref="user")
    hobbies = relationship("Hobby", secondary=users_hobbies, backref="users")


class Address(NBase):
    __tablename__ = "np_address"
    id = sa.Column(sa.Integer, primary_key=True)
    user_id = sa.Column(sa.Integer, sa.ForeignKey("np_user.user_id"))


class Hobby(NBase):
    __tablename__ = "np_hobby"
    id = sa.Column(sa.Integer, primary_key=True)


def objects(session: Session, n: int) -> None:
    """nplusone's fixture: one user with an address and a hobby (n users, scaled)."""
    for _ in range(n):
        session.add(User(addresses=[Address()], hobbies=[Hobby()]))
    session.commit()
    session.close()


@dataclass(frozen=True)
class Scenario:
    name: str
    problem: bool  # nplusone's verdict
    relationship: str | None
    size: int
    run: Callable[[Session], object]
    run_scaled: Callable[[Session], object] | None = None


def _q(s: Session, model: type) -> sa.orm.Query:  # type: ignore[type-arg]
    return s.query(model)


SCENARIOS: list[Scenario] = [
    Scenario("many_to_one", True, "User.addresses", 1,
             lambda s: _q(s, User).all()[0].addresses,
             lambda s: [u.addresses for u in _q(s, User).all()]),
    Scenario("many_to_one_subquery", False, None, 1,
             lambda s: _q(s, User).options(subqueryload(User.addresses)).all()[0].addresses,
             lambda s: [u.addresses for u in _q(s, User).options(subqueryload(User.addresses)).all()]),
    Scenario("many_to_one_joined", False, None, 1,
             lambda s: _q(s, User).options(joinedload(User.addresses)).all()[0].addresses,
             lambda s: [u.addresses for u in _q(s, User).options(joinedload(User.addresses)).all()]),
    Scenario("many_to_one_reverse", True, "Address.user", 1,
             lambda s: _q(s, Address).all()[0].user,
             lambda s: [a.user for a in _q(s, Address).all()]),
    Scenario("many_to_one_reverse_subquery", False, None, 1,
             lambda s: _q(s, Address).options(subqueryload(Address.user)).all()[0].user,  # type: ignore[attr-defined]
             lambda s: [a.user for a in _q(s, Address).options(subqueryload(Address.user)).all()]),  # type: ignore[attr-defined]
    Scenario("many_to_one_reverse_joined", False, None, 1,
             lambda s: _q(s, Address).options(joinedload(Address.user)).first().user),  # type: ignore[attr-defined,union-attr]
    Scenario("many_to_many", True, "User.hobbies", 1,
             lambda s: _q(s, User).all()[0].hobbies,
             lambda s: [u.hobbies for u in _q(s, User).all()]),
    Scenario("many_to_many_subquery", False, None, 1,
             lambda s: _q(s, User).options(subqueryload(User.hobbies)).first().hobbies),  # type: ignore[union-attr]
    Scenario("many_to_many_joined", False, None, 1,
             lambda s: _q(s, User).options(joinedload(User.hobbies)).first().hobbies),  # type: ignore[union-attr]
    Scenario("many_to_many_reverse", True, "Hobby.users", 1,
             lambda s: _q(s, Hobby).all()[0].users,
             lambda s: [h.users for h in _q(s, Hobby).all()]),
    Scenario("many_to_many_reverse_subquery", False, None, 1,
             lambda s: _q(s, Hobby).options(subqueryload(Hobby.users)).first().users),  # type: ignore[attr-defined,union-attr]
    Scenario("many_to_many_reverse_joined", False, None, 1,
             lambda s: _q(s, Hobby).options(joinedload(Hobby.users)).first().users),  # type: ignore[attr-defined,union-attr]
    Scenario("non_orm_query", False, None, 1, lambda s: _q(s, Address.id).all()),  # type: ignore[arg-type]
]
#: nplusone's one-load N+1s (see the module docstring).
ONE_LOAD_CONFLICTS = frozenset(s.name for s in SCENARIOS if s.problem)


def run_one(scenario: Scenario, scaled: bool, detect: Callable[[Callable[[], object]], object],
            *, instrumented: bool = True) -> object:
    """A fresh in-memory database with the fixture (own size, or 10 users scaled), the
    scenario run through ``detect(run)`` (pulsegate's hooks on the engine unless
    ``instrumented`` is False: a peer's run)."""
    engine = sa.create_engine("sqlite://")
    NBase.metadata.create_all(engine)
    if instrumented:
        from pulsegate.sqlalchemy import instrument

        instrument(engine)
    run = scenario.run_scaled if scaled and scenario.run_scaled else scenario.run
    try:
        with Session(engine) as session:
            objects(session, 10 if scaled and scenario.run_scaled else scenario.size)
            return detect(lambda: run(session))
    finally:
        engine.dispose()
