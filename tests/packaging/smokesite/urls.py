from django.http import HttpRequest, JsonResponse
from django.urls import path

from smokesite.models import Author


def authors(request: HttpRequest) -> JsonResponse:
    data = [{"name": a.name, "books": [b.title for b in a.books.all()]}
            for a in Author.objects.all()]
    return JsonResponse(data, safe=False)


urlpatterns = [path("authors/", authors)]
