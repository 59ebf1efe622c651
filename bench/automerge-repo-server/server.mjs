// The automerge-repo sync server as its documentation sets it up: a Repo with the websocket
// server adapter and the Node filesystem storage adapter, sharing no document with a peer that
// has not asked for it. Usage: node server.mjs PORT STORAGE_DIR (PORT 0 picks a free port).
// Prints "listening PORT" once it accepts connections; stops on SIGTERM or when stdin closes.
import http from "node:http"
import { WebSocketServer } from "ws"
import { Repo } from "@automerge/automerge-repo"
import { NodeWSServerAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"

const [port = "0", dir = "automerge-repo-data"] = process.argv.slice(2)

const server = http.createServer((_req, res) => {
  res.end("automerge-repo sync server is running")
})
const socket = new WebSocketServer({ noServer: true })
server.on("upgrade", (request, conn, head) => {
  socket.handleUpgrade(request, conn, head, ws => socket.emit("connection", ws, request))
})

const repo = new Repo({
  network: [new NodeWSServerAdapter(socket)],
  storage: new NodeFSStorageAdapter(dir),
  peerId: `storage-server-${process.pid}`,
  sharePolicy: async () => false,
})

server.listen(Number(port), "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`)
})

const stop = async () => {
  socket.close()
  server.close()
  await repo.shutdown()
  process.exit(0)
}
process.on("SIGTERM", stop)
process.stdin.on("end", stop)
process.stdin.resume()
