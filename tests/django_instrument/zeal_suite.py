"""django-zeal's own N+1 test suite as labelled scenarios.

Ported from https://github.com/taobojlen/django-zeal (``tests/test_nplusones.py``,
``tests/test_patch.py``, ``tests/djangoproject/social/{models,views}.py``), MIT License,
Copyright 2024 Tao Bojlén. Only the scenarios are ported (the ORM code each test runs
and the test's verdict); no zeal code is copied. Each ``with pytest.raises(NPlusOneError)``
block is a problem, the corrected loop after it and every ``with zeal_context()``
block of a "no false positive" test a non-problem. The models keep zeal's shape under
``Z`` names (the app already has a ``Profile`` and a ``Tag``).

Left out: tests of zeal's configuration (``ZEAL_NPLUSONE_THRESHOLD = 3``, ``MIDDLEWARE =
[]``) and its allow-list context manager (pulsegate's allow-list is the pytest marker,
tested in tests/queries/test_pytest_plugin.py).

``size`` is the number of parents the test's own fixture creates (2, or 4 for the
iterator tests); :func:`scaled` runs the same scenarios with every loop over 10.
"""
# ruff: noqa: E501

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import connection, models
from django.db.models import prefetch_related_objects


class ZUser(models.Model):
    username = models.TextField()
    following = models.ManyToManyField("ZUser", related_name="followers")
    blocked = models.ManyToManyField("ZUser")  # no related_name: zuser_set
    tags = GenericRelation("ZTag")

    class Meta:
        app_label = "pulsegate"


class ZProfile(models.Model):
    user = models.OneToOneField(ZUser, on_delete=models.CASCADE, related_name="profile")
    display_name = models.TextField()

    class Meta:
        app_label = "pulsegate"


class ZPost(models.Model):
    author = models.ForeignKey(ZUser, on_delete=models.CASCADE, related_name="posts")
    text = models.TextField()

    class Meta:
        app_label = "pulsegate"


class ZTag(models.Model):
    label = models.TextField()
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, null=True, blank=True)
    object_id = models.PositiveIntegerField(null=True, blank=True)
    obj = GenericForeignKey()

    class Meta:
        app_label = "pulsegate"


MODELS = [ZUser, ZProfile, ZPost, ZTag]


def create_schema() -> None:
    with connection.schema_editor() as editor:
        existing = connection.introspection.table_names()
        if ContentType._meta.db_table not in existing:
            editor.create_model(ContentType)
        for m in MODELS:
            editor.create_model(m)


# --- fixtures (zeal's factories: one post / profile / tag per user) ---------------------


def users_with_posts(n: int) -> None:
    for i in range(n):
        ZPost.objects.create(author=ZUser.objects.create(username=f"u{i}"), text="t")


def users_with_profiles(n: int) -> None:
    for i in range(n):
        ZProfile.objects.create(user=ZUser.objects.create(username=f"u{i}"), display_name="d")


def users_following_each_other(n: int) -> None:
    users = [ZUser.objects.create(username=f"u{i}") for i in range(n)]
    for i, u in enumerate(users):  # each follows (and blocks) both neighbours
        u.following.add(users[(i + 1) % n], users[(i - 1) % n])
        u.blocked.add(users[(i + 1) % n], users[(i - 1) % n])


def users_with_tags(n: int) -> None:
    for i in range(n):
        ZTag.objects.create(obj=ZUser.objects.create(username=f"u{i}"), label="x")


def null_tags(n: int) -> None:
    for i in range(n):
        ZTag.objects.create(label=f"l{i}")


# --- scenarios --------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    problem: bool  # zeal's verdict
    relationship: str | None  # what zeal names (and pulsegate should)
    size: int  # parents in zeal's own fixture
    fixture: Callable[[int], None]
    run: Callable[[], object]


def _single_fwd_m2o_first() -> None:
    a = ZPost.objects.filter(pk=1).first()
    b = ZPost.objects.filter(pk=2).first()
    _ = a.author
    _ = b.author


def _single_fwd_m2o_index() -> None:
    a = ZPost.objects.filter(pk=1)[0]
    b = ZPost.objects.filter(pk=2)[0]
    _ = a.author
    _ = b.author


def _single_fwd_m2o_get() -> None:
    a = ZPost.objects.get(pk=1)
    b = ZPost.objects.get(pk=2)
    _ = a.author
    _ = b.author


def _single_fwd_o2o_first() -> None:
    a = ZProfile.objects.filter(pk=1).first()
    b = ZProfile.objects.filter(pk=2).first()
    _ = a.user.username
    _ = b.user.username


def _single_fwd_o2o_index() -> None:
    a = ZProfile.objects.filter(pk=1)[0]
    b = ZProfile.objects.filter(pk=2)[0]
    _ = a.user.username
    _ = b.user.username


def _single_fwd_o2o_get() -> None:
    a = ZProfile.objects.get(pk=1)
    b = ZProfile.objects.get(pk=2)
    _ = a.user.username
    _ = b.user.username


def _single_rev_o2o_first() -> None:
    a = ZUser.objects.filter(pk=1).first()
    b = ZUser.objects.filter(pk=2).first()
    _ = a.profile.display_name
    _ = b.profile.display_name


def _single_rev_o2o_index() -> None:
    a = ZUser.objects.filter(pk=1)[0]
    b = ZUser.objects.filter(pk=2)[0]
    _ = a.profile.display_name
    _ = b.profile.display_name


def _single_rev_o2o_get() -> None:
    a = ZUser.objects.get(pk=1)
    b = ZUser.objects.get(pk=2)
    _ = a.profile.display_name
    _ = b.profile.display_name


def _single_generic_rel_first() -> None:
    a = ZUser.objects.filter(pk=1).first()
    b = ZUser.objects.filter(pk=2).first()
    _ = list(a.tags.all())
    _ = list(b.tags.all())


def _single_generic_rel_index() -> None:
    a = ZUser.objects.filter(pk=1)[0]
    b = ZUser.objects.filter(pk=2)[0]
    _ = list(a.tags.all())
    _ = list(b.tags.all())


def _single_generic_rel_get() -> None:
    a = ZUser.objects.get(pk=1)
    b = ZUser.objects.get(pk=2)
    _ = list(a.tags.all())
    _ = list(b.tags.all())


def _single_gfk_first() -> None:
    a = ZTag.objects.filter(pk=1).first()
    b = ZTag.objects.filter(pk=2).first()
    _ = a.obj
    _ = b.obj


def _single_gfk_index() -> None:
    a = ZTag.objects.filter(pk=1)[0]
    b = ZTag.objects.filter(pk=2)[0]
    _ = a.obj
    _ = b.obj


def _single_gfk_get() -> None:
    a = ZTag.objects.get(pk=1)
    b = ZTag.objects.get(pk=2)
    _ = a.obj
    _ = b.obj


def _single_following_first() -> None:
    u1 = ZUser.objects.get(pk=1)
    u2 = ZUser.objects.get(pk=2)
    _ = u1.following.first().username
    _ = u2.following.first().username


def _single_following_index() -> None:
    u1 = ZUser.objects.get(pk=1)
    u2 = ZUser.objects.get(pk=2)
    _ = u1.following.all()[0].username
    _ = u2.following.all()[0].username


def _single_following_get() -> None:
    u1 = ZUser.objects.get(pk=1)
    u2 = ZUser.objects.get(pk=2)
    _ = u1.following.get(pk=2).username
    _ = u2.following.get(pk=1).username


def _single_followers_first() -> None:
    u1 = ZUser.objects.get(pk=1)
    u2 = ZUser.objects.get(pk=2)
    _ = u1.followers.first().username
    _ = u2.followers.first().username


def _single_followers_index() -> None:
    u1 = ZUser.objects.get(pk=1)
    u2 = ZUser.objects.get(pk=2)
    _ = u1.followers.all()[0].username
    _ = u2.followers.all()[0].username


def _single_followers_get() -> None:
    u1 = ZUser.objects.get(pk=1)
    u2 = ZUser.objects.get(pk=2)
    _ = u1.followers.get(pk=2).username
    _ = u2.followers.get(pk=1).username



def _prefetch_per_instance(lookup: str, model: type[models.Model]) -> Callable[[], object]:
    def run() -> None:
        for obj in list(model.objects.all()):  # type: ignore[attr-defined]
            prefetch_related_objects([obj], lookup)
    return run


def _prefetch_one(user: ZUser) -> None:
    prefetch_related_objects([user], "posts")


def _singly_loaded_prefetch() -> None:
    _prefetch_one(ZUser.objects.get(pk=1))
    _prefetch_one(ZUser.objects.get(pk=2))


def _calls_on_different_lines() -> None:
    u1 = ZUser.objects.get(pk=1)
    u2 = ZUser.objects.get(pk=2)
    _a = list(u1.posts.all())
    _b = list(u2.posts.all())


def _reverse_twice() -> None:
    qs = ZUser.objects.get(pk=1).posts.all()
    list(qs)
    list(qs)


def _gfk_twice() -> None:
    [tag, *_] = list(ZTag.objects.all())
    _ = tag.obj
    _ = tag.obj


def _generic_relation_twice() -> None:
    qs = ZUser.objects.get(pk=1).tags.all()
    list(qs)
    list(qs)


def _gets_on_different_lines() -> None:
    _ = ZUser.objects.get(pk=1)
    _ = ZUser.objects.get(pk=2)


def _pickled_queryset() -> None:
    # zeal's robustness concern: instances from a pickled queryset
    qs = pickle.loads(pickle.dumps(ZPost.objects.all()))
    for post in qs:
        _ = post.author.username


def _web_request_single_user() -> None:
    # zeal's single_user_and_profile view; zeal requests it for two users, each request
    # its own context (in pulsegate: its own request or capture), so one is the scenario
    user = ZUser.objects.get(id=1)
    _ = (user.username, user.profile.display_name)


def _build() -> list[Scenario]:
    P, F = True, False
    out: list[Scenario] = [
        # forward many-to-one
        Scenario("forward many-to-one", P, "ZPost.author", 2, users_with_posts,
                 lambda: [p.author.username for p in ZPost.objects.all()]),
        Scenario("forward many-to-one, select_related", F, None, 2, users_with_posts,
                 lambda: [p.author.username for p in ZPost.objects.select_related("author").all()]),
        Scenario("forward many-to-one iterator", P, "ZPost.author", 4, users_with_posts,
                 lambda: [p.author.username for p in ZPost.objects.all().iterator(chunk_size=2)]),
        Scenario("forward many-to-one iterator, select_related", F, None, 4, users_with_posts,
                 lambda: [p.author.username for p in ZPost.objects.select_related("author").iterator(chunk_size=2)]),
        Scenario("forward many-to-one, prefetch instead of select_related", F, None, 2, users_with_posts,
                 lambda: [p.author.username for p in ZPost.objects.prefetch_related("author").all()]),
        # reverse many-to-one
        Scenario("reverse many-to-one", P, "ZUser.posts", 2, users_with_posts,
                 lambda: [list(u.posts.all()) for u in ZUser.objects.all()]),
        Scenario("reverse many-to-one, prefetch_related", F, None, 2, users_with_posts,
                 lambda: [list(u.posts.all()) for u in ZUser.objects.prefetch_related("posts").all()]),
        Scenario("reverse many-to-one iterator", P, "ZUser.posts", 4, users_with_posts,
                 lambda: [list(u.posts.all()) for u in ZUser.objects.all().iterator(chunk_size=2)]),
        Scenario("reverse many-to-one iterator, prefetch_related", F, None, 4, users_with_posts,
                 lambda: [list(u.posts.all()) for u in ZUser.objects.prefetch_related("posts").iterator(chunk_size=2)]),
        Scenario("reverse many-to-one evaluated twice", F, None, 1, users_with_posts, _reverse_twice),
        # forward one-to-one
        Scenario("forward one-to-one", P, "ZProfile.user", 2, users_with_profiles,
                 lambda: [p.user.username for p in ZProfile.objects.all()]),
        Scenario("forward one-to-one, select_related", F, None, 2, users_with_profiles,
                 lambda: [p.user.username for p in ZProfile.objects.select_related("user").all()]),
        Scenario("forward one-to-one iterator", P, "ZProfile.user", 4, users_with_profiles,
                 lambda: [p.user.username for p in ZProfile.objects.all().iterator(chunk_size=2)]),
        Scenario("forward one-to-one iterator, select_related", F, None, 4, users_with_profiles,
                 lambda: [p.user.username for p in ZProfile.objects.select_related("user").iterator(chunk_size=2)]),
        Scenario("forward one-to-one, prefetch instead of select_related", F, None, 2, users_with_profiles,
                 lambda: [p.user.username for p in ZProfile.objects.prefetch_related("user").all()]),
        # reverse one-to-one
        Scenario("reverse one-to-one", P, "ZUser.profile", 2, users_with_profiles,
                 lambda: [u.profile.display_name for u in ZUser.objects.all()]),
        Scenario("reverse one-to-one, select_related", F, None, 2, users_with_profiles,
                 lambda: [u.profile.display_name for u in ZUser.objects.select_related("profile").all()]),
        Scenario("reverse one-to-one iterator", P, "ZUser.profile", 4, users_with_profiles,
                 lambda: [u.profile.display_name for u in ZUser.objects.all().iterator(chunk_size=2)]),
        Scenario("reverse one-to-one iterator, select_related", F, None, 4, users_with_profiles,
                 lambda: [u.profile.display_name for u in ZUser.objects.select_related("profile").iterator(chunk_size=2)]),
        Scenario("reverse one-to-one, prefetch instead of select_related", F, None, 2, users_with_profiles,
                 lambda: [u.profile.display_name for u in ZUser.objects.prefetch_related("profile").all()]),
        # many-to-many both ways, with and without related_name
        Scenario("forward many-to-many", P, "ZUser.following", 2, users_following_each_other,
                 lambda: [list(u.following.all()) for u in ZUser.objects.all()]),
        Scenario("forward many-to-many, prefetch_related", F, None, 2, users_following_each_other,
                 lambda: [list(u.following.all()) for u in ZUser.objects.prefetch_related("following").all()]),
        Scenario("forward many-to-many iterator", P, "ZUser.following", 4, users_following_each_other,
                 lambda: [list(u.following.all()) for u in ZUser.objects.iterator(chunk_size=2)]),
        Scenario("forward many-to-many iterator, prefetch_related", F, None, 4, users_following_each_other,
                 lambda: [list(u.following.all()) for u in ZUser.objects.prefetch_related("following").iterator(chunk_size=2)]),
        Scenario("reverse many-to-many", P, "ZUser.followers", 2, users_following_each_other,
                 lambda: [list(u.followers.all()) for u in ZUser.objects.all()]),
        Scenario("reverse many-to-many, prefetch_related", F, None, 2, users_following_each_other,
                 lambda: [list(u.followers.all()) for u in ZUser.objects.prefetch_related("followers").all()]),
        Scenario("reverse many-to-many iterator", P, "ZUser.followers", 4, users_following_each_other,
                 lambda: [list(u.followers.all()) for u in ZUser.objects.all().iterator(chunk_size=2)]),
        Scenario("reverse many-to-many iterator, prefetch_related", F, None, 4, users_following_each_other,
                 lambda: [list(u.followers.all()) for u in ZUser.objects.prefetch_related("followers").all().iterator(chunk_size=2)]),
        Scenario("forward many-to-many, no related_name", P, "ZUser.blocked", 2, users_following_each_other,
                 lambda: [list(u.blocked.all()) for u in ZUser.objects.all()]),
        Scenario("forward many-to-many, no related_name, prefetch_related", F, None, 2, users_following_each_other,
                 lambda: [list(u.blocked.all()) for u in ZUser.objects.prefetch_related("blocked").all()]),
        Scenario("reverse many-to-many, no related_name", P, "ZUser.zuser_set", 2, users_following_each_other,
                 lambda: [list(u.zuser_set.all()) for u in ZUser.objects.all()]),
        Scenario("reverse many-to-many, no related_name, prefetch_related", F, None, 2, users_following_each_other,
                 lambda: [list(u.zuser_set.all()) for u in ZUser.objects.prefetch_related("zuser_set").all()]),
        # deferred fields
        Scenario("deferred field", P, "ZUser.username", 2, users_with_posts,
                 lambda: [p.author.username for p in ZPost.objects.all().select_related("author").only("author__id")]),
        Scenario("deferred field, only() with it", F, None, 2, users_with_posts,
                 lambda: [p.author.username for p in ZPost.objects.all().select_related("author").only("author__username")]),
        Scenario("deferred field iterator", P, "ZUser.username", 4, users_with_posts,
                 lambda: [p.author.username for p in ZPost.objects.all().select_related("author").only("author__id").iterator(chunk_size=2)]),
        Scenario("deferred field iterator, only() with it", F, None, 4, users_with_posts,
                 lambda: [p.author.username for p in ZPost.objects.all().select_related("author").only("author__username").iterator(chunk_size=2)]),
        Scenario("deferred field, prefetch instead of select_related", F, None, 2, users_with_posts,
                 lambda: [p.author.username for p in ZPost.objects.all().prefetch_related("author").only("author__username")]),
        # get()
        Scenario("get() in a loop", P, "ZUser.get()", 2, users_with_posts,
                 lambda: [ZUser.objects.get(pk=u) for u in ZUser.objects.values_list("pk", flat=True)]),
        Scenario("get() on different lines", F, None, 2, users_with_posts, _gets_on_different_lines),
        Scenario("reverse many-to-one on different lines", F, None, 2, users_with_posts, _calls_on_different_lines),
        # prefetch_related_objects per instance
        Scenario("prefetch_related_objects per instance, reverse many-to-one", P, "ZUser.posts", 2, users_with_posts,
                 _prefetch_per_instance("posts", ZUser)),
        Scenario("prefetch_related_objects per instance, forward many-to-one", P, "ZPost.author", 2, users_with_posts,
                 _prefetch_per_instance("author", ZPost)),
        Scenario("prefetch_related_objects per instance, reverse one-to-one", P, "ZUser.profile", 2, users_with_profiles,
                 _prefetch_per_instance("profile", ZUser)),
        Scenario("prefetch_related_objects per instance, forward many-to-many", P, "ZUser.following", 2, users_following_each_other,
                 _prefetch_per_instance("following", ZUser)),
        Scenario("prefetch_related_objects per instance, reverse many-to-many", P, "ZUser.followers", 2, users_following_each_other,
                 _prefetch_per_instance("followers", ZUser)),
        Scenario("prefetch_related_objects per instance, generic relation", P, "ZUser.tags", 2, users_with_tags,
                 _prefetch_per_instance("tags", ZUser)),
        Scenario("prefetch_related_objects per instance in an iterator", P, "ZUser.posts", 2, users_with_posts,
                 lambda: [prefetch_related_objects([u], "posts") for u in ZUser.objects.iterator(chunk_size=1)]),
        Scenario("prefetch_related_objects in bulk", F, None, 2, users_with_posts,
                 lambda: prefetch_related_objects(list(ZUser.objects.all()), "posts")),
        Scenario("prefetch_related_objects on singly loaded instances", F, None, 2, users_with_posts,
                 _singly_loaded_prefetch),
        # generic relation
        Scenario("generic relation", P, "ZUser.tags", 2, users_with_tags,
                 lambda: [list(u.tags.all()) for u in ZUser.objects.all()]),
        Scenario("generic relation, prefetch_related", F, None, 2, users_with_tags,
                 lambda: [list(u.tags.all()) for u in ZUser.objects.prefetch_related("tags").all()]),
        Scenario("generic relation iterator", P, "ZUser.tags", 4, users_with_tags,
                 lambda: [list(u.tags.all()) for u in ZUser.objects.all().iterator(chunk_size=2)]),
        Scenario("generic relation iterator, prefetch_related", F, None, 4, users_with_tags,
                 lambda: [list(u.tags.all()) for u in ZUser.objects.prefetch_related("tags").iterator(chunk_size=2)]),
        Scenario("generic relation evaluated twice", F, None, 1, users_with_tags, _generic_relation_twice),
        # generic foreign key
        Scenario("generic foreign key", P, "ZTag.obj", 2, users_with_tags,
                 lambda: [t.obj for t in ZTag.objects.all()]),
        Scenario("generic foreign key, prefetch_related", F, None, 2, users_with_tags,
                 lambda: [t.obj for t in ZTag.objects.prefetch_related("obj").all()]),
        Scenario("generic foreign key iterator", P, "ZTag.obj", 4, users_with_tags,
                 lambda: [t.obj for t in ZTag.objects.all().iterator(chunk_size=2)]),
        Scenario("generic foreign key iterator, prefetch_related", F, None, 4, users_with_tags,
                 lambda: [t.obj for t in ZTag.objects.prefetch_related("obj").iterator(chunk_size=2)]),
        Scenario("generic foreign key is null", F, None, 2, null_tags,
                 lambda: [t.obj for t in ZTag.objects.all()]),
        Scenario("generic foreign key read twice", F, None, 1, users_with_tags, _gfk_twice),
        # zeal's views and robustness tests
        Scenario("web request: all users and profiles", P, "ZUser.profile", 2, users_with_profiles,
                 lambda: [(u.username, u.profile.display_name) for u in ZUser.objects.all()]),
        Scenario("web request: one user", F, None, 2, users_with_profiles, _web_request_single_user),
        Scenario("pickled queryset", P, "ZPost.author", 2, users_with_posts, _pickled_queryset),
        Scenario("empty queryset first()", F, None, 0, users_with_posts, lambda: ZUser.objects.none().first()),
        Scenario("get() with values()", F, None, 1, users_with_posts,
                 lambda: ZUser.objects.filter(pk=1).values("username").get()),
        Scenario("prefetched manager called many times", F, None, 1, users_with_posts,
                 lambda: [list(ZUser.objects.prefetch_related("posts").all()[0].posts.all()) for _ in range(3)]),
    ]
    for rel, fixture, key in [("forward many-to-one", users_with_posts, "fwd_m2o"),
                              ("forward one-to-one", users_with_profiles, "fwd_o2o"),
                              ("reverse one-to-one", users_with_profiles, "rev_o2o"),
                              ("generic relation", users_with_tags, "generic_rel"),
                              ("generic foreign key", users_with_tags, "gfk")]:
        for how in ("first", "index", "get"):
            out.append(Scenario(f"single load, {rel}, {how}", F, None, 2, fixture,
                                globals()[f"_single_{key}_{how}"]))
    for key in ("following_first", "following_index", "following_get", "followers_first",
                "followers_index", "followers_get"):
        out.append(Scenario(f"single load, many-to-many manager, {key}", F, None, 2,
                            users_following_each_other, globals()[f"_single_{key}"]))
    return out


SCENARIOS = _build()
PROBLEMS = [s for s in SCENARIOS if s.problem]
FINE = [s for s in SCENARIOS if not s.problem]
