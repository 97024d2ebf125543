"""GraphClient rules with a small fake transport: retry and backoff math, Retry-After parsing,
throttling, dropped connections, replication lag, paging, $batch splitting, counters, logs."""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time

import pytest
import requests
from requests.adapters import BaseAdapter

from runner.errors import GraphError, Interrupted, Unavailable
from runner.graph.batch import BatchRequest, split_batches
from runner.graph.client import GraphClient
from runner.graph.http import GraphCounters, HttpSession, route_of, unreachable
from runner.graph.responses import GraphResponse, is_already_assigned, is_replication_lag
from runner.graph.retry import UNREACHABLE, Again, RetryLoop, RetryPolicy, parse_retry_after

TOKEN = "eyJ0eXAiOiJKV1QifQ.eyJ0aWQiOiJ4In0.c2lnbmF0dXJlLXZhbHVl"


def make_response(status: int, body=None, headers=None, url="https://graph.test/v1.0/x") -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = b"" if body is None else json.dumps(body).encode()
    r.headers.update(headers or {})
    r.headers.setdefault("request-id", f"rid-{status}")
    r.url = url
    return r


def err(code: str, message: str = "m", details=None) -> dict:
    e = {"code": code, "message": message, "innerError": {"request-id": "inner-rid"}}
    if details:
        e["details"] = details
    return {"error": e}


class FakeSession(requests.Session):
    """Answers from a script: each item is a Response, an exception, or a callable(method,
    url, kwargs) returning one of those."""

    def __init__(self, script):
        super().__init__()
        self.script = list(script)
        self.calls: list[tuple[str, str, dict]] = []

    def request(self, method, url, **kw):  # type: ignore[override]
        self.calls.append((method, url, kw))
        if not self.script:
            raise AssertionError(f"unexpected call {method} {url}")
        item = self.script.pop(0)
        if callable(item) and not isinstance(item, requests.Response):
            item = item(method, url, kw)
        if isinstance(item, BaseException):
            raise item
        return item


def client(script, **policy) -> tuple[GraphClient, FakeSession, list[float]]:
    sess = FakeSession(script)
    pol = RetryPolicy(**{"max_attempts": 4, "backoff_base": 0.5, "backoff_cap": 8, "retry_after_cap": 30,
                         "lag_budget": 20, "lag_base": 1, "lag_cap": 4, **policy})
    c = GraphClient("https://graph.test", lambda: TOKEN, sess, policy=pol, rng=random.Random(7))
    waits: list[float] = []

    def wait(s: float) -> bool:
        waits.append(s)
        return False
    c.wait = wait
    return c, sess, waits


# --------------------------------------------------------------------------- math

@pytest.mark.parametrize("value,expected", [("5", 5.0), ("0", 0.0), ("-3", 0.0), ("2.5", 2.5),
                                            ("abc", None), ("", None), (None, None)])
def test_parse_retry_after_seconds(value, expected):
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date():
    now = time.time()
    date = email.utils.formatdate(now + 42, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(42, abs=1)
    past = email.utils.formatdate(now - 100, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


def test_backoff_is_exponential_with_bounded_jitter():
    p = RetryPolicy(backoff_base=1.0, backoff_cap=10.0)
    rng = random.Random(1)
    for attempt, full in [(0, 1), (1, 2), (2, 4), (3, 8), (4, 10), (9, 10)]:
        for _ in range(50):
            d = p.backoff(attempt, rng)
            assert full / 2 <= d <= full
    # jitter spreads clients out: not every draw is the same
    assert len({round(p.backoff(3, rng), 6) for _ in range(20)}) > 1


def test_throttle_delay_honours_and_caps_retry_after():
    p = RetryPolicy(retry_after_cap=30)
    assert p.throttle_delay(0, "7") == 7
    assert p.throttle_delay(0, "120") == 30
    d = p.throttle_delay(2, None, random.Random(0))      # no header: backoff
    assert p.backoff_base * 2 <= d <= p.backoff_base * 4


# --------------------------------------------------------------------------- retries

def test_an_unreachable_service_is_tried_a_few_times_each_wait_said():
    waits: list[float] = []
    told: list[str] = []
    loop = RetryLoop(RetryPolicy(max_attempts=8, unreachable_attempts=3, unreachable_base=2.0),
                     wait=lambda s: waits.append(s) or False, cancel=threading.Event(), rng=random.Random(3),
                     tell=told.append)
    calls = []

    def attempt():
        calls.append(1)
        raise Again(Unavailable("cannot reach the sign-in service login.example: the connection was refused"),
                    "cannot reach the sign-in service login.example", kind=UNREACHABLE)
    with pytest.raises(Unavailable) as e:
        loop.run(attempt)
    assert len(calls) == 3                        # not max_attempts (8): bounded apart from throttling
    assert 1 <= waits[0] <= 2 and 2 <= waits[1] <= 4
    assert told == [f"cannot reach the sign-in service login.example: trying again in {waits[0]:.1f} s (try 2 of 3)",
                    f"cannot reach the sign-in service login.example: trying again in {waits[1]:.1f} s (try 3 of 3)"]
    assert e.value.message == ("cannot reach the sign-in service login.example: the connection was refused "
                               "(3 tries in 0 s)")


def test_what_counts_as_unreachable():
    try:
        requests.get("https://nothing-here.invalid/", timeout=(2, 2))
    except requests.ConnectionError as dns:
        assert unreachable(dns, 5) == "its name does not resolve in DNS"
    assert unreachable(requests.exceptions.ConnectTimeout(), 5) == "no answer within 5 s"
    # a connection made and then broken, or a read timeout: the service is there (tried longer)
    assert unreachable(requests.exceptions.ReadTimeout(), 5) is None
    assert unreachable(requests.ConnectionError("Connection reset by peer"), 5) is None


def test_429_is_retried_after_retry_after():
    c, sess, waits = client([make_response(429, err("TooManyRequests"), {"Retry-After": "3"}),
                             make_response(200, {"ok": 1})])
    r = c.get("/applications")
    assert r.body == {"ok": 1}
    assert waits == [3.0]
    assert len(sess.calls) == 2


@pytest.mark.parametrize("status", [503, 504])
def test_503_and_504_on_reads_back_off(status):
    c, _sess, waits = client([make_response(status, err("serviceNotAvailable")), make_response(200, {})])
    c.get("/applications")
    assert len(waits) == 1 and 0.25 <= waits[0] <= 0.5


def test_throttling_that_never_ends_fails_with_status_code_and_request_id():
    c, sess, waits = client([make_response(429, err("TooManyRequests"), {"Retry-After": "1", "request-id": "R1"})] * 4)
    with pytest.raises(GraphError) as ei:
        c.get("/servicePrincipals")
    e = ei.value
    assert (e.status, e.code, e.request_id) == (429, "TooManyRequests", "R1")
    assert "re-run" in (e.hint or "")
    assert len(sess.calls) == 4 and waits == [1.0, 1.0, 1.0]


def test_dropped_connection_on_get_is_retried():
    c, _sess, waits = client([requests.ConnectionError("Connection aborted."), make_response(200, {"v": 1})])
    assert c.get("/applications").body == {"v": 1}
    assert len(waits) == 1


def test_dropped_post_without_reconcile_is_not_replayed():
    c, sess, waits = client([requests.ConnectionError("Connection aborted.")])
    with pytest.raises(GraphError) as ei:
        c.post("/applications/x/addPassword", json={})
    assert "may have been applied" in ei.value.hint
    assert len(sess.calls) == 1 and waits == []


def test_dropped_post_asks_reconcile_then_replays_when_it_did_not_happen():
    seen = []
    c, sess, _ = client([requests.ConnectionError("Connection aborted."), make_response(200, {"keyId": "k"})])
    r = c.post("/applications/x/addPassword", json={}, reconcile=lambda: seen.append(1) or None)
    assert seen == [1] and r.body == {"keyId": "k"} and len(sess.calls) == 2


def test_dropped_post_returns_reconciled_answer_when_it_did_happen():
    done = GraphResponse(201, {"id": "found"})
    c, sess, _ = client([requests.ConnectionError("Connection aborted.")])
    assert c.post("/x", json={}, reconcile=lambda: done) is done
    assert len(sess.calls) == 1


def test_gateway_timeout_on_post_is_treated_like_a_drop():
    c, _sess, _ = client([make_response(504, err("UnknownError"))])
    with pytest.raises(GraphError) as ei:
        c.post("/x", json={})
    assert ei.value.status == 504 and "may have been applied" in ei.value.hint


def test_connection_refused_post_is_replayed_because_it_never_left():
    class NewConnectionError(Exception):
        pass
    e = requests.ConnectionError(NewConnectionError("refused"))
    c, _sess, _ = client([e, make_response(201, {"id": 1})])
    assert c.post("/x", json={}).status == 201


def test_other_errors_are_raised_at_once_with_fields():
    c, _sess, waits = client([make_response(400, err("Request_BadRequest", "Invalid value"), {"request-id": "R9"})])
    with pytest.raises(GraphError) as ei:
        c.patch("/applications/1", json={})
    assert (ei.value.status, ei.value.code, ei.value.request_id) == (400, "Request_BadRequest", "R9")
    assert "Invalid value" in str(ei.value) and waits == []


def test_allowed_status_is_returned_not_raised():
    c, _, _ = client([make_response(404, err("Request_ResourceNotFound"))])
    assert c.get("/applications(uniqueName='x')", allow=(404,)).status == 404


# --------------------------------------------------------------------------- replication lag

def test_lag_errors_are_retried_only_when_asked():
    nb = err("Request_BadRequest", "The appId 'a' of the service principal does not reference a valid application object.",
             details=[{"code": "NoBackingApplicationObject", "target": "appId"}])
    c, _sess, waits = client([make_response(400, nb), make_response(400, nb), make_response(201, {"id": "sp"})])
    assert c.patch("/servicePrincipals(appId='a')", json={}, lag=True).body == {"id": "sp"}
    assert len(waits) == 2 and 0.5 <= waits[0] <= 1 and 1 <= waits[1] <= 2
    c2, _, _ = client([make_response(400, nb)])
    with pytest.raises(GraphError):
        c2.patch("/servicePrincipals(appId='a')", json={})


def test_lag_gives_up_after_its_budget_with_a_clear_hint():
    nf = err("Request_ResourceNotFound", "Resource 'x' does not exist")
    c, _sess, waits = client([make_response(404, nf)] * 50, lag_budget=5, lag_base=1, lag_cap=2)
    with pytest.raises(GraphError) as ei:
        c.post("/applications/x/addPassword", json={}, lag=True)
    assert sum(waits) <= 5
    assert "not replicated" in ei.value.hint and "re-run" in ei.value.hint


@pytest.mark.parametrize("status,body,expected", [
    (404, err("Request_ResourceNotFound"), True),
    (400, err("Request_BadRequest", "x", [{"code": "NoBackingApplicationObject"}]), True),
    (400, err("Request_BadRequest", "Not a valid reference update."), True),
    (400, err("Request_BadRequest", "not a valid reference update"), True),
    (400, err("Request_BadRequest", "Not a valid reference update for property owners: bad id"), False),
    (400, err("Request_BadRequest", "Permission being assigned already exists on the object."), False),
    (400, err("Request_BadRequest", "Invalid value specified for property 'displayName'"), False),
    (403, err("Authorization_RequestDenied"), False),
    (403, err("Authorization_RequestDenied", "Insufficient privileges to complete the operation."), False),
    (403, err("Authorization_RequestDenied", "When using this permission, the backing application of the service "
                                             "principal being created must in the local tenant"), True),
    (403, err("Authorization_RequestDenied", "When using this permission, the backing application of the service "
                                             "principal being created must be in the local tenant"), True),
    (400, err("Request_BadRequest", "the backing application of the service principal being created must in the "
                                    "local tenant"), False),
])
def test_replication_lag_is_recognised_narrowly(status, body, expected):
    assert is_replication_lag(status, body) is expected


def test_duplicate_assignment_answer_is_recognised():
    assert is_already_assigned(400, err("Request_BadRequest", "Permission being assigned already exists on the object."))
    assert not is_already_assigned(400, err("Request_BadRequest", "Permission being assigned was not found"))
    assert not is_already_assigned(409, err("Request_BadRequest", "Permission being assigned already exists"))


# --------------------------------------------------------------------------- deadline and cancel

def test_wait_past_the_deadline_raises_the_last_error_instead():
    c, _sess, waits = client([make_response(429, err("TooManyRequests"), {"Retry-After": "20"})] * 3)
    c.deadline = c.clock() + 5
    with pytest.raises(GraphError) as ei:
        c.get("/x")
    assert ei.value.status == 429 and waits == []


def test_interrupt_stops_a_retry_wait_from_another_thread():
    sess = FakeSession([make_response(429, err("TooManyRequests"), {"Retry-After": "30"})] * 3)
    c = GraphClient("https://graph.test", lambda: TOKEN, sess, policy=RetryPolicy(retry_after_cap=30))
    threading.Timer(0.2, c.interrupt).start()
    t0 = time.monotonic()
    with pytest.raises(Interrupted):
        c.get("/x")
    assert time.monotonic() - t0 < 5


# --------------------------------------------------------------------------- paging

def test_get_all_follows_next_links():
    pages = [make_response(200, {"value": [1, 2], "@odata.nextLink": "https://graph.test/v1.0/x?$skiptoken=a"}),
             make_response(200, {"value": [3], "@odata.nextLink": "https://graph.test/v1.0/x?$skiptoken=b"}),
             make_response(200, {"value": []})]
    c, sess, _ = client(pages)
    assert c.get_all("/x", params={"$select": "id"}) == [1, 2, 3]
    assert [u for _, u, _ in sess.calls][1:] == ["https://graph.test/v1.0/x?$skiptoken=a",
                                                 "https://graph.test/v1.0/x?$skiptoken=b"]


def test_next_link_to_another_host_is_refused():
    c, sess, _ = client([make_response(200, {"value": [1], "@odata.nextLink": "https://evil.test/steal"})])
    with pytest.raises(GraphError) as ei:
        c.get_all("/x")
    assert "another host" in str(ei.value) and len(sess.calls) == 1


# --------------------------------------------------------------------------- $batch

def _batch_echo(statuses=None):
    """A fake $batch endpoint: answers each sub-request 200 unless `statuses` says otherwise
    (id -> list of (status, body, headers) consumed in turn)."""
    statuses = statuses or {}
    log = []

    def answer(method, url, kw):
        reqs = kw["json"]["requests"]
        log.append([r["id"] for r in reqs])
        out = []
        for r in reqs:
            script = statuses.get(r["id"])
            if script:
                st, body, hd = script.pop(0)
            else:
                st, body, hd = 201 if r["method"] == "POST" else 200, {"id": r["id"]}, {}
            out.append({"id": r["id"], "status": st, "body": body, "headers": hd})
        return make_response(200, {"responses": out})
    return answer, log


def test_batch_splits_at_twenty():
    answer, log = _batch_echo()
    c, _sess, _ = client([answer] * 3)
    items = [BatchRequest(str(i), "POST", "/servicePrincipals/r/appRoleAssignedTo", body={"i": i}) for i in range(46)]
    res = c.batch(items)
    assert [len(b) for b in log] == [20, 20, 6]
    assert sorted(res, key=int) == [str(i) for i in range(46)]
    assert all(r.status == 201 for r in res.values())
    assert c.counters.requests == 3 and c.counters.writes == 3 and c.counters.write_operations == 46


def test_split_batches_keeps_dependency_chains_together():
    items = [BatchRequest(str(i), "GET", "/x") for i in range(19)]
    items += [BatchRequest("a", "POST", "/a"), BatchRequest("b", "POST", "/b", depends_on=["a"])]
    chunks = split_batches(items)
    assert [len(c) for c in chunks] == [19, 2]
    with pytest.raises(ValueError):
        split_batches([BatchRequest("a", "GET", "/x", depends_on=["zz"])])
    chain = [BatchRequest("0", "GET", "/x")] + [BatchRequest(str(i), "GET", "/x", depends_on=[str(i - 1)]) for i in range(1, 21)]
    with pytest.raises(ValueError):
        split_batches(chain)


def test_batch_retries_throttled_items_only_after_the_longest_retry_after():
    answer, log = _batch_echo({"3": [(429, err("TooManyRequests"), {"Retry-After": "2"})],
                               "5": [(503, err("serviceNotAvailable"), {"Retry-After": "4"})]})
    c, _sess, waits = client([answer, answer])
    res = c.batch([BatchRequest(str(i), "GET", f"/x/{i}") for i in range(8)])
    assert log == [[str(i) for i in range(8)], ["3", "5"]]
    assert waits == [4.0]
    assert all(r.ok for r in res.values())


def test_batch_item_lag_is_retried_when_asked_and_duplicates_count_as_done():
    dup = (400, err("Request_BadRequest", "Permission being assigned already exists on the object."), {})
    lag = (400, err("Request_BadRequest", "Not a valid reference update."), {})
    answer, log = _batch_echo({"1": [lag, lag], "2": [dup]})
    c, _sess, waits = client([answer] * 3)
    res = c.batch([BatchRequest(str(i), "POST", "/r") for i in range(3)], lag=True, ok_if=is_already_assigned)
    assert log == [["0", "1", "2"], ["1"], ["1"]]
    assert res["1"].status == 201 and res["2"].status == 400
    assert len(waits) == 2


def test_batch_returns_final_item_failures_for_the_caller():
    answer, _ = _batch_echo({"0": [(403, err("Authorization_RequestDenied"), {})]})
    c, _, waits = client([answer])
    res = c.batch([BatchRequest("0", "POST", "/r"), BatchRequest("1", "POST", "/r")])
    assert res["0"].status == 403 and res["1"].status == 201 and waits == []


def test_failed_dependency_is_returned_not_retried():
    answer, log = _batch_echo({"a": [(400, err("Request_BadRequest"), {})],
                               "b": [(424, err("FailedDependency"), {})]})
    c, _, _ = client([answer])
    res = c.batch([BatchRequest("a", "POST", "/a"), BatchRequest("b", "POST", "/b", depends_on=["a"])])
    assert res["b"].status == 424 and log == [["a", "b"]]


# --------------------------------------------------------------------------- counters and logs

def test_route_of_groups_ids_and_keys():
    assert route_of("GET", "https://g/v1.0/servicePrincipals/0b1c2d3e-0000-4000-8000-0123456789ab/appRoleAssignments?$x=1") \
        == "GET /servicePrincipals/{id}/appRoleAssignments"
    assert route_of("PATCH", "/v1.0/applications(uniqueName='my-app')") == "PATCH /applications(uniqueName={uniqueName})"


def test_counters_and_before_write_hook():
    seen = []
    c, _sess, _ = client([make_response(200, {}), make_response(204), make_response(201, {})])
    c.before_write = lambda m, p: seen.append((m, p))
    c.get("/a")
    c.patch("/applications/1", json={})
    c.post("/b", json={})
    snap = c.counters.snapshot()
    assert (snap["requests"], snap["writes"], snap["write_operations"]) == (3, 2, 2)
    assert snap["by_route"] == {"GET /a": 1, "PATCH /applications/1": 1, "POST /b": 1}
    assert seen == [("PATCH", "/v1.0/applications/1"), ("POST", "/v1.0/b")]


def test_before_write_refusal_stops_the_write_before_it_is_sent():
    c, sess, _ = client([])

    def refuse(m, p):
        raise GraphError("no", status=None, code="x")
    c.before_write = refuse
    with pytest.raises(GraphError):
        c.patch("/applications/1", json={})
    assert sess.calls == []


def test_logs_never_show_the_token(caplog):
    c, sess, _ = client([make_response(429, err("TooManyRequests"), {"Retry-After": "0"}), make_response(200, {})])
    with caplog.at_level(logging.DEBUG):
        c.get("/applications")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "graph GET /v1.0/applications -> 429" in text and "request-id=rid-429" in text
    assert TOKEN not in text and "Bearer" not in text
    assert sess.calls[0][2]["headers"]["Authorization"] == f"Bearer {TOKEN}"


def test_every_call_carries_a_timeout_shortened_by_the_deadline():
    c, sess, _ = client([make_response(200, {}), make_response(200, {})])
    c.get("/a")
    assert sess.calls[0][2]["timeout"] == (10.0, 60.0)
    c.deadline = c.clock() + 3
    c.get("/a")
    connect, read = sess.calls[1][2]["timeout"]
    assert read <= 3 and connect <= 3


# --------------------------------------------------------------------------- the CA bundle pitfall

class RecordingAdapter(BaseAdapter):
    def __init__(self):
        super().__init__()
        self.seen: list[dict] = []

    def send(self, request, **kw):
        self.seen.append(kw)
        r = make_response(200, {})
        r.request = request
        return r

    def close(self):
        pass


def test_httpsession_passes_its_ca_bundle_even_when_the_environment_sets_one(monkeypatch, tmp_path):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    plain = requests.Session()
    plain.verify = str(ca)
    a1 = RecordingAdapter()
    plain.mount("https://", a1)
    plain.get("https://login.test/x")
    assert a1.seen[0]["verify"] == "/etc/ssl/certs/ca-certificates.crt"   # the pitfall

    s = HttpSession(ca_bundle=str(ca), timeout=(3, 7))
    a2 = RecordingAdapter()
    s.mount("https://", a2)
    s.get("https://login.test/x")
    s.post("https://login.test/token", data={"a": 1})
    assert [k["verify"] for k in a2.seen] == [str(ca), str(ca)]
    assert [k["timeout"] for k in a2.seen] == [(3, 7), (3, 7)]
    assert s.trust_env  # proxies from the environment still apply


def test_httpsession_hides_throttling_from_msal_but_remembers_it():
    s = HttpSession(own_retry_after=True)

    class A(RecordingAdapter):
        def send(self, request, **kw):
            r = make_response(429, {"error": "temporarily_unavailable"}, {"Retry-After": "9"})
            r.request = request
            return r
    s.mount("https://", A())
    r = s.post("https://login.test/token")
    assert r.headers["Retry-After"] == "0"
    assert (s.last_status, s.last_retry_after) == (429, "9")


def test_counters_snapshot_is_consistent_under_threads():
    c = GraphCounters()

    def work():
        for _ in range(500):
            c.add_request("GET /x", "POST", 2)
    ts = [threading.Thread(target=work) for _ in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    snap = c.snapshot()
    assert snap["requests"] == 2000 and snap["writes"] == 2000 and snap["write_operations"] == 4000
