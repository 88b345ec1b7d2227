"""The README's test of examples/quickstart.py: run by tests/test_quickstart_example.py."""

import pytest
from quickstart import Hello  # your AuthenticatedHandler
from tornado.httpclient import AsyncHTTPClient


@pytest.mark.asyncio  # pytest-asyncio comes with compass-auth[testing]
async def test_hello_lets_the_collector_in_and_no_one_else(devcluster, devcluster_serve):
    # Your handlers on a loopback port, verifying against the emulator, keys already loaded.
    url = await devcluster_serve([(r"/hello", Hello)])
    token = devcluster.mint()  # default/collector, audience compass-internal, pod-bound
    response = await AsyncHTTPClient().fetch(
        f"{url}/hello", headers={"Authorization": f"Bearer {token}"})
    assert response.code == 200

    intruder = devcluster.mint(service_account="intruder")  # valid, but not allowed here
    response = await AsyncHTTPClient().fetch(
        f"{url}/hello", headers={"Authorization": f"Bearer {intruder}"}, raise_error=False)
    assert response.code == 403
