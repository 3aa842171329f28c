"""The learned response cache (opt-in; docs/response-cache.md): GET responses of
allow-listed routes that are learnt to repeat are served from a bounded store, with
``x-ml-optimization-applied: cache``.

:func:`invalidate` drops entries from every cache of the process (after a write the
gate did not see); ``gate.stats()["response_cache"]`` has the hit rate and the time
saved."""

from pulsegate.respcache.cache import ResponseCache, invalidate
from pulsegate.respcache.capture import Capture

__all__ = ["Capture", "ResponseCache", "invalidate"]
