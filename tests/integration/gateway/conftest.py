"""Fixtures for gateway integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.gateway_harness import GatewayUnderTest, start_gateway


@pytest.fixture
def gateway() -> Iterator[GatewayUnderTest]:
    server, engine, key = start_gateway()
    with server:
        under_test = GatewayUnderTest(server, engine, key)
        yield under_test
        under_test.close()
