"""A chief's phone and a supervisor's phone, driven through the generated `chiefsync` bindings
against a real ChiefSync server. Run by `cargo test -p mobile-ffi` (tests/python_bindings.rs),
which generates the bindings, starts the server and sets:

  CHIEFSYNC_URL    the server's root URL
  CHIEFSYNC_DATA   a fresh directory for the phones' data
  CHIEFSYNC_PHOTO  a camera JPEG to attach

Only the standard library is used besides the bindings.
"""

import gc
import hashlib
import json
import math
import os
import time
import urllib.error
import urllib.request

import chiefsync as cs

URL = os.environ["CHIEFSYNC_URL"]
DATA = os.environ["CHIEFSYNC_DATA"]
PHOTO = os.environ["CHIEFSYNC_PHOTO"]
CHIEF_DIR = os.path.join(DATA, "chief")
SUPERVISOR_DIR = os.path.join(DATA, "supervisor")
DAY_MS = 86_400_000
WALK_POINTS = 3_600


def step(text):
    print(f"- {text}", flush=True)


def expect_error(kind, call):
    """Runs `call` and returns the typed error it must raise."""
    try:
        call()
    except kind as err:
        return err
    raise AssertionError(f"expected {kind.__name__}")


def haversine_m(a, b):
    (lon1, lat1), (lon2, lat2) = a, b
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


def walk_along(line, start_ms, points, speed_mps=1.2):
    """Fixes once a second walking up and down a river line ([lon, lat] pairs)."""
    steps = [haversine_m(a, b) for a, b in zip(line, line[1:])]
    length = sum(steps)
    out = []
    for i in range(points):
        d = (i * speed_mps) % (2 * length)
        d = d if d <= length else 2 * length - d
        for (a, b), s in zip(zip(line, line[1:]), steps):
            if d <= s or s == 0:
                f = 0 if s == 0 else d / s
                out.append((a[1] + f * (b[1] - a[1]), a[0] + f * (b[0] - a[0]), start_ms + i * 1000))
                break
            d -= s
        else:
            out.append((line[-1][1], line[-1][0], start_ms + i * 1000))
    return out


def server_json(method, path, token=None, body=None):
    """One call to the server's HTTP API from outside the phone, as a supervisor's browser."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(URL + "/api/v1" + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
        return json.loads(raw) if raw[:1] in (b"{", b"[") else raw


def main():
    chief = cs.FieldClient(CHIEF_DIR, URL)

    step("calls before login and a wrong password give typed errors")
    expect_error(cs.ChiefsyncError.NotLoggedIn, chief.me)
    expect_error(cs.ChiefsyncError.NotLoggedIn, chief.sync)
    err = expect_error(cs.ChiefsyncError.Auth, lambda: chief.login("demo-chief", "wrong"))
    assert err.code == "invalid_credentials", err
    expect_error(cs.ChiefsyncError.InvalidInput, lambda: cs.FieldClient(CHIEF_DIR + "-x", "ftp://nowhere"))

    step("login binds the device's actor and brings the jurisdiction's reference data")
    me = chief.login("demo-chief", "demo")
    assert me.username == "demo-chief" and me.role == "chief", me
    assert me.system == cs.ChiefSystem.RIVER and me.level == cs.Level.VILLAGE, me
    assert len(me.actor_id) == 32, me.actor_id
    assets = [a for a in chief.assets() if a.id in me.assets]
    assert assets, "the chief's river segments are in the reference data"
    asset = assets[0]
    line = json.loads(asset.geometry_geojson)["coordinates"]
    check_items = [c for c in chief.check_items() if c.system == asset.system]
    category = next(c for c in chief.categories() if c.system == asset.system)
    expect_error(cs.ChiefsyncError.InvalidInput, lambda: chief.start_patrol("no-such-asset"))

    step(f"record a patrol of {asset.name}: {WALK_POINTS} fixes at 1 Hz, check items, a photo")
    patrol_id = chief.start_patrol(asset.id)
    started = time.monotonic()
    now_ms = int(time.time() * 1000)
    for lat, lon, t in walk_along(line, now_ms, WALK_POINTS):
        chief.add_track_point(patrol_id, lat, lon, t, 4.0)
    per_point_ms = (time.monotonic() - started) * 1000 / WALK_POINTS
    print(f"  add_track_point: {per_point_ms:.2f} ms per fix, flushed to the store each time")
    expect_error(cs.ChiefsyncError.InvalidInput, lambda: chief.add_track_point(patrol_id, 91.0, 0.0, now_ms, 4.0))
    expect_error(cs.ChiefsyncError.InvalidInput, lambda: chief.add_track_point(patrol_id, math.nan, 117.0, now_ms, 4.0))
    chief.set_check_item(patrol_id, check_items[0].code, cs.CheckResult.OK, "")
    chief.set_check_item(patrol_id, check_items[1].code, cs.CheckResult.PROBLEM, "岸边有垃圾堆放")
    photo = chief.attach_photo(patrol_id, PHOTO, cs.PhotoRole.EVIDENCE)
    assert len(photo.sha256) == 64 and photo.bytes > 0, photo
    expect_error(cs.ChiefsyncError.Photo, lambda: chief.attach_photo(patrol_id, PHOTO + ".missing", cs.PhotoRole.EVIDENCE))
    summary = chief.finish_patrol(patrol_id, "巡查完毕，发现岸边垃圾")
    assert summary.points == WALK_POINTS, summary.points
    assert summary.valid, [f.detail for f in summary.flags]
    assert 3_500 < summary.distance_m < 5_000, summary.distance_m
    assert summary.duration_ms == (WALK_POINTS - 1) * 1000, summary.duration_ms
    assert summary.ended_at_ms is not None and not summary.synced
    assert [p.sha256 for p in summary.photos] == [photo.sha256]
    assert len(summary.check_items) == 2 and summary.photos_pending == 1

    step("report an issue found on the patrol, with the same photo as 'before'")
    lat, lon, _ = walk_along(line, now_ms, 1)[0]
    draft = cs.IssueDraft(
        category=category.code,
        severity=cs.Severity.URGENT,
        asset_id=asset.id,
        lat=lat,
        lon=lon,
        description="河面漂浮垃圾约20平方米",
        patrol_id=patrol_id,
    )
    issue_id = chief.report_issue(draft)
    chief.attach_photo(issue_id, PHOTO, cs.PhotoRole.BEFORE)
    assert len(chief.pending_uploads()) == 1, "one photo, one upload, two records"
    assert chief.patrol(patrol_id).issue_ids == [issue_id]
    err = expect_error(cs.ChiefsyncError.Forbidden, lambda: chief.append_event(issue_id, cs.EventDraft.ACCEPT()))
    assert "supervisor" in err.detail, err
    chief.append_event(issue_id, cs.EventDraft.COMMENT(text="已通知村委会"))
    detail = chief.issue(issue_id)
    assert detail.summary.status == cs.IssueStatus.REPORTED
    assert [t.kind for t in detail.timeline] == [cs.EventKind.REPORTED, cs.EventKind.COMMENT]
    assert cs.EventKind.ACCEPTED not in detail.allowed_actions
    assert [i.issue_id for i in chief.issues(cs.IssueFilter(open_only=True))] == [issue_id]

    step("sync sends the patrol and the issue, and uploads the photo")
    report = chief.sync()
    print(f"  {report}")
    assert report.docs_sent == 2 and report.refused == 0, report
    assert chief.patrol(patrol_id).synced and chief.issue(issue_id).summary.synced
    photo_on_server = report.photos_uploaded == 1
    if photo_on_server:
        assert report.photo_bytes_up == photo.bytes and report.photos_waiting == 0, report
        assert chief.pending_uploads() == []
    else:
        # A server without the photo endpoint: the photo waits on the phone, nothing is lost.
        assert any("cannot take photos" in e for e in report.errors), report.errors
        assert [u.status for u in chief.pending_uploads()] == [cs.UploadStatus.WAITING()]

    step("the server holds what the phone recorded")
    grant = server_json("POST", "/auth/login", body={
        "username": "demo-supervisor", "password": "demo", "device_id": "python-check"})
    token = grant["access_token"]
    patrol_view = server_json("GET", f"/docs/{patrol_id}", token)
    assert patrol_view["kind"] == "patrol" and len(patrol_view["track"]) == WALK_POINTS
    assert patrol_view["record"]["asset"] == asset.id
    assert patrol_view["record"]["photos"][0]["sha256"] == photo.sha256
    issue_view = server_json("GET", f"/docs/{issue_id}", token)
    assert issue_view["state"]["status"] == "reported"
    assert issue_view["record"]["patrol"] == patrol_id
    if photo_on_server:
        stored = server_json("GET", f"/blobs/{photo.sha256}", token)
        assert hashlib.sha256(stored).hexdigest() == photo.sha256

    step("the supervisor's phone: an invalid step is refused, then accept and assign")
    supervisor = cs.FieldClient(SUPERVISOR_DIR, URL)
    supervisor.login("demo-supervisor", "demo")
    supervisor.sync()
    seen = supervisor.issue(issue_id)
    assert cs.EventKind.ACCEPTED in seen.allowed_actions, seen.allowed_actions
    err = expect_error(cs.ChiefsyncError.InvalidTransition,
                       lambda: supervisor.append_event(issue_id, cs.EventDraft.VERIFY(note="")))
    assert err.kind == "verified" and err.status == "reported" and "accepted" in err.allowed, err
    supervisor.append_event(issue_id, cs.EventDraft.ACCEPT())
    deadline = int(time.time() * 1000) + 7 * DAY_MS
    assignee = cs.AssigneeDraft.DEPARTMENT(name="区水务局")
    supervisor.append_event(issue_id, cs.EventDraft.ASSIGN(assignee=assignee, deadline_ms=deadline))
    assert supervisor.sync().refused == 0

    step("the chief's phone receives the assignment")
    report = chief.sync()
    assert report.docs_received >= 1, report
    assigned = chief.issue(issue_id).summary
    assert assigned.status == cs.IssueStatus.ASSIGNED and assigned.assignee == "区水务局", assigned
    assert assigned.deadline_ms == deadline

    step("a second patrol stops mid-minute: buffered fixes survive closing the app")
    second = chief.start_patrol(asset.id)
    for lat, lon, t in walk_along(line, now_ms + 2 * 3_600_000, 90):
        chief.add_track_point(second, lat, lon, t, 5.0)
    uploads_before = chief.pending_uploads()
    del chief, supervisor
    gc.collect()

    step("reopen the store: everything is still there")
    chief = cs.FieldClient(CHIEF_DIR, URL)
    assert chief.me().username == "demo-chief"
    patrol = chief.patrol(patrol_id)
    assert patrol.points == WALK_POINTS and patrol.valid and patrol.synced, patrol
    assert patrol.notes == "巡查完毕，发现岸边垃圾" and len(patrol.check_items) == 2
    assert patrol.issue_ids == [issue_id] and [p.sha256 for p in patrol.photos] == [photo.sha256]
    assert chief.patrol(second).points == 90
    issue = chief.issue(issue_id)
    assert issue.summary.status == cs.IssueStatus.ASSIGNED
    assert issue.summary.description == "河面漂浮垃圾约20平方米"
    assert len(issue.timeline) == 4 and issue.photos[0].role == cs.PhotoRole.BEFORE
    assert chief.pending_uploads() == uploads_before
    assert chief.quarantine() == []
    chief.add_track_point(second, lat, lon, now_ms + 2 * 3_600_000 + 90_000, 5.0)
    assert chief.finish_patrol(second, "").points == 91
    assert chief.sync().docs_sent == 1

    step("the phone counts its requests and bytes for a network screen")
    traffic = chief.traffic()
    assert traffic.requests > 0 and traffic.bytes_up > 0 and traffic.bytes_down > 0, traffic
    assert traffic.retries == 0 and traffic.shed == 0, traffic

    step("first sign-in with the office's setup code: a short password, a wrong code are typed")
    admin = server_json("POST", "/auth/login", body={
        "username": "demo-admin", "password": "demo", "device_id": "python-office"})
    code = server_json("POST", "/admin/users/u-demo-field-chief/setup-code",
                       admin["access_token"], body={})["code"]
    field = cs.FieldClient(os.path.join(DATA, "field"), URL)
    err = expect_error(cs.ChiefsyncError.WeakPassword,
                       lambda: field.setup_password("demo-field-chief", code, "1234567"))
    assert err.min_chars == 8, err
    assert field.traffic().requests == 0, "a short password never leaves the phone"
    password = "田长巡田护耕每日"
    expect_error(cs.ChiefsyncError.InvalidSetupCode,
                 lambda: field.setup_password("demo-field-chief", "AAAA-BBBB-CCCC", password))
    me = field.setup_password("demo-field-chief", code, password)
    assert me.username == "demo-field-chief" and me.system == cs.ChiefSystem.FIELD, me
    assert field.assets(), "the reference data came down"
    assert field.sync().refused == 0
    expect_error(cs.ChiefsyncError.InvalidSetupCode,
                 lambda: field.setup_password("demo-field-chief", code, password))
    assert field.login("demo-field-chief", password).username == "demo-field-chief"

    step("logout keeps the work; the session is gone")
    chief.logout()
    expect_error(cs.ChiefsyncError.NotLoggedIn, chief.sync)
    assert {patrol_id, second} <= {p.patrol_id for p in chief.patrols()}
    print("all steps passed")


if __name__ == "__main__":
    main()
