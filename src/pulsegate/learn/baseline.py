"""Endpoint models keyed by (method, route), bounded by an LRU cap."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator

from pulsegate.learn.endpoint import EndpointModel
from pulsegate.records import UNMATCHED

KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


def endpoint_key(method: str, route: str | None) -> str:
    """``"METHOD /route/template"``, the key of an endpoint's model: a method outside
    HTTP's own folds into ``OTHER`` and an unmatched route into ``UNMATCHED``, so
    neither garbage methods nor random URLs can grow memory."""
    return f"{method if method in KNOWN_METHODS else 'OTHER'} {route or UNMATCHED}"


class BaselineStore:
    """Holds one :class:`EndpointModel` per endpoint key, at most ``max_endpoints``.

    Memory is bounded by the cap, never by traffic: past it, a least recently used
    endpoint is dropped (``evictions`` counts them). Recency is kept the CLOCK way, as
    an operating system's page cache approximates LRU: a request only marks its model
    ``referenced``; eviction walks from the oldest model, sparing (and re-queuing) a
    referenced one once and dropping the first that is not.

    The request path finds a model with :meth:`lookup` by (method, route) as the
    adapter has them -- two dictionary reads, no key string built or hashed.
    """

    __slots__ = ("evictions", "factory", "index", "max_endpoints", "max_index", "models",
                 "threshold")

    def __init__(self, factory: Callable[[], EndpointModel], max_endpoints: int = 1000) -> None:
        self.factory = factory
        self.max_endpoints = max_endpoints
        #: The z threshold every model gets (None: the factory's own), see set_threshold.
        self.threshold: float | None = None
        self.models: OrderedDict[str, EndpointModel] = OrderedDict()
        #: route -> method -> model, read by :meth:`lookup` (a hit also sets the model's
        #: ``referenced``). Several (method, route) pairs may share a model (methods that
        #: fold into OTHER), so the index is bounded on its own; it is cleared whenever
        #: a model leaves the store, so it never points at a dropped one.
        self.index: dict[str | None, dict[str, EndpointModel]] = {}
        self.max_index = 4 * max_endpoints
        self.evictions = 0

    def lookup(self, method: str, route: str | None) -> EndpointModel:
        """The model of ``method route``, made on first use (the request path's verb)."""
        try:
            model = self.index[route][method]
        except KeyError:
            model = self.get(endpoint_key(method, route))
            index = self.index
            if sum(len(by_method) for by_method in index.values()) >= self.max_index:
                index.clear()
            index.setdefault(route, {})[method] = model
            return model
        model.referenced = True
        return model

    def get(self, key: str) -> EndpointModel:
        """The model of an endpoint key, made on first use."""
        models = self.models
        model = models.get(key)
        if model is not None:
            model.referenced = True
            return model
        if len(models) >= self.max_endpoints:
            self._evict()
        model = models[key] = self.factory()
        model.key = key
        if self.threshold is not None:
            model.threshold = self.threshold
        return model

    def set_threshold(self, k: float) -> None:
        """The z threshold of every endpoint model, those held and those made later (a
        deployed model version's tuned value)."""
        self.threshold = k
        for model in list(self.models.values()):
            model.threshold = k

    def _evict(self) -> None:
        models = self.models
        while True:
            key, model = next(iter(models.items()))
            if model.referenced:
                model.referenced = False  # a second chance, at the back of the queue
                models.move_to_end(key)
                continue
            del models[key]
            self.evictions += 1
            self.index.clear()  # it may point at the dropped model; refills on use
            return

    def discard(self, key: str) -> None:
        """Forget an endpoint (a model that could not be restored)."""
        if self.models.pop(key, None) is not None:
            self.index.clear()

    def peek(self, key: str) -> EndpointModel | None:
        return self.models.get(key)

    def __len__(self) -> int:
        return len(self.models)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.models))

    def items(self) -> list[tuple[str, EndpointModel]]:
        return list(self.models.items())
