from django.urls import path
from library import views

urlpatterns = [
    path("authors/nplusone/", views.authors_nplusone),
    path("authors/eager/", views.authors_eager),
    path("books/nplusone/", views.books_nplusone),
    path("books/eager/", views.books_eager),
    path("books/page/", views.books_page),
    path("books/<int:pk>/", views.book),
    path("slow/", views.slow),
    path("error/", views.error),
    path("stream/", views.stream),
    path("echo/", views.echo),
    path("health/", views.health),
    path("pulsegate/detections/", views.detections),
    path("pulsegate/report/", views.report),
]
