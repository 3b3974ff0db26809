"""The official `kaggle` client, imported only when a command needs it (the package authenticates
on import), with each error a user meets turned into one line that says what to do."""
from __future__ import annotations

import contextlib
import errno
import io
from typing import Iterator

from pipeline import PipelineError

CREDENTIALS = ("put kaggle.json (kaggle.com -> Settings -> API -> Create New Token) in ~/.kaggle/ or "
               "$KAGGLE_CONFIG_DIR and chmod 600 it, or set KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN")


def connect(slug: str, doing: str):
    """An authenticated KaggleApi: credentials from the environment, kaggle.json or an access token."""
    with _quiet(), errors(slug, doing):
        from kaggle.api.kaggle_api_extended import KaggleApi  # runs kaggle/__init__: an auth attempt
        api = KaggleApi()
        try:
            api.authenticate()
        except SystemExit:  # the client's answer to "no credentials": print help, exit(1)
            raise PipelineError(f"{doing}: no Kaggle credentials: {CREDENTIALS}") from None
    return api


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The client prints its help and config notices to stdout; our one-line errors replace them."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


@contextlib.contextmanager
def errors(slug: str, doing: str, offline: str = "") -> Iterator[None]:
    """Map the client's exceptions to PipelineError: `doing` says what failed, `offline` what to
    do without a network."""
    import requests
    import urllib3
    try:
        yield
    except PipelineError:
        raise
    except requests.HTTPError as e:
        status = e.response.status_code if e.response is not None else None
        if status == 401:
            why = f"Kaggle rejected the credentials (401): {CREDENTIALS}"
        elif status == 403:
            why = (f"Kaggle refused (403): accept the competition's rules at https://www.kaggle.com/c/{slug}/rules "
                   f"(Join Competition), then run again")
        elif status == 404:
            why = f"Kaggle has no competition {slug!r} (404): check `slug` in its competition.py"
        elif status == 429:
            why = "Kaggle is rate-limiting this account (429): wait a few minutes and run again"
        else:
            why = f"Kaggle answered HTTP {status}: {str(e).splitlines()[0] if str(e) else ''}"
        raise PipelineError(f"{doing}: {why}") from None
    except (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError):
        raise PipelineError(f"{doing}: the connection broke off mid-transfer; run the same command again "
                            f"to resume") from None
    except (requests.ConnectionError, requests.Timeout):
        raise PipelineError(f"{doing}: cannot reach Kaggle (offline?); connect to the internet and run again"
                            + (f", or {offline}" if offline else "")) from None
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise PipelineError(f"{doing}: disk full{f' writing {e.filename}' if e.filename else ''}; "
                                f"free some space and run again") from None
        raise
