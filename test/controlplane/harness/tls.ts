// TLS at the edge for the control-plane tests (docs/security.md, "TLS at the edge"): a sealing
// key file as the stack uploads it, certificates from a test CA written to KV as the program
// writes them (chain public, key sealed at its path), the gateway's TLS variables, and what a
// client sees of the HTTPS listener. For the TLS tests, imported by name.
import { randomBytes, X509Certificate } from "node:crypto";
import * as fs from "node:fs";
import * as https from "node:https";
import * as path from "node:path";
import * as tls from "node:tls";
import { seal } from "../../../components/images/gateway/controller/sealed";
import { KV_PREFIX, TLS_KV } from "../../../components/images/gateway/controller/rules";
import type { HttpResult } from "../../support/http";
import { freePort } from "../../support/ports";
import type { ConsulAgent } from "./consul";
import { TestCa } from "./pki";
import { makeTempDir } from "./processes";

/** The stack's sealing key (32 random bytes, hex) in a file only this user reads, as the gateway container gets it. */
export function sealingKeyFile(dir = makeTempDir("sealing")): { file: string; key: Buffer } {
    const key = randomBytes(32);
    const file = path.join(dir, "sealing.key");
    fs.writeFileSync(file, `${key.toString("hex")}\n`, { mode: 0o400 });
    return { file, key };
}

/** A CA for the gateway's certificates (what the stack's @pulumi/tls CA is in the self-signed source). */
export function edgeCa(name = "Gateway test CA"): TestCa {
    return new TestCa(makeTempDir("edge-pki"), name);
}

/** A certificate for `names` from `ca`: PEM texts and the serial as HAProxy prints it. */
export function issue(ca: TestCa, names: string[]): { certPem: string; keyPem: string; serial: string } {
    const files = ca.issue(names);
    const certPem = fs.readFileSync(files.cert, "utf8");
    return { certPem, keyPem: fs.readFileSync(files.key, "utf8"), serial: new X509Certificate(certPem).serialNumber.toUpperCase() };
}

/** Writes a certificate as the program does (components/gateway-tls.ts): its chain, then its key sealed at its own path. */
export async function putCertificate(consul: ConsulAgent, sealingKey: Buffer, name: string, cert: { certPem: string; keyPem: string }): Promise<void> {
    const keyPath = `${KV_PREFIX}/${TLS_KV.key(name)}`;
    await consul.kvPut(`${KV_PREFIX}/${TLS_KV.chain(name)}`, cert.certPem);
    await consul.kvPut(keyPath, seal(sealingKey, keyPath, cert.keyPem));
}

/** The gateway's TLS variables, as components/gateway.ts sets them, on a free HTTPS port. */
export async function tlsGatewayEnv(o: {
    source: "self-signed" | "provided" | "acme";
    sealingKeyFile: string;
    redirect?: boolean;
    hstsSeconds?: number;
    httpsPort?: number;
}): Promise<NodeJS.ProcessEnv & { GATEWAY_HTTPS_PORT: string }> {
    return {
        GATEWAY_TLS_SOURCE: o.source,
        GATEWAY_HTTPS_PORT: String(o.httpsPort ?? (await freePort())),
        GATEWAY_SEALING_KEY_FILE: o.sealingKeyFile,
        GATEWAY_TLS_REDIRECT: String(o.redirect ?? false),
        GATEWAY_HSTS_SECONDS: String(o.hstsSeconds ?? 0),
    };
}

/** What the HTTPS listener presents for `servername` (no verification): the leaf's serial and names, the ALPN chosen. */
export function presented(
    port: number,
    o: { servername?: string; host?: string; alpn?: string[] } = {},
): Promise<{ serial: string; subjectAltName: string; protocol: string | false | null; version: string | null }> {
    return new Promise((resolve, reject) => {
        const socket = tls.connect({
            host: o.host ?? "127.0.0.1",
            port,
            ...(o.servername ? { servername: o.servername } : {}),
            rejectUnauthorized: false,
            ...(o.alpn ? { ALPNProtocols: o.alpn } : {}),
        });
        socket.setTimeout(3000, () => socket.destroy(new Error(`no TLS handshake within 3 s on port ${port}`)));
        socket.once("secureConnect", () => {
            const cert = socket.getPeerCertificate();
            resolve({
                serial: cert.serialNumber.toUpperCase(),
                subjectAltName: cert.subjectaltname ?? "",
                protocol: socket.alpnProtocol,
                version: socket.getProtocol(),
            });
            socket.end();
        });
        socket.once("error", reject);
    });
}

/** One HTTPS request to 127.0.0.1:`port` with this SNI and Host (the SNI by default), verified by `ca`. */
export function httpsRequest(port: number, p: string, o: { servername: string; ca: string; host?: string }): Promise<HttpResult> {
    return new Promise((resolve, reject) => {
        const req = https.request(
            { host: "127.0.0.1", port, path: p, servername: o.servername, headers: { host: o.host ?? o.servername }, ca: o.ca, agent: false, timeout: 5000 },
            (res) => {
                const chunks: Buffer[] = [];
                res.on("data", (c: Buffer) => chunks.push(c));
                res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
            },
        );
        req.on("timeout", () => req.destroy(new Error("HTTPS request timed out")));
        req.on("error", reject);
        req.end();
    });
}
