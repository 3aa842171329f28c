"""nplusone's own Django suite as labelled scenarios.

Ported from https://github.com/jmcarp/nplusone (``tests/testapp/testapp/{models,views,
tests}.py``), MIT License, Copyright 2016 Joshua Carp. Only scenarios are ported: each
view of ``TestIntegration`` and nplusone's verdict on it (the logger called with an N+1
message, an unused-eager-load message, or not at all); no nplusone code is copied.
Left out: the tests that count raw lazy-load signals (not verdicts) and the whitelist
configuration tests.

nplusone's rule differs from django-zeal's and pulsegate's: one lazy load on an instance
from a query that may return several rows is an N+1 (``occupations[0].user`` after
``list(Occupation.objects.all())``, even with one row), where zeal and pulsegate want two
loads from one line. Those two scenarios are labelled as nplusone labels them and counted
as a conflict by the scoring of the default rule; pulsegate's ``single_lazy_loads=True``
(nplusone's rule, by the query's form) meets them. ``unused_eager_load`` verdicts are
scored apart (issue 17, item 4).

Scaling: nplusone's views read ``[0]`` of a list; scaled, the read runs for every one
of 10 parents (``run_scaled``), which is what a fixture of 10 would exercise.
"""
# ruff: noqa: RUF015  (nplusone's views read list(...)[0]; ported as written)

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection, models
from django.template import Context, Engine


class NUser(models.Model):
    hobbies = models.ManyToManyField("NHobby", related_name="users")

    class Meta:
        app_label = "pulsegate"


class Pet(models.Model):
    user = models.ForeignKey(NUser, on_delete=models.CASCADE)

    class Meta:
        app_label = "pulsegate"


class Allergy(models.Model):
    pets = models.ManyToManyField(Pet)

    class Meta:
        app_label = "pulsegate"


class Occupation(models.Model):
    user = models.OneToOneField(NUser, on_delete=models.CASCADE, related_name="occupation")

    class Meta:
        app_label = "pulsegate"


class Address(models.Model):
    user = models.ForeignKey(NUser, on_delete=models.CASCADE, related_name="addresses")

    class Meta:
        app_label = "pulsegate"


class NHobby(models.Model):
    class Meta:
        app_label = "pulsegate"


MODELS = [NHobby, NUser, Pet, Allergy, Occupation, Address]


def create_schema() -> None:
    with connection.schema_editor() as editor:
        for m in MODELS:
            editor.create_model(m)


def objects(n: int) -> None:
    """nplusone's ``objects`` fixture (n = 2 users: one with an occupation, an address,
    a hobby, an allergic pet; one with a pet); scaled, every user has all of them."""
    users = [NUser.objects.create() for _ in range(n)]
    for i, user in enumerate(users):
        pet = Pet.objects.create(user=user)
        if i == 0 or n > 2:
            Allergy.objects.create().pets.add(pet)
            Occupation.objects.create(user=user)
            Address.objects.create(user=user)
            user.hobbies.add(NHobby.objects.create())


def no_users(n: int) -> None:
    objects(n)
    NUser.objects.all().delete()


def no_pets(n: int) -> None:
    objects(n)
    Pet.objects.all().delete()


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str | None  # nplusone's verdict: "n_plus_one", "unused_eager_load" or None
    relationship: str | None
    size: int
    fixture: Callable[[int], None]
    run: Callable[[], object]
    run_scaled: Callable[[], object] | None = None

    @property
    def problem(self) -> bool:
        """An N+1 by nplusone's label (unused eager loads are scored apart)."""
        return self.label == "n_plus_one"


_RENDER = Engine().from_string(
    "{% for user in users %}{% for hobby in user.hobbies.all %}{{ hobby.id }}{% endfor %}{% endfor %}")


def _many_to_many_impossible() -> None:
    user = NUser.objects.first()
    _users = list(NUser.objects.all())
    list(user.hobbies.all())  # type: ignore[union-attr]


def _many_to_many_impossible_one() -> None:
    user = NUser.objects.get(pk=1)
    _users = list(NUser.objects.all())
    list(user.hobbies.all())


SCENARIOS: list[Scenario] = [
    Scenario("one_to_one", "n_plus_one", "Occupation.user", 2, objects,
             lambda: list(Occupation.objects.all())[0].user.id,
             lambda: [o.user.id for o in list(Occupation.objects.all())]),
    Scenario("one_to_one_first", None, None, 2, objects, lambda: Occupation.objects.first().user.id),  # type: ignore[union-attr]
    Scenario("one_to_many (prefetched)", None, None, 2, objects,
             lambda: list(NUser.objects.all().prefetch_related("addresses")[0].addresses.all()),
             lambda: [list(u.addresses.all()) for u in NUser.objects.all().prefetch_related("addresses")]),
    Scenario("many_to_many", "n_plus_one", "NUser.hobbies", 2, objects,
             lambda: list(list(NUser.objects.all())[0].hobbies.all()),
             lambda: [list(u.hobbies.all()) for u in list(NUser.objects.all())]),
    Scenario("many_to_many_get", None, None, 2, objects, lambda: list(NUser.objects.get(pk=1).hobbies.all())),
    Scenario("prefetch_one_to_one (select_related)", None, None, 2, objects,
             lambda: NUser.objects.all().select_related("occupation")[0].occupation,
             lambda: [u.occupation for u in NUser.objects.all().select_related("occupation")]),
    Scenario("prefetch_one_to_one_unused", "unused_eager_load", "NUser.occupation", 2, objects,
             lambda: NUser.objects.all().prefetch_related("occupation")[0]),
    Scenario("prefetch_many_to_many", None, None, 2, objects,
             lambda: [list(u.hobbies.all()) for u in list(NUser.objects.all().prefetch_related("hobbies"))]),
    Scenario("many_to_many_impossible", None, None, 2, objects, _many_to_many_impossible),
    Scenario("many_to_many_impossible_one", None, None, 2, objects, _many_to_many_impossible_one),
    Scenario("prefetch_many_to_many_render", None, None, 2, objects,
             lambda: _RENDER.render(Context({"users": NUser.objects.all().prefetch_related("hobbies")}))),
    Scenario("prefetch_many_to_many_empty", None, None, 2, no_users,
             lambda: [list(u.hobbies.all()) for u in list(NUser.objects.all().prefetch_related("hobbies"))]),
    Scenario("prefetch_many_to_many_render_empty", None, None, 2, no_users,
             lambda: _RENDER.render(Context({"users": NUser.objects.all().prefetch_related("hobbies")}))),
    Scenario("prefetch_many_to_many_unused", "unused_eager_load", "NUser.hobbies", 2, objects,
             lambda: NUser.objects.all().prefetch_related("hobbies")[0]),
    Scenario("prefetch_many_to_many_single", None, None, 2, objects,
             lambda: NHobby.objects.all().prefetch_related("users")[0].users.all()[0]),
    Scenario("prefetch_many_to_many_no_related_name", None, None, 2, objects,
             lambda: Pet.objects.all().prefetch_related("allergy_set")[0].allergy_set.all()[0],
             lambda: [list(p.allergy_set.all()) for p in Pet.objects.all().prefetch_related("allergy_set")]),
    Scenario("select_one_to_one", None, None, 2, objects,
             lambda: NUser.objects.all().select_related("occupation")[0].occupation),
    Scenario("select_one_to_one_unused", "unused_eager_load", "NUser.occupation", 2, objects,
             lambda: NUser.objects.all().select_related("occupation")[0]),
    Scenario("select_many_to_one", None, None, 2, objects,
             lambda: list(Pet.objects.all().select_related("user"))[0].user,
             lambda: [p.user for p in list(Pet.objects.all().select_related("user"))]),
    Scenario("select_many_to_one_empty", None, None, 2, no_pets,
             lambda: [p.user for p in list(Pet.objects.all().select_related("user"))]),
    Scenario("select_many_to_one_unused", "unused_eager_load", "Pet.user", 2, objects,
             lambda: list(Pet.objects.all().select_related("user"))[0]),
    Scenario("prefetch_nested", None, None, 2, objects,
             lambda: list(Pet.objects.all().prefetch_related("user__occupation"))[0].user.occupation),
    Scenario("prefetch_nested_unused", "unused_eager_load", "Pet.user", 2, objects,
             lambda: list(Pet.objects.all().prefetch_related("user__occupation"))[0]),
    Scenario("select_nested", None, None, 2, objects,
             lambda: list(Pet.objects.all().select_related("user__occupation"))[0].user.occupation),
    Scenario("select_nested_unused", "unused_eager_load", "Pet.user", 2, objects,
             lambda: list(Pet.objects.all().select_related("user__occupation"))[0]),
    Scenario("values", None, None, 2, objects, lambda: list(NUser.objects.values("id"))),
]
PROBLEMS = [s for s in SCENARIOS if s.problem]
FINE = [s for s in SCENARIOS if s.label is None]
#: Labelled N+1 by nplusone, but one lazy load (no loop) at nplusone's own size: zeal's
#: rule and pulsegate's call it no N+1. Scored, and listed, as a conflict.
ONE_LOAD_CONFLICTS = frozenset({"one_to_one", "many_to_many"})
