// A chief's phone and a supervisor's phone, driven through the generated Kotlin bindings on the
// JVM (JNA loads the library built for this machine) against a real ChiefSync server: the same
// scenario as tests/python/field_client.py, so the two bindings are held to one behaviour.
// Run by `cargo test -p mobile-ffi --test kotlin_bindings`, which generates the bindings, starts
// the server and sets CHIEFSYNC_URL, CHIEFSYNC_DATA (a fresh directory for the phones' data)
// and CHIEFSYNC_PHOTO (a camera JPEG to attach).
import java.awt.image.BufferedImage
import java.io.File
import java.net.HttpURLConnection
import java.net.URI
import java.security.MessageDigest
import java.util.concurrent.CompletableFuture
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import javax.imageio.ImageIO
import kotlin.coroutines.Continuation
import kotlin.coroutines.EmptyCoroutineContext
import kotlin.coroutines.startCoroutine
import kotlin.math.asin
import kotlin.math.cos
import kotlin.math.sin
import kotlin.math.sqrt
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import uniffi.chiefsync.*

val URL: String = System.getenv("CHIEFSYNC_URL")
val DATA: String = System.getenv("CHIEFSYNC_DATA")
val PHOTO: String = System.getenv("CHIEFSYNC_PHOTO")
const val DAY_MS = 86_400_000L
const val WALK_POINTS = 3_600

fun step(text: String) = println("- $text")

/** Runs `call` and returns the typed exception it must throw. */
inline fun <reified E : ChiefsyncException> expectError(call: () -> Unit): E {
    try {
        call()
    } catch (e: ChiefsyncException) {
        if (e is E) return e
        fail("expected ${E::class.simpleName}, got $e")
    }
    fail("expected ${E::class.simpleName}, nothing was thrown")
    throw IllegalStateException()
}

fun haversineM(a: DoubleArray, b: DoubleArray): Double {
    val (lon1, lat1) = a.map { Math.toRadians(it) }
    val (lon2, lat2) = b.map { Math.toRadians(it) }
    val h = sin((lat2 - lat1) / 2).let { it * it } +
        cos(lat1) * cos(lat2) * sin((lon2 - lon1) / 2).let { it * it }
    return 2 * 6_371_008.8 * asin(sqrt(h))
}

/** The [lon, lat] vertices of an asset's GeoJSON geometry. */
fun vertices(geojson: String): List<DoubleArray> =
    Regex("""\[\s*(-?[0-9.]+)\s*,\s*(-?[0-9.]+)\s*]""").findAll(geojson)
        .map { doubleArrayOf(it.groupValues[1].toDouble(), it.groupValues[2].toDouble()) }
        .toList()

/** Fixes once a second walking up and down a river line: (lat, lon, time). */
fun walkAlong(line: List<DoubleArray>, startMs: Long, points: Int, speedMps: Double = 1.2):
    List<Triple<Double, Double, Long>> {
    val steps = line.zipWithNext { a, b -> haversineM(a, b) }
    val length = steps.sum()
    return (0 until points).map { i ->
        var d = (i * speedMps) % (2 * length)
        if (d > length) d = 2 * length - d
        val t = startMs + i * 1000L
        var fix: Triple<Double, Double, Long>? = null
        for ((k, s) in steps.withIndex()) {
            if (d <= s || s == 0.0) {
                val (a, b) = line[k] to line[k + 1]
                val f = if (s == 0.0) 0.0 else d / s
                fix = Triple(a[1] + f * (b[1] - a[1]), a[0] + f * (b[0] - a[0]), t)
                break
            }
            d -= s
        }
        fix ?: Triple(line.last()[1], line.last()[0], t)
    }
}

/** One call to the server's HTTP API from outside the phone, as a supervisor's browser. */
fun serverCall(method: String, path: String, token: String? = null, body: String? = null): ByteArray {
    val conn = URI(URL + "/api/v1" + path).toURL().openConnection() as HttpURLConnection
    conn.requestMethod = method
    conn.setRequestProperty("Content-Type", "application/json")
    if (token != null) conn.setRequestProperty("Authorization", "Bearer $token")
    if (body != null) {
        conn.doOutput = true
        conn.outputStream.use { it.write(body.toByteArray()) }
    }
    assertEquals("$method $path", 200, conn.responseCode)
    return conn.inputStream.use { it.readBytes() }
}

fun jsonString(json: String, key: String): String =
    Regex(""""$key"\s*:\s*"([^"]*)"""").find(json)?.groupValues?.get(1)
        ?: throw AssertionError("no $key in $json")

fun sha256Hex(bytes: ByteArray): String =
    MessageDigest.getInstance("SHA-256").digest(bytes).joinToString("") { "%02x".format(it) }

/** Runs a suspending block from this (test) thread as a UI thread would start it, and returns
 *  the future of its result: the thread is free as soon as the block suspends. */
fun <T> launch(block: suspend () -> T): CompletableFuture<T> {
    val result = CompletableFuture<T>()
    block.startCoroutine(Continuation(EmptyCoroutineContext) { outcome ->
        outcome.fold({ result.complete(it) }, { result.completeExceptionally(it) })
    })
    return result
}

/** A camera-like JPEG of noise, different for each seed, so each is its own photo. */
fun noisePhoto(file: File, seed: Int) {
    val random = java.util.Random(seed.toLong())
    val image = BufferedImage(1600, 1200, BufferedImage.TYPE_INT_RGB)
    for (y in 0 until 1200) for (x in 0 until 1600) image.setRGB(x, y, random.nextInt(0x1000000))
    ImageIO.write(image, "jpg", file)
}

class FieldClientTest {
    @Test
    fun aChiefAndASupervisorAgainstARealServer() {
        val chiefDir = "$DATA/chief"
        var chief = FieldClient(chiefDir, URL)

        step("calls before login and a wrong password give typed exceptions")
        expectError<ChiefsyncException.NotLoggedIn> { chief.me() }
        expectError<ChiefsyncException.NotLoggedIn> { chief.sync() }
        val wrong = expectError<ChiefsyncException.Auth> { chief.login("demo-chief", "wrong") }
        assertEquals("invalid_credentials", wrong.code)
        expectError<ChiefsyncException.InvalidInput> { FieldClient("$chiefDir-x", "ftp://nowhere") }

        step("login binds the device's actor and brings the jurisdiction's reference data")
        val me = chief.login("demo-chief", "demo")
        assertEquals("demo-chief", me.username)
        assertEquals("chief", me.role)
        assertEquals(ChiefSystem.RIVER, me.system)
        assertEquals(Level.VILLAGE, me.level)
        assertEquals(32, me.actorId.length)
        val asset = chief.assets().first { it.id in me.assets }
        val line = vertices(asset.geometryGeojson)
        val checkItems = chief.checkItems().filter { it.system == asset.system }
        val category = chief.categories().first { it.system == asset.system }
        expectError<ChiefsyncException.InvalidInput> { chief.startPatrol("no-such-asset") }

        step("record a patrol of ${asset.name}: $WALK_POINTS fixes at 1 Hz, check items, a photo")
        val patrolId = chief.startPatrol(asset.id)
        val nowMs = System.currentTimeMillis()
        val started = System.nanoTime()
        for ((lat, lon, t) in walkAlong(line, nowMs, WALK_POINTS)) {
            chief.addTrackPoint(patrolId, lat, lon, t, 4.0f)
        }
        val perPointMs = (System.nanoTime() - started) / 1e6 / WALK_POINTS
        println("  addTrackPoint: %.2f ms per fix, flushed to the store each time".format(perPointMs))
        expectError<ChiefsyncException.InvalidInput> { chief.addTrackPoint(patrolId, 91.0, 0.0, nowMs, 4.0f) }
        expectError<ChiefsyncException.InvalidInput> { chief.addTrackPoint(patrolId, Double.NaN, 117.0, nowMs, 4.0f) }
        chief.setCheckItem(patrolId, checkItems[0].code, CheckResult.OK, "")
        chief.setCheckItem(patrolId, checkItems[1].code, CheckResult.PROBLEM, "岸边有垃圾堆放")
        val photo = chief.attachPhoto(patrolId, PHOTO, PhotoRole.EVIDENCE)
        assertEquals(64, photo.sha256.length)
        assertTrue(photo.bytes > 0u)
        expectError<ChiefsyncException.Photo> { chief.attachPhoto(patrolId, "$PHOTO.missing", PhotoRole.EVIDENCE) }
        val summary = chief.finishPatrol(patrolId, "巡查完毕，发现岸边垃圾")
        assertEquals(WALK_POINTS.toULong(), summary.points)
        assertTrue(summary.flags.joinToString { it.detail }, summary.valid)
        assertTrue("${summary.distanceM}", summary.distanceM > 3_500 && summary.distanceM < 5_000)
        assertEquals((WALK_POINTS - 1) * 1000L, summary.durationMs)
        assertTrue(summary.endedAtMs != null && !summary.synced)
        assertEquals(listOf(photo.sha256), summary.photos.map { it.sha256 })
        assertEquals(2, summary.checkItems.size)
        assertEquals(1u, summary.photosPending)

        step("report an issue found on the patrol, with the same photo as 'before'")
        val (lat, lon, _) = walkAlong(line, nowMs, 1)[0]
        val draft = IssueDraft(
            category = category.code,
            severity = Severity.URGENT,
            assetId = asset.id,
            lat = lat,
            lon = lon,
            description = "河面漂浮垃圾约20平方米",
            patrolId = patrolId,
        )
        val issueId = chief.reportIssue(draft)
        chief.attachPhoto(issueId, PHOTO, PhotoRole.BEFORE)
        assertEquals("one photo, one upload, two records", 1, chief.pendingUploads().size)
        assertEquals(listOf(issueId), chief.patrol(patrolId).issueIds)
        val forbidden = expectError<ChiefsyncException.Forbidden> { chief.appendEvent(issueId, EventDraft.Accept) }
        assertTrue(forbidden.detail, "supervisor" in forbidden.detail)
        chief.appendEvent(issueId, EventDraft.Comment(text = "已通知村委会"))
        val detail = chief.issue(issueId)
        assertEquals(IssueStatus.REPORTED, detail.summary.status)
        assertEquals(listOf(EventKind.REPORTED, EventKind.COMMENT), detail.timeline.map { it.kind })
        assertFalse(EventKind.ACCEPTED in detail.allowedActions)
        assertEquals(listOf(issueId), chief.issues(IssueFilter(openOnly = true)).map { it.issueId })

        step("sync sends the patrol and the issue, and uploads the photo")
        var report = chief.sync()
        println("  $report")
        assertEquals(2u, report.docsSent)
        assertEquals(0u, report.refused)
        assertTrue(chief.patrol(patrolId).synced && chief.issue(issueId).summary.synced)
        assertEquals(report.errors.toString(), 1u, report.photosUploaded)
        assertEquals(photo.bytes, report.photoBytesUp)
        assertEquals(0u, report.photosWaiting)
        assertEquals(emptyList<PendingUpload>(), chief.pendingUploads())

        step("the server holds what the phone recorded")
        val grant = String(serverCall("POST", "/auth/login", body =
            """{"username":"demo-supervisor","password":"demo","device_id":"kotlin-check"}"""))
        val token = jsonString(grant, "access_token")
        val patrolView = String(serverCall("GET", "/docs/$patrolId", token))
        assertEquals("patrol", jsonString(patrolView, "kind"))
        assertTrue(patrolView.contains(asset.id) && patrolView.contains(photo.sha256))
        val issueView = String(serverCall("GET", "/docs/$issueId", token))
        assertEquals("reported", jsonString(issueView, "status"))
        assertEquals(photo.sha256, sha256Hex(serverCall("GET", "/blobs/${photo.sha256}", token)))

        step("the supervisor's phone: an invalid step is refused, then accept and assign")
        var supervisor = FieldClient("$DATA/supervisor", URL)
        supervisor.login("demo-supervisor", "demo")
        supervisor.sync()
        val seen = supervisor.issue(issueId)
        assertTrue(EventKind.ACCEPTED in seen.allowedActions)
        val refused = expectError<ChiefsyncException.InvalidTransition> {
            supervisor.appendEvent(issueId, EventDraft.Verify(note = ""))
        }
        assertEquals("verified", refused.kind)
        assertEquals("reported", refused.status)
        assertTrue("accepted" in refused.allowed)
        supervisor.appendEvent(issueId, EventDraft.Accept)
        val deadline = System.currentTimeMillis() + 7 * DAY_MS
        val assignee = AssigneeDraft.Department(name = "区水务局")
        supervisor.appendEvent(issueId, EventDraft.Assign(assignee = assignee, deadlineMs = deadline))
        assertEquals(0u, supervisor.sync().refused)

        step("the chief's phone receives the assignment")
        report = chief.sync()
        assertTrue("$report", report.docsReceived >= 1u)
        val assigned = chief.issue(issueId).summary
        assertEquals(IssueStatus.ASSIGNED, assigned.status)
        assertEquals("区水务局", assigned.assignee)
        assertEquals(deadline, assigned.deadlineMs)

        step("a second patrol stops mid-minute: buffered fixes survive closing the app")
        val second = chief.startPatrol(asset.id)
        for ((la, lo, t) in walkAlong(line, nowMs + 2 * 3_600_000, 90)) {
            chief.addTrackPoint(second, la, lo, t, 5.0f)
        }
        val uploadsBefore = chief.pendingUploads()
        chief.close()
        supervisor.close()

        step("reopen the store: everything is still there")
        chief = FieldClient(chiefDir, URL)
        assertEquals("demo-chief", chief.me().username)
        val patrol = chief.patrol(patrolId)
        assertEquals(WALK_POINTS.toULong(), patrol.points)
        assertTrue(patrol.valid && patrol.synced)
        assertEquals("巡查完毕，发现岸边垃圾", patrol.notes)
        assertEquals(2, patrol.checkItems.size)
        assertEquals(listOf(issueId), patrol.issueIds)
        assertEquals(listOf(photo.sha256), patrol.photos.map { it.sha256 })
        assertEquals(90UL, chief.patrol(second).points)
        val issue = chief.issue(issueId)
        assertEquals(IssueStatus.ASSIGNED, issue.summary.status)
        assertEquals("河面漂浮垃圾约20平方米", issue.summary.description)
        assertEquals(4, issue.timeline.size)
        assertEquals(PhotoRole.BEFORE, issue.photos[0].role)
        assertEquals(uploadsBefore, chief.pendingUploads())
        assertEquals(emptyList<QuarantinedChange>(), chief.quarantine())
        chief.addTrackPoint(second, lat, lon, nowMs + 2 * 3_600_000 + 90_000, 5.0f)
        assertEquals(91UL, chief.finishPatrol(second, "").points)
        assertEquals(1u, chief.sync().docsSent)

        step("logout keeps the work; the session is gone")
        chief.logout()
        expectError<ChiefsyncException.NotLoggedIn> { chief.sync() }
        assertTrue(chief.patrols().map { it.patrolId }.containsAll(listOf(patrolId, second)))
        chief.close()
    }

    @Test
    fun aFirstSignInWithTheOfficesSetupCode() {
        step("the office issues a setup code; the phone counts every request it sends")
        val admin = String(serverCall("POST", "/auth/login", body =
            """{"username":"demo-admin","password":"demo","device_id":"kotlin-office"}"""))
        val code = jsonString(String(serverCall("POST", "/admin/users/u-demo-field-chief/setup-code",
            jsonString(admin, "access_token"), "{}")), "code")
        val field = FieldClient("$DATA/field", URL)

        step("a short password and a wrong code are typed exceptions")
        val weak = expectError<ChiefsyncException.WeakPassword> {
            field.setupPassword("demo-field-chief", code, "1234567")
        }
        assertEquals(8u, weak.minChars)
        assertEquals(0UL, field.traffic().requests)
        val password = "田长巡田护耕每日"
        expectError<ChiefsyncException.InvalidSetupCode> {
            field.setupPassword("demo-field-chief", "AAAA-BBBB-CCCC", password)
        }

        step("the right code sets the password and signs the phone in; the code is spent")
        val me = field.setupPassword("demo-field-chief", code, password)
        assertEquals("demo-field-chief", me.username)
        assertEquals(ChiefSystem.FIELD, me.system)
        assertTrue(field.assets().isNotEmpty())
        assertEquals(0u, field.sync().refused)
        expectError<ChiefsyncException.InvalidSetupCode> {
            field.setupPassword("demo-field-chief", code, password)
        }
        assertEquals("demo-field-chief", field.login("demo-field-chief", password).username)
        val traffic = field.traffic()
        assertTrue("$traffic", traffic.requests >= 4UL && traffic.bytesUp > 0UL && traffic.bytesDown > 0UL)
        assertEquals(0UL, traffic.retries)
        field.close()
    }

    @Test
    fun networkCallsRunOffTheCallingThreadAndProgressIsReadableMeanwhile() {
        val dir = File("$DATA/progress").apply { mkdirs() }
        val client = FieldClient(dir.path, URL)
        val idle = client.syncProgress()
        assertFalse(idle.running)
        assertEquals(0u, idle.docsTotal)

        step("login through background: the calling thread is free while it runs")
        val caller = Thread.currentThread()
        val gate = CountDownLatch(1)
        var ranOn: Thread? = null
        val signedIn = launch {
            client.background {
                ranOn = Thread.currentThread()
                // Held until the caller has shown it is not waiting for the call.
                assertTrue(gate.await(30, TimeUnit.SECONDS))
                login("demo-chief", "demo")
            }
        }
        assertFalse("the caller returned before the login ended", signedIn.isDone)
        gate.countDown()
        val me = signedIn.get(60, TimeUnit.SECONDS)
        assertEquals("demo-chief", me.username)
        assertNotEquals(caller, ranOn)
        val wrong = launch { client.background { login("demo-chief", "wrong") } }
        val failure = runCatching { wrong.get(60, TimeUnit.SECONDS) }.exceptionOrNull()
        assertTrue("$failure", failure?.cause is ChiefsyncException.Auth)

        step("a patrol with four photos: progress is read while the sync runs")
        val asset = client.assets().first { it.id in me.assets }
        val patrol = client.startPatrol(asset.id)
        val t0 = System.currentTimeMillis()
        for ((lat, lon, t) in walkAlong(vertices(asset.geometryGeojson), t0, 120)) {
            client.addTrackPoint(patrol, lat, lon, t, 5.0f)
        }
        for (i in 1..4) {
            val file = File(dir, "photo-$i.jpg")
            noisePhoto(file, i)
            client.attachPhoto(patrol, file.path, PhotoRole.EVIDENCE)
        }
        client.finishPatrol(patrol, "")
        val pending = client.pendingUploads()
        assertEquals(4, pending.size)
        val bytes = pending.sumOf { it.size }

        val syncing = launch { client.background { sync() } }
        val seen = mutableListOf<SyncProgress>()
        while (!syncing.isDone) {
            val now = client.syncProgress()
            if (seen.lastOrNull() != now) seen.add(now)
        }
        val report = syncing.get()
        val done = client.syncProgress()
        println("  ${seen.size} progress states seen while syncing; last: $done")
        assertEquals(4u, report.photosUploaded)
        assertEquals(SyncProgress(false, 1u, 1u, report.docsReceived, 0u, 4u, 4u, bytes, bytes), done)
        val running = seen.filter { it.running }
        assertTrue("the sync was seen running: $seen", running.isNotEmpty())
        assertTrue(
            "photos were seen part-way: $seen",
            running.any { it.photosTotal == 4u && it.photoBytesSent < bytes },
        )
        for ((a, b) in running.zipWithNext()) {
            assertTrue("$a then $b", b.photosSent >= a.photosSent && b.photoBytesSent >= a.photoBytesSent)
            assertTrue("$b", b.photoBytesSent <= b.photoBytesTotal && b.docsSent <= b.docsTotal)
        }
        client.close()
    }

    @Test
    fun theReadmeExampleRuns() {
        val client = FieldClient("$DATA/example", URL)
        val probe = FieldClient("$DATA/example-probe", URL)
        val me = probe.login("demo-chief", "demo")
        val asset = probe.assets().first { it.id in me.assets }
        val fixes = walkAlong(vertices(asset.geometryGeojson), System.currentTimeMillis(), 600)
        val report = launch { patrolAndSync(client, fixes) }.get(120, TimeUnit.SECONDS)
        assertEquals(1u, report.docsSent)
        assertEquals(0u, report.refused)
        // The phone also received the chief's patrols from the other tests' phones.
        assertTrue(client.patrols().isNotEmpty() && client.patrols().all { it.synced })
        client.close()
        probe.close()
    }
}
