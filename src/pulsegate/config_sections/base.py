"""What every configuration section shares: :func:`option`, the checks run when a
section is built, and :meth:`Section.view` (a section read off a full ``Config``).

A section is a frozen dataclass of the options one subsystem reads. Each option is
declared once, with its default, a doc line and its check::

    alpha: float = option(0.3, "Smoothing factor.", number(0, 1, lo_open=True))

``pulsegate.Config`` inherits every section, so the flat keyword surface (and each
option's declaration) lives here, and ``config.control`` hands the controller only its
own options.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from pulsegate.config_checks import Check, ConfigError, unknown_option

S = TypeVar("S", bound="Section")
T = TypeVar("T")

# Upper bounds: every number is finite and bounded (issue 18), so no option can overflow
# an arithmetic or turn a wait into forever. Generous: far beyond any sane setting.
MILLION = 1_000_000
HOUR_MS = 3_600_000
DAY_S = 86_400
WEEK_S = 7 * DAY_S
YEAR_S = 365 * DAY_S


def option(default: Any, doc: str, check: Check | None = None, *, factory: bool = False) -> Any:
    """Declare one option. ``check(key, value)`` returns the normalised value or raises."""
    meta = {"doc": doc, "check": check}
    if factory:
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Section:
    """A frozen group of options, every value checked (and normalised) when built.

    A section that relates two of its options (``min_concurrency <= max_concurrency``)
    extends ``__post_init__`` and calls ``super().__post_init__()`` first, so the
    relation sees checked values -- in the section alone and in ``Config``, which
    inherits every section and so runs every relation."""

    #: the section's name as an attribute of ``Config`` (``config.control``)
    NAME: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            check = f.metadata.get("check")
            if check is not None:
                object.__setattr__(self, f.name, check(f.name, getattr(self, f.name)))

    @classmethod
    def view(cls: type[S], source: Section) -> S:
        """This section's options as ``source`` (a ``Config``) holds them. Not checked
        again: ``source`` checked them when it was built."""
        section = object.__new__(cls)
        for f in fields(cls):
            object.__setattr__(section, f.name, getattr(source, f.name))
        return section

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The section's options, in declaration order."""
        return tuple(f.name for f in fields(cls))


def refuse_unknown_keywords(allowed: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: an unknown keyword argument is a ``ConfigError`` naming the
    nearest option (``did you mean z_threshold?``), not the dataclass's bare
    ``TypeError``. The generated ``__init__`` stays the signature type checkers and
    ``help()`` see."""

    def decorate(cls: type[T]) -> type[T]:
        generated = cls.__init__
        names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
        known = frozenset(names)
        section = getattr(cls, "NAME", "")
        if section:
            SECTION_OF.update(dict.fromkeys(names, section))

        @functools.wraps(generated)
        def checked_init(self: Any, *args: Any, **kwargs: Any) -> None:
            refuse_unknown(kwargs, known, names, allowed)
            generated(self, *args, **kwargs)

        cls.__init__ = checked_init  # type: ignore[assignment,method-assign]
        return cls

    return decorate


#: option -> the section declaring it, so that a section built alone can say where an
#: option of another section belongs instead of guessing a near name of its own
SECTION_OF: dict[str, str] = {}


def refuse_unknown(values: Mapping[str, Any], known: frozenset[str], names: Iterable[str],
                   allowed: str) -> None:
    """Raise for the first key of ``values`` that is not in ``known``."""
    for key, value in values.items():
        if key in known:
            continue
        if key in SECTION_OF:
            raise ConfigError(key, value, f"{allowed}; {key} is an option of "
                              f"config.{SECTION_OF[key]}", unknown=True)
        raise unknown_option(key, value, names, allowed)
