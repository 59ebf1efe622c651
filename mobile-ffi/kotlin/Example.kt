import uniffi.chiefsync.*

/** A chief's patrol from the app's point of view: sign in, walk, finish, sync. The network
 *  calls run through `background`, so this may be called from the main thread's coroutine. */
suspend fun patrolAndSync(client: FieldClient, fixes: List<Triple<Double, Double, Long>>): SyncReport {
    val me = client.background { login("demo-chief", "demo") }
    val asset = client.assets().first { it.id in me.assets }
    val patrol = client.startPatrol(asset.id)
    for ((lat, lon, timeMs) in fixes) {
        client.addTrackPoint(patrol, lat, lon, timeMs, 5.0f) // one GPS fix a second
    }
    val summary = client.finishPatrol(patrol, "水面清洁")
    println("${summary.distanceM.toInt()} m, counts: ${summary.valid}")
    try {
        return client.background { sync() } // a progress bar reads client.syncProgress() meanwhile
    } catch (e: ChiefsyncException.Network) {
        println("offline, the patrol waits on the phone: ${e.detail}")
        throw e
    }
}
