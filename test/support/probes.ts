// Programs the tests run inside a container (python3, which the example service's image has),
// as an attacker with code running there would: shared by the Docker and the cluster layers.

/**
 * TCP connects, all at once, to each "<address>:<port>" argument (3 s each); prints one JSON object:
 * each target's {"ok": true} or {"error": "<exception>: <message>"}.
 */
export const CONNECT_PROBE = String.raw`
import json, socket, sys, threading
out = {}
def connect(target):
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        out[target] = {"ok": True}
    except Exception as e:
        out[target] = {"error": type(e).__name__ + ": " + str(e)}
threads = [threading.Thread(target=connect, args=(t,)) for t in sys.argv[1:]]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(out))
`;
