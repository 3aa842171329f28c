"""The middleware instruments SQLAlchemy engines by itself (issue 20, build item 2):
every engine, existing and future, by default; none with ``instrument_sqlalchemy=False``;
only the named ones with a list. Each case runs in a fresh interpreter, since the
default listens on SQLAlchemy's ``Dialect`` class for the rest of the process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from pulsegate import Config, ConfigError

SCRIPT = '''
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from pulsegate.asgi import PulseGateMiddleware

before = create_engine("sqlite://")
app = FastAPI()
app.add_middleware(PulseGateMiddleware, {options})


@app.get("/q/{{which}}")
def q(which: str) -> dict[str, str]:
    engine = before if which == "before" else after
    with engine.connect() as conn:
        conn.execute(text("select 1"))
    return {{"ok": which}}


client = TestClient(app)
client.get("/q/before")  # builds the middleware stack
after = create_engine("sqlite://")  # an engine made after the middleware
# no query header when a request ran no SQL (decision 1): that reads as 0
print(client.get("/q/before").headers.get("x-ml-query-count", "0"),
      client.get("/q/after").headers.get("x-ml-query-count", "0"))
'''


@pytest.mark.parametrize(("options", "counted"), [
    ("", "1 1"),                                          # default: existing and future
    ("instrument_sqlalchemy=False", "0 0"),
    ("instrument_sqlalchemy=[before]", "1 0"),            # only the named engine
])
def test_engines_are_instrumented_by_the_middleware(options: str, counted: str) -> None:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(SCRIPT).format(
        options=options)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == counted.split()


def test_the_option_is_checked_and_read_from_the_environment() -> None:
    assert Config.from_env({"PULSEGATE_INSTRUMENT_SQLALCHEMY": "false"}).instrument_sqlalchemy \
        is False
    assert Config().instrument_sqlalchemy is True
    with pytest.raises(ConfigError) as err:
        Config(instrument_sqlalchemy="sometimes")
    assert err.value.key == "instrument_sqlalchemy"
    with pytest.raises(ConfigError):
        Config(instrument_sqlalchemy=["not an engine"])
