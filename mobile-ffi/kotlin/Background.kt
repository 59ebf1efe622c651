// Coroutines over the phone library's blocking calls, with the Kotlin standard library alone.
//
// Every FieldClient call blocks until it is done (sync, login and photo uploads wait on the
// network). From a coroutine, call them through `background { … }`: the call runs on the
// library's own thread pool and the coroutine resumes where it was (on the main thread, for a
// coroutine started there), so the UI thread never waits. An app that uses kotlinx-coroutines
// may write `withContext(Dispatchers.IO) { client.sync() }` instead; it does the same.
//
// A started call runs to its end even if the coroutine is cancelled: a sync or an upload that
// stopped halfway would only be repeated by the next one, and nothing recorded is lost either way.
package uniffi.chiefsync

import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import kotlin.coroutines.suspendCoroutine

/** The threads the blocking calls run on; daemon threads, so they never keep an app alive. */
object ChiefsyncThreads {
    val io: ExecutorService = Executors.newCachedThreadPool { task ->
        Thread(task, "chiefsync-io").apply { isDaemon = true }
    }
}

/** Runs `call` on this client off the calling thread and resumes with its result or its typed
 *  `ChiefsyncException`. */
suspend fun <T> FieldClient.background(call: FieldClient.() -> T): T =
    suspendCoroutine { continuation ->
        ChiefsyncThreads.io.execute { continuation.resumeWith(runCatching { call() }) }
    }
