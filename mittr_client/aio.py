"""The asyncio client (httpx.AsyncClient): the same operations as `Client`, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx

from mittr_client import calls
from mittr_client.calls import Call, Page
from mittr_client.retry import RetryPolicy
from mittr_client.transport import (
    DEFAULT_TIMEOUT,
    Done,
    Fail,
    Recover,
    Retry,
    judge_answer,
    judge_failure,
    settings,
    timeout_for,
)

P = ParamSpec("P")
T = TypeVar("T")


class _Ns:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client


def _op(f: Callable[P, Call[T]]) -> Callable[Concatenate[_Ns, P], Coroutine[Any, Any, T]]:
    async def method(self: _Ns, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._client.run(f(*args, **kwargs))
    method.__doc__ = f.__doc__
    return method


def _pages(f: Callable[P, Call[Page[T]]]) -> Callable[Concatenate[_Ns, P], AsyncIterator[T]]:
    def method(self: _Ns, /, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
        async def walk() -> AsyncIterator[T]:
            cursor = kwargs.pop("cursor", None)
            while True:
                page = await self._client.run(f(*args, **{**kwargs, "cursor": cursor}))  # type: ignore[arg-type]
                for item in page.items:
                    yield item
                if not page.has_more or not page.cursor:
                    return
                cursor = page.cursor
        return walk()
    method.__doc__ = "Every item, page after page (follows the cursor): `async for x in ...`."
    return method


class Events(_Ns):
    create = _op(calls.create_event)
    create_batch = _op(calls.create_events_batch)
    get = _op(calls.get_event)
    list = _pages(calls.list_events)
    page = _op(calls.list_events)
    replay = _op(calls.replay_event)
    edit = _op(calls.edit_event)
    retry = _op(calls.retry_events)
    deliveries = _op(calls.event_deliveries)


class Deliveries(_Ns):
    list = _pages(calls.list_deliveries)
    page = _op(calls.list_deliveries)
    get = _op(calls.get_delivery)


class Endpoints(_Ns):
    create = _op(calls.create_endpoint)
    get = _op(calls.get_endpoint)
    list = _pages(calls.list_endpoints)
    page = _op(calls.list_endpoints)
    update = _op(calls.update_endpoint)
    delete = _op(calls.delete_endpoint)
    pause = _op(calls.pause_endpoint)
    resume = _op(calls.resume_endpoint)


class EventTypes(_Ns):
    create = _op(calls.create_event_type)
    get = _op(calls.get_event_type)
    list = _pages(calls.list_event_types)
    page = _op(calls.list_event_types)
    delete = _op(calls.delete_event_type)


class ApiKeys(_Ns):
    create = _op(calls.create_api_key)
    list = _pages(calls.list_api_keys)
    page = _op(calls.list_api_keys)
    delete = _op(calls.delete_api_key)


class Projects(_Ns):
    create = _op(calls.create_project)
    get = _op(calls.get_project)
    list = _pages(calls.list_projects)
    page = _op(calls.list_projects)


class Polling(_Ns):
    poll = _op(calls.poll)
    ack = _op(calls.ack)


class AsyncClient:
    """`AsyncClient(base_url, api_key)`; both default to MITTR_URL / MITTR_API_KEY. Use as an async
    context manager or await aclose()."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *, project_id: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, retry: RetryPolicy | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        url, headers = settings(base_url, api_key, project_id)
        self.base_url = url
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout)
        self.events = Events(self)
        self.deliveries = Deliveries(self)
        self.endpoints = Endpoints(self)
        self.event_types = EventTypes(self)
        self.api_keys = ApiKeys(self)
        self.projects = Projects(self)
        self.polling = Polling(self)

    async def run(self, call: Call[T]) -> T:
        """Send one call, retrying as its kind allows; its parsed answer, or a MittrError."""
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = await self._http.request(call.method, call.path, params=call.query, json=call.body,
                                                headers=call.headers, timeout=timeout_for(call, self.timeout))
            except httpx.TransportError as exc:
                verdict: Any = judge_failure(call, attempt, exc, self.retry)
            else:
                verdict = judge_answer(call, attempt, resp.status_code, resp.text, resp.headers.get("retry-after"),
                                       self.retry)
            if isinstance(verdict, Done):
                return verdict.value  # type: ignore[no-any-return]
            if isinstance(verdict, Retry):
                await self._sleep(verdict.delay)
                continue
            if isinstance(verdict, Recover):
                recovered: Any = await self.run(calls.get_event(verdict.event_id))
                return recovered  # type: ignore[no-any-return]
            assert isinstance(verdict, Fail)
            raise verdict.error

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
