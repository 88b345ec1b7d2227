"""aiohttp client middlewares of the API-server session: re-read the token on 401, diagnose.

They sit in the ``ClientSession`` that ``kube._install_session`` gives kubernetes-asyncio, so
every call made with the service's own credentials goes through them (discovery, JWKS and
TokenReview alike) without the callers doing anything:

* ``retry_on_401``: after a 401, re-read the token file and, if the token changed, send the same
  request once more with it. ``tokenfile.TokenFile.refresh`` already notices a rotation before
  each call; this covers the rest (a filesystem whose attributes are cached, a rotation between
  the check and the send). An unchanged token is not retried: the answer would be the same.
* ``diagnose``: turn connection failures and 401/403 answers into the operator-facing lines of
  ``apiserver/troubleshoot.py``, and re-arm them after a success.

aiohttp runs client middlewares around each request and lets one send it again (its token
refresh example does exactly this); request bodies given as bytes or str are re-sendable.
"""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import hdrs

from ..logs.text import render
from . import troubleshoot
from .tokenfile import TokenFile

logger = logging.getLogger(__name__)

def retry_on_401(token_file: TokenFile) -> aiohttp.ClientMiddlewareType:
    """Middleware: on a 401, re-read ``token_file`` and retry once if the token changed."""

    async def middleware(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        response = await handler(request)
        if response.status != 401 or not token_file.reload():
            return response
        response.release()
        # The same prefix-in-value form kubernetes-asyncio's configuration uses.
        request.headers[hdrs.AUTHORIZATION] = f"Bearer {token_file.token}"
        fields = {"path": request.url.path}
        logger.info(render("API server answered 401; retrying once with the re-read token",
                           fields), extra=fields)
        return await handler(request)

    return middleware


def diagnose(
    troubleshooter: troubleshoot.Troubleshooter,
    *,
    host: str,
    bypass_address: str | None,
    ca_file: str | None,
    token_file: TokenFile | None,
) -> aiohttp.ClientMiddlewareType:
    """Middleware: report failures an operator can fix (see ``apiserver/troubleshoot.py``)."""

    async def middleware(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        try:
            response = await handler(request)
        except aiohttp.ClientConnectionError as error:
            troubleshooter.report(troubleshoot.diagnose_transport(
                error, host=host, bypass_address=bypass_address, ca_file=ca_file
            ))
            raise
        if response.status in (401, 403):
            token = token_file.token if token_file is not None else None
            troubleshooter.report(troubleshoot.diagnose_status(
                response.status,
                path=request.url.path,
                own_subject=troubleshoot.token_claim(token, "sub") if token else None,
                token_path=token_file.path if token_file is not None else None,
            ))
        elif response.status < 400:
            troubleshooter.clear()
        return response

    return middleware
