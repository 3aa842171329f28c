"""Django ORM scenario corpus: (name, is_problem, expected kind, run())."""
# ruff: noqa: E501

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.paginator import Paginator
from django.db import connection, models
from django.db.models import Count, OuterRef, Prefetch, Subquery


class Author(models.Model):
    name = models.CharField(max_length=50)

    class Meta:
        app_label = "pulsegate"  # an installed app: reverse relations need one


class Profile(models.Model):
    bio = models.CharField(max_length=50)
    author = models.OneToOneField(Author, on_delete=models.CASCADE, related_name="profile")

    class Meta:
        app_label = "pulsegate"  # an installed app: reverse relations need one


class Tag(models.Model):
    name = models.CharField(max_length=50)

    class Meta:
        app_label = "pulsegate"  # an installed app: reverse relations need one


class Book(models.Model):
    title = models.CharField(max_length=50)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    tags = models.ManyToManyField(Tag, related_name="books")

    class Meta:
        app_label = "pulsegate"  # an installed app: reverse relations need one


class Review(models.Model):
    stars = models.IntegerField()
    book = models.ForeignKey(Book, on_delete=models.CASCADE, related_name="reviews")

    class Meta:
        app_label = "pulsegate"  # an installed app: reverse relations need one


class Setting(models.Model):
    key = models.CharField(max_length=50)

    class Meta:
        app_label = "pulsegate"  # an installed app: reverse relations need one


MODELS = [Author, Profile, Tag, Book, Review, Setting]


def create_schema() -> None:
    with connection.schema_editor() as editor:
        for m in MODELS:
            editor.create_model(m)


def seed() -> None:
    tags = [Tag.objects.create(name=f"t{i}") for i in range(6)]
    for a in range(10):
        author = Author.objects.create(name=f"a{a}")
        Profile.objects.create(author=author, bio=f"bio{a}")
        for b in range(3):
            book = Book.objects.create(title=f"b{a}{b}", author=author)
            book.tags.set([tags[(a + b) % 6], tags[(a + b + 1) % 6]])
            Review.objects.bulk_create([Review(book=book, stars=s) for s in (3, 5)])
    Setting.objects.create(key="site")


def serialize(book: Book) -> dict[str, Any]:  # a serializer-style helper
    return {"title": book.title, "author": book.author.name}


def _save_all() -> None:
    for b in Book.objects.all()[:8]:
        b.title += "!"
        b.save()


def _singles_on_separate_lines() -> None:
    first = Author.objects.get(pk=1)
    second = Author.objects.filter(pk=2).first()
    assert second is not None
    list(first.books.all())
    list(second.books.all())


def _gets_on_separate_lines() -> None:
    Author.objects.get(pk=1)
    Author.objects.get(pk=2)


Scenario = tuple[str, bool, str | None, Callable[[], object]]

PROBLEMS: list[Scenario] = [
    ("lazy one-to-many", True, "n_plus_one", lambda: [list(a.books.all()) for a in Author.objects.all()]),
    ("many-to-one", True, "n_plus_one", lambda: [b.author.name for b in Book.objects.all()]),
    ("one-to-one forward", True, "n_plus_one", lambda: [p.author.name for p in Profile.objects.all()]),
    ("one-to-one reverse", True, "n_plus_one", lambda: [a.profile.bio for a in Author.objects.all()]),
    ("many-to-many", True, "n_plus_one", lambda: [list(b.tags.all()) for b in Book.objects.all()]),
    ("many-to-many reverse", True, "n_plus_one", lambda: [list(t.books.all()) for t in Tag.objects.all()]),
    ("nested two levels", True, "n_plus_one",
     lambda: [list(b.reviews.all()) for a in Author.objects.all() for b in a.books.all()]),
    ("second level after prefetch", True, "n_plus_one",
     lambda: [list(b.reviews.all()) for a in Author.objects.prefetch_related("books") for b in a.books.all()]),
    ("get in a loop", True, "n_plus_one", lambda: [Author.objects.get(pk=i) for i in range(1, 11)]),
    ("related count in a loop", True, "n_plus_one", lambda: [a.books.count() for a in Author.objects.all()]),
    ("filter count in a loop", True, "n_plus_one",
     lambda: [Book.objects.filter(author_id=a.id).count() for a in Author.objects.all()]),
    ("exists in a loop", True, "n_plus_one",
     lambda: [Review.objects.filter(book=b).exists() for b in Book.objects.all()]),
    ("values_list per item", True, "n_plus_one",
     lambda: [list(Book.objects.filter(author=a).values_list("title", flat=True)) for a in Author.objects.all()]),
    ("deferred field via only()", True, "n_plus_one", lambda: [b.title for b in Book.objects.only("id")]),
    ("deferred field via defer()", True, "n_plus_one", lambda: [b.title for b in Book.objects.defer("title")]),
    ("serializer helper", True, "n_plus_one", lambda: [serialize(b) for b in Book.objects.all()]),
    ("create in a loop", True, "write_loop", lambda: [Tag.objects.create(name=f"n{i}") for i in range(8)]),
    ("save in a loop", True, "write_loop", _save_all),
    ("delete in a loop", True, "write_loop", lambda: [r.delete() for r in Review.objects.all()[:8]]),
    ("repeated identical query", True, "repeated_query",
     lambda: [Setting.objects.filter(key="site").first() for _ in range(8)]),
    ("get_or_create in a loop", True, "write_loop", lambda: [Tag.objects.get_or_create(name=f"g{i}") for i in range(8)]),
    ("update_or_create in a loop", True, "write_loop",
     lambda: [Setting.objects.update_or_create(key=f"k{i}", defaults={}) for i in range(8)]),
    ("filter + first per item", True, "n_plus_one", lambda: [Book.objects.filter(title=f"b{i}0").first() for i in range(10)]),
    ("filtered related manager per item", True, "n_plus_one",
     lambda: [list(a.books.filter(title__startswith="b")) for a in Author.objects.all()]),
    ("save new objects in a loop", True, "write_loop", lambda: [Tag(name=f"s{i}").save() for i in range(8)]),
    ("many-to-many add per item", True, "write_loop", lambda: [b.tags.add(Tag.objects.first()) for b in Book.objects.all()[:8]]),
    ("refresh_from_db per item", True, "n_plus_one", lambda: [a.refresh_from_db() for a in Author.objects.all()]),
    ("loop of exactly the threshold", True, "n_plus_one", lambda: [list(a.books.all()) for a in Author.objects.all()[:5]]),
    # Under the old repeat-count rule (>= 5) these were misses (labelled fine); the
    # structural rule sees any loop over a multi-row result, and a get() per item from
    # one line, as django-zeal does (issue 17).
    ("loop of four", True, "n_plus_one", lambda: [list(a.books.all()) for a in Author.objects.all()[:4]]),
    ("short get loop", True, "n_plus_one", lambda: [Author.objects.get(pk=i) for i in range(1, 4)]),
    ("two-object fixture", True, "n_plus_one", lambda: [b.author.name for b in Book.objects.filter(pk__in=[1, 4])]),
    ("objects created, not queried, then a loop", True, "n_plus_one",
     lambda: [list(a.books.all()) for a in [Author.objects.create(name=f"c{i}") for i in range(2)]]),
    ("single loads in a loop, then a relationship", True, "single_load_loop",
     lambda: [list(Author.objects.filter(pk=i).first().books.all()) for i in (1, 2, 3)]),  # type: ignore[union-attr]
]

FINE: list[Scenario] = [
    ("select_related", False, None, lambda: [b.author.name for b in Book.objects.select_related("author")]),
    ("select_related reverse one-to-one", False, None,
     lambda: [a.profile.bio for a in Author.objects.select_related("profile")]),
    ("prefetch_related", False, None,
     lambda: [list(a.books.all()) for a in Author.objects.prefetch_related("books")]),
    ("prefetch_related many-to-many", False, None,
     lambda: [list(b.tags.all()) for b in Book.objects.prefetch_related("tags")]),
    ("nested prefetch", False, None,
     lambda: [list(b.reviews.all()) for a in Author.objects.prefetch_related("books__reviews")
              for b in a.books.all()]),
    ("Prefetch object", False, None,
     lambda: [list(a.books.all()) for a in Author.objects.prefetch_related(
         Prefetch("books", queryset=Book.objects.order_by("title")))]),
    ("annotate Count", False, None,
     lambda: [a.n for a in Author.objects.annotate(n=Count("books"))]),
    ("bulk_create", False, None, lambda: Tag.objects.bulk_create([Tag(name=f"b{i}") for i in range(50)])),
    ("in_bulk", False, None, lambda: Author.objects.in_bulk(list(range(1, 11)))),
    ("single loads read on separate lines", False, None, lambda: _singles_on_separate_lines()),
    ("one lazy load on a multi-row result", False, None, lambda: list(Author.objects.all()[:3][0].books.all())),
    ("gets on separate lines", False, None, lambda: _gets_on_separate_lines()),
    ("pagination count + page", False, None,
     lambda: list(Paginator(Book.objects.order_by("id"), 10).page(2))),
    ("filter pk__in", False, None, lambda: list(Author.objects.filter(pk__in=[1, 2, 3, 4, 5]))),
    ("bulk_update", False, None,
     lambda: Book.objects.bulk_update([setattr(b, "title", "z") or b for b in Book.objects.all()], ["title"])),
    ("queryset update", False, None, lambda: Book.objects.filter(author_id__lt=5).update(title="u")),
    ("aggregate", False, None, lambda: Book.objects.aggregate(Count("id"))),
    ("a dashboard of distinct queries", False, None,
     lambda: (Author.objects.count(), Book.objects.count(), list(Tag.objects.all()),
              Review.objects.filter(stars=5).exists(), list(Setting.objects.all()))),
    ("values with a join", False, None, lambda: list(Book.objects.values("title", "author__name"))),
    ("iterator", False, None, lambda: [b.title for b in Book.objects.iterator(chunk_size=5)]),
    ("Prefetch to_attr", False, None,
     lambda: [a.bl for a in Author.objects.prefetch_related(Prefetch("books", to_attr="bl"))]),
    ("Subquery annotation", False, None,
     lambda: list(Author.objects.annotate(first=Subquery(Book.objects.filter(author=OuterRef("pk")).values("title")[:1])))),
    ("select_related + prefetch_related", False, None,
     lambda: [(b.author.name, list(b.tags.all())) for b in Book.objects.select_related("author").prefetch_related("tags")]),
    ("queryset delete", False, None, lambda: Review.objects.filter(stars=3).delete()),
    ("bulk_update in batches", False, None,
     lambda: Book.objects.bulk_update([setattr(b, "title", "w") or b for b in Book.objects.all()], ["title"],
                                      batch_size=5)),
    ("bulk_create in batches", False, None,
     lambda: Tag.objects.bulk_create([Tag(name=f"c{i}") for i in range(60)], batch_size=10)),
]

ALL = PROBLEMS + FINE
