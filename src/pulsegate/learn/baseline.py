"""Endpoint models keyed by (method, route), bounded by an LRU cap."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator

from pulsegate.learn.endpoint import EndpointModel


class BaselineStore:
    """Holds one :class:`EndpointModel` per endpoint key, at most ``max_endpoints``.

    Memory is bounded by the cap, never by traffic: past it, the least recently used
    endpoint is dropped (``evictions`` counts them). Unmatched routes are folded into
    one key by the engine before they reach here.
    """

    __slots__ = ("evictions", "factory", "max_endpoints", "models")

    def __init__(self, factory: Callable[[], EndpointModel], max_endpoints: int = 1000) -> None:
        self.factory = factory
        self.max_endpoints = max_endpoints
        self.models: OrderedDict[str, EndpointModel] = OrderedDict()
        self.evictions = 0

    def get(self, key: str) -> EndpointModel:
        models = self.models
        model = models.get(key)
        if model is not None:
            models.move_to_end(key)
            return model
        model = models[key] = self.factory()
        if len(models) > self.max_endpoints:
            models.popitem(last=False)
            self.evictions += 1
        return model

    def peek(self, key: str) -> EndpointModel | None:
        return self.models.get(key)

    def __len__(self) -> int:
        return len(self.models)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.models))

    def items(self) -> list[tuple[str, EndpointModel]]:
        return list(self.models.items())
