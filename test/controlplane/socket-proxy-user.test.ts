// The Docker socket proxy's entrypoint (components/images/socket-proxy/entrypoint.sh) in front of
// a stand-in engine socket owned by various users: it runs HAProxy unprivileged when the socket
// allows, without capabilities whatever the user, and exits naming the path when there is no
// socket. (What the proxy lets through: socket-proxy.test.ts.)
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { freePort, makeTempDir, Proc } from "./harness";
import { CFG, ENTRYPOINT, FakeEngine, startProxy, tools } from "./harness/socket-proxy";

describe(
    "Docker socket proxy: the entrypoint runs HAProxy without privileges",
    { skip: process.getuid?.() === 0 ? false : "needs root to own sockets as other users and to switch users" },
    () => {
        let dir: string;
        let conf: string;
        const started: { proc: Proc; engine: FakeEngine }[] = [];

        before(() => {
            dir = makeTempDir("socket-proxy-user");
            // Unprivileged users must reach the socket and read the config in it.
            fs.chmodSync(dir, 0o711);
            conf = path.join(dir, "haproxy.cfg");
            fs.copyFileSync(CFG, conf);
            fs.chmodSync(conf, 0o644);
        });

        after(async () => {
            for (const s of started) {
                await s.proc.stop();
                await s.engine.close();
            }
        });

        /** Proc status fields of the running HAProxy (the entrypoint execs into it). */
        function status(pid: number): Record<string, string> {
            const out: Record<string, string> = {};
            for (const line of fs.readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
                const i = line.indexOf(":");
                if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
            }
            return out;
        }

        async function run(name: string, mode: number, uid: number, gid: number): Promise<{ proc: Proc; st: Record<string, string>; port: number }> {
            const socketPath = path.join(dir, `${name}.sock`);
            const engine = await FakeEngine.start(socketPath);
            fs.chownSync(socketPath, uid, gid);
            fs.chmodSync(socketPath, mode);
            const { proc, port } = await startProxy(name, socketPath, { entrypoint: true, conf });
            started.push({ proc, engine });
            assert.equal(fs.readFileSync(`/proc/${proc.pid}/comm`, "utf8").trim(), "haproxy", "the entrypoint execs into HAProxy");
            const st = status(proc.pid);
            // Whatever the user: no capability, none to regain.
            assert.equal(st.CapEff, "0000000000000000", `${name}: effective capabilities`);
            assert.equal(st.CapPrm, "0000000000000000", `${name}: permitted capabilities`);
            assert.equal(st.CapBnd, "0000000000000000", `${name}: bounding set`);
            assert.equal(st.NoNewPrivs, "1", `${name}: no_new_privs`);
            assert.ok(
                engine.seen.some((s) => s.url === "/_ping"),
                `${name}: /_ping reached the socket through the proxy`,
            );
            return { proc, st, port };
        }

        it("a group-writable socket: user nobody with the socket's group as its only group", async () => {
            const { st, proc } = await run("group", 0o660, 0, 4242);
            assert.equal(st.Uid.split(/\s+/)[0], "65534");
            assert.deepEqual(st.Uid.split(/\s+/), ["65534", "65534", "65534", "65534"]);
            assert.deepEqual(st.Gid.split(/\s+/), ["4242", "4242", "4242", "4242"]);
            assert.equal(st.Groups, "", "no supplementary groups (root's are dropped)");
            assert.match(proc.stderr.toString(), /forwarding to .*group\.sock \(mode 660, owner 0:4242\) as uid 65534 gid 4242/);
        });

        it("a socket only its non-root owner may use (a rootless engine's): that owner", async () => {
            const { st } = await run("owner", 0o600, 4243, 4243);
            assert.deepEqual(st.Uid.split(/\s+/), ["4243", "4243", "4243", "4243"]);
            assert.equal(st.Gid.split(/\s+/)[0], "4243");
        });

        it("a root-only socket: root, said in the log, still without capabilities", async () => {
            const { st, proc } = await run("root", 0o600, 0, 0);
            assert.equal(st.Uid.split(/\s+/)[0], "0");
            assert.match(proc.stderr.toString(), /is writable by root only: running HAProxy as root, without capabilities/);
        });

        it("no socket at the path: exits with a message naming it", async () => {
            const proc = new Proc("no-socket", "bash", [ENTRYPOINT], {
                env: {
                    ...process.env,
                    DOCKER_SOCKET: path.join(dir, "missing.sock"),
                    SOCKET_PROXY_CONF: conf,
                    HAPROXY_BIN: tools.HAPROXY_BIN,
                    SOCKET_PROXY_PORT: String(await freePort()),
                },
            });
            const { code } = await proc.exited;
            assert.equal(code, 66);
            assert.match(proc.stderr.toString(), /missing\.sock is not a socket: mount the Docker engine's socket there/);
            await proc.stop();
        });
    },
);
