from typing import Any

from django.core.management.base import BaseCommand

from library.models import Author, Book, Review

AUTHORS, BOOKS_PER_AUTHOR, REVIEWS_PER_BOOK = 8, 3, 2


class Command(BaseCommand):
    help = "Fill the reference database (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        if Author.objects.exists():
            return
        for a in range(AUTHORS):
            author = Author.objects.create(name=f"author {a}")
            for b in range(BOOKS_PER_AUTHOR):
                book = Book.objects.create(title=f"book {a}.{b}", author=author)
                Review.objects.bulk_create(
                    [Review(stars=1 + (a + b + r) % 5, book=book) for r in range(REVIEWS_PER_BOOK)])
