from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=100)


class Book(models.Model):
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, related_name="books", on_delete=models.CASCADE)


class Review(models.Model):
    stars = models.IntegerField()
    book = models.ForeignKey(Book, related_name="reviews", on_delete=models.CASCADE)
