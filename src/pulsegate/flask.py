"""Flask extension: one line, the Flask way.

    from pulsegate.flask import PulseGate
    PulseGate(app)                  # or: ext = PulseGate(); ext.init_app(app)

Configuration comes from ``app.config["PULSEGATE_<OPTION>"]``, else the extension's
keyword arguments, else the environment variable of that name (every option is set with
``app.config.setdefault`` to its default, so ``app.config`` shows the effective values)
and is validated when ``init_app`` runs. Each app gets its own engine, stored in
``app.extensions["pulsegate"]``; the extension object keeps no app, so one extension
serves several apps in one process (the application-factory pattern).

``app.wsgi_app`` is wrapped by :class:`~pulsegate.wsgi.PulseGateWSGIMiddleware`, so the
full duration runs until the server closes the response; the route template comes
from ``request.url_rule.rule`` (``/books/<int:book_id>``); an exception a view raises
is recorded by name (``got_request_exception``), as Django's is. When Flask-SQLAlchemy is
initialised on the app (before or after pulsegate) its engines are instrumented with
:func:`pulsegate.sqlalchemy.instrument` (at ``init_app``, or on the first request).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from flask import Flask, current_app, got_request_exception
from werkzeug.wrappers import Response
from werkzeug.wsgi import ClosingIterator

from pulsegate.config import Config, ConfigError
from pulsegate.cycle import record_view_error
from pulsegate.engine import PulseGate as Engine
from pulsegate.wsgi import Environ, PulseGateWSGIMiddleware

PREFIX = "PULSEGATE_"
EXTENSION_KEY = "pulsegate"

# Apps whose Flask-SQLAlchemy engines were instrumented. Weak, so a discarded app (tests
# build many) is not kept alive by pulsegate.
_instrumented: weakref.WeakSet[Flask] = weakref.WeakSet()


def _on_exception(sender: Flask, exception: BaseException | None = None,
                  **extra: Any) -> None:
    # Flask turns a view's unhandled exception into its 500 page itself, so the WSGI
    # middleware never sees it: the signal names it as the request's error.
    record_view_error(exception)


got_request_exception.connect(_on_exception)


def config_from_app(app: Flask) -> Config:
    """The validated :class:`Config` from ``app.config``'s ``PULSEGATE_*`` keys."""
    values = {k: v for k, v in app.config.items() if k.startswith(PREFIX)}
    return Config.from_mapping(values, prefix=PREFIX)


def get_gate(app: Flask | None = None) -> Engine:
    """The engine of ``app`` (default: the current app)."""
    target = app if app is not None else current_app
    gate: Engine = target.extensions[EXTENSION_KEY]
    return gate


def instrument_sqlalchemy(app: Flask) -> bool:
    """Instrument every engine of the app's Flask-SQLAlchemy extension; True when done
    (or nothing to do after Flask-SQLAlchemy was found), False when it is absent."""
    if app in _instrumented:
        return True
    db = app.extensions.get("sqlalchemy")
    if db is None:
        return False
    from pulsegate.sqlalchemy import instrument

    with app.app_context():
        engines = getattr(db, "engines", None)
        if engines is None:  # Flask-SQLAlchemy < 3: one engine
            engines = {None: db.engine}
        for engine in engines.values():
            instrument(engine)
    _instrumented.add(app)
    return True


class PulseGate:
    """The Flask extension. ``gate=`` shares an engine you built yourself; otherwise one
    is built per app from its ``PULSEGATE_*`` config (``**options`` are defaults for
    keys the app's config does not set)."""

    def __init__(self, app: Flask | None = None, *, gate: Engine | None = None,
                 **options: Any) -> None:
        if gate is not None and options:
            raise ConfigError("gate", gate, "a gate= or options, not both: the gate has its "
                              "own Config")
        Config(**options)  # typos and bad values fail here, spelt as they were passed
        self._shared_gate = gate
        self._defaults = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> Engine:
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("pulsegate is already initialised on this app")
        gate = self._shared_gate
        if gate is None:
            # Precedence: app.config, the extension's keywords, the environment (read
            # as PulseGate.from_env reads it: overrides win), Config's defaults.
            for key, value in self._defaults.items():
                app.config.setdefault(PREFIX + key.upper(), value)
            for key, value in Config.env_options().items():
                app.config.setdefault(PREFIX + key.upper(), value)
            for name, default, _doc in Config.options():
                app.config.setdefault(PREFIX + name.upper(), default)
            gate = Engine(config_from_app(app))
        app.extensions[EXTENSION_KEY] = gate

        def resolve(environ: Environ) -> str | None:
            # Asked when Flask's response calls start_response: the request is still
            # live then (also when a before_request answered early), and werkzeug keeps
            # it in the environ -- a dict read, where flask.request is a context-local
            # proxy. Flask clears it when the request ends; then match by the URL map.
            req = environ.get("werkzeug.request")
            if req is not None:
                try:
                    rule = req.url_rule
                except AttributeError:  # a plain werkzeug Request, not Flask's
                    pass
                else:
                    return rule.rule if rule is not None else None
            try:
                rule, _ = app.url_map.bind_to_environ(environ).match(return_rule=True)
            except Exception:
                return None
            return str(rule.rule)

        app.wsgi_app = _FlaskMiddleware(  # type: ignore[method-assign]
            app, app.wsgi_app, gate=gate, route_resolver=resolve)
        if app.extensions.get("sqlalchemy") is not None:
            try:
                instrument_sqlalchemy(app)
            except Exception as exc:
                gate.faults.record("flask.sqlalchemy", exc)
        return gate

    @property
    def gate(self) -> Engine:
        """The engine of the current app."""
        return get_gate()


class _FlaskMiddleware(PulseGateWSGIMiddleware):
    """The WSGI middleware plus one Flask chore: on the first request, instrument the
    Flask-SQLAlchemy engines if Flask-SQLAlchemy was initialised after pulsegate (its
    engines exist only then). Done in the middleware rather than a ``before_request``
    hook, which Flask would run (and check for a coroutine) on every request."""

    def __init__(self, app: Flask, wsgi_app: Any, **kwargs: Any) -> None:
        super().__init__(wsgi_app, **kwargs)
        self._flask = weakref.ref(app)
        if app not in _instrumented:
            self.on_first_request = self._instrument

    @staticmethod
    def body_is_complete(result: Iterable[bytes]) -> bool:
        """A list or tuple, or the body of a buffered werkzeug ``Response`` -- what a
        view returning a string, a template or JSON gives: werkzeug's
        ``ClosingIterator`` whose last callback is the response's own ``close`` and whose
        body is a list (``Response.is_sequence``). Iterating it only encodes those
        items, so the request finishes as Flask returns it, without wrapping the body
        (saves ≈ 150 bytecodes a request: ``benchmarks/bytecodes.py flask``). A streamed
        response (a generator) is not complete and is measured to its last chunk.
        Reads werkzeug's private ``_callbacks``: another werkzeug only loses the
        shortcut."""
        if type(result) is not ClosingIterator:
            return isinstance(result, (list, tuple))
        try:
            response = result._callbacks[-1].__self__  # type: ignore[attr-defined]
        except (AttributeError, IndexError, TypeError):
            return False
        return isinstance(response, Response) and response.is_sequence

    def _instrument(self) -> None:
        app = self._flask()
        if app is not None and app.extensions.get("sqlalchemy") is not None:
            try:
                instrument_sqlalchemy(app)
            except Exception as exc:
                self.gate.faults.record("flask.sqlalchemy", exc)
