// An ACME CA for the control-plane tests: Pebble (Let's Encrypt's test server, built by
// test/tools/install.sh) with its own HTTPS certificate from a test CA, validating HTTP-01 on the
// port the gateways' HTTP listeners are reached on, names resolved by a DNS server of the test's
// own (it decides which gateway Pebble reaches), and loopback forwarders that count what reaches
// each gateway. For the ACME tests, imported by name.
import { randomBytes } from "node:crypto";
import * as dgram from "node:dgram";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { gatewayPolicy } from "../../../components/consul-policies";
import { httpRequest } from "../../support/http";
import { freePort } from "../../support/ports";
import { readTool } from "../../support/tools";
import { waitFor } from "../../support/wait";
import type { ConsulAgent } from "./consul";
import { TestCa } from "./pki";
import { makeTempDir, Proc } from "./processes";

/**
 * A DNS server on 127.0.0.1, over UDP and TCP (Pebble asks over TCP), answering A queries with
 * `resolve(name)` (AAAA and the rest: no record).
 */
export async function startDns(
    resolve: (name: string) => Promise<string | undefined>,
): Promise<{ port: number; queries: string[]; close: () => Promise<void> }> {
    const queries: string[] = [];
    const answer = async (msg: Buffer): Promise<Buffer> => {
        // Header (12 bytes), then the question: labels, type, class.
        let at = 12;
        const labels: string[] = [];
        while (at < msg.length && msg[at]! > 0) {
            labels.push(msg.subarray(at + 1, at + 1 + msg[at]!).toString("ascii"));
            at += 1 + msg[at]!;
        }
        const question = msg.subarray(12, at + 5);
        const type = msg.readUInt16BE(at + 1);
        const name = labels.join(".").toLowerCase();
        const address = type === 1 ? await resolve(name) : undefined;
        if (type === 1) queries.push(name);
        const header = Buffer.alloc(12);
        msg.copy(header, 0, 0, 2);
        header.writeUInt16BE(0x8180, 2); // a response, recursion desired and available, no error
        header.writeUInt16BE(1, 4);
        header.writeUInt16BE(address ? 1 : 0, 6);
        const record = address
            ? Buffer.concat([Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]), Buffer.from(address.split(".").map(Number))])
            : Buffer.alloc(0);
        return Buffer.concat([header, question, record]);
    };
    const port = await freePort(true);
    const udp = dgram.createSocket("udp4");
    udp.on("message", (msg, rinfo) => void answer(msg).then((a) => udp.send(a, rinfo.port, rinfo.address)));
    await new Promise<void>((r) => udp.bind(port, "127.0.0.1", r));
    // Over TCP each message is preceded by its length (RFC 1035 §4.2.2).
    const tcp = net.createServer((socket) => {
        let buffer = Buffer.alloc(0);
        socket.on("error", () => undefined);
        socket.on("data", (chunk: Buffer) => {
            buffer = Buffer.concat([buffer, chunk]);
            while (buffer.length >= 2 && buffer.length >= 2 + buffer.readUInt16BE(0)) {
                const msg = buffer.subarray(2, 2 + buffer.readUInt16BE(0));
                buffer = buffer.subarray(2 + msg.length);
                void answer(msg).then((a) => {
                    const len = Buffer.alloc(2);
                    len.writeUInt16BE(a.length);
                    if (!socket.destroyed) socket.write(Buffer.concat([len, a]));
                });
            }
        });
    });
    await new Promise<void>((r) => tcp.listen(port, "127.0.0.1", r));
    return {
        port,
        queries,
        close: async () => {
            await new Promise<void>((r) => udp.close(() => r()));
            await new Promise<void>((r) => tcp.close(() => r()));
        },
    };
}

/** A TCP forwarder from `address`:`port` to 127.0.0.1:`to`: what Pebble reaches at a gateway's address, counted. */
export async function forward(address: string, port: number, to: number): Promise<{ connections: () => number; close: () => Promise<void> }> {
    let n = 0;
    const sockets = new Set<net.Socket>();
    const server = net.createServer((client) => {
        n++;
        const upstream = net.connect({ host: "127.0.0.1", port: to });
        for (const s of [client, upstream]) {
            sockets.add(s);
            s.on("close", () => sockets.delete(s));
            s.on("error", () => undefined);
        }
        client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r, j) => {
        server.once("error", j);
        server.listen(port, address, r);
    });
    return {
        connections: () => n,
        close: () =>
            new Promise<void>((r) => {
                for (const s of sockets) s.destroy();
                server.close(() => r());
            }),
    };
}

/** Pebble answers 400 to a request without one (RFC 8555 §6.1). */
const USER_AGENT = { "user-agent": "service-discovery-tests" };

export interface Pebble {
    readonly directoryUrl: string;
    /** The CA of Pebble's own HTTPS listener (GATEWAY_ACME_CA_FILE). */
    readonly caFile: string;
    /** The root that signs what Pebble issues (its management API's /roots/0). */
    root(): Promise<string>;
    stop(): Promise<void>;
    start(): Promise<void>;
}

/**
 * Pebble on free loopback ports: validates HTTP-01 on `httpPort` at the address `dnsPort`
 * resolves, issues certificates valid for `validitySeconds`, answers at once (no random sleep,
 * no nonce rejected at random).
 */
export async function startPebble(o: { httpPort: number; dnsPort: number; validitySeconds: number }): Promise<Pebble> {
    const dir = makeTempDir("pebble");
    const ca = new TestCa(dir, "Pebble listener test CA");
    const cert = ca.issue(["localhost"]);
    const listen = await freePort();
    const config = {
        pebble: {
            listenAddress: `127.0.0.1:${listen}`,
            managementListenAddress: `127.0.0.1:${await freePort()}`,
            certificate: cert.cert,
            privateKey: cert.key,
            httpPort: o.httpPort,
            tlsPort: await freePort(),
            ocspResponderURL: "",
            externalAccountBindingRequired: false,
            retryAfter: { authz: 1, order: 1 },
            keyAlgorithm: "ecdsa",
            profiles: { default: { description: "test certificates", validityPeriod: o.validitySeconds } },
        },
    };
    const file = path.join(dir, "pebble.json");
    fs.writeFileSync(file, JSON.stringify(config, null, 2));
    const bin = readTool("PEBBLE_BIN");
    let proc: Proc | undefined;
    const directoryUrl = `https://127.0.0.1:${listen}/dir`;
    const pebble: Pebble = {
        directoryUrl,
        caFile: ca.caFile,
        root: async () => {
            const r = await httpRequest(`https://127.0.0.1:${config.pebble.managementListenAddress.split(":")[1]}/roots/0`, {
                ca: ca.caPem,
                headers: USER_AGENT,
            });
            return r.body;
        },
        start: async () => {
            const p = new Proc("pebble", bin, ["-config", file, "-dnsserver", `127.0.0.1:${o.dnsPort}`], {
                env: { ...process.env, PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0", PEBBLE_AUTHZREUSE: "0" },
            });
            proc = p;
            await waitFor(
                async () => {
                    if (!p.running) throw new Error(`pebble exited:\n${p.output()}`);
                    return (await httpRequest(directoryUrl, { ca: ca.caPem, timeoutMs: 1000, headers: USER_AGENT }).catch(() => undefined))?.status === 200;
                },
                { timeoutMs: 15_000, intervalMs: 50, message: "Pebble's directory" },
            );
        },
        stop: async () => {
            await proc?.stop(3000);
            proc = undefined;
        },
    };
    await pebble.start();
    return pebble;
}

/**
 * A token with the gateway's policy for source acme (components/consul-policies.ts,
 * gatewayPolicy(true)): what the stack gives its gateways when they order certificates.
 */
export async function acmeGatewayToken(consul: ConsulAgent): Promise<string> {
    const p = gatewayPolicy(true);
    const name = `${p.name}-acme-${randomBytes(3).toString("hex")}`;
    const policy = await consul.api("PUT", "/v1/acl/policy", { Name: name, Description: p.description, Rules: p.rules });
    if (policy.status !== 200) throw new Error(`ACME policy: ${policy.status} ${policy.body}`);
    const token = await consul.api("PUT", "/v1/acl/token", { Description: "gateway (acme)", Policies: [{ Name: name }] });
    if (token.status !== 200) throw new Error(`ACME token: ${token.status} ${token.body}`);
    return (JSON.parse(token.body) as { SecretID: string }).SecretID;
}

/** The name of the gateway holding the ACME lock (its session's name ends with it), undefined when none does. */
export async function lockHolder(consul: ConsulAgent): Promise<string | undefined> {
    const kv = await consul.api("GET", "/v1/kv/service/haproxy/tls/acme/lock");
    if (kv.status !== 200) return undefined;
    const session = (JSON.parse(kv.body) as { Session?: string }[])[0]?.Session;
    if (!session) return undefined;
    const info = await consul.api("GET", `/v1/session/info/${session}`);
    const name = (JSON.parse(info.body) as { Name: string }[] | null)?.[0]?.Name ?? "";
    return /: (\S+)$/.exec(name)?.[1];
}
