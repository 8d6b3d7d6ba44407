#!/usr/bin/env node
// The operator's shortcut (`npm run operator`): from a stack's outputs, writes the Consul CA to
// .pulumi/<stack>-consul-ca.pem (git-ignored) and prints
//   - on stdout, the CONSUL_HTTP_ADDR / CONSUL_CACERT / CONSUL_HTTP_TOKEN exports (the operators'
//     read-only token, never the management token), so that
//     `eval "$(npm run -s operator)"` makes `consul members`, `consul catalog services` and
//     `curl --cacert "$CONSUL_CACERT"` work in this shell;
//   - on stderr, every URL of the stack with what it is and how to read its login, and how to
//     make a browser accept the Consul UI's certificate.
// On a terminal the token is not printed: the export reads it from Pulumi when it runs.
//   node scripts/operator.mjs [--stack <name>] [--from <file>|-]
// --from reads the outputs (`pulumi stack output --json --show-secrets`) from a file or stdin
// instead of running Pulumi.
import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import * as tls from "node:tls";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function arg(name) {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : undefined;
}

/** A word for a POSIX shell: single-quoted unless it is plainly safe. */
export function shellWord(value) {
    return /^[A-Za-z0-9_./:@%+=,-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/** The CA file's path for a stack, inside the project (.pulumi/ is git-ignored). */
export function caFileFor(root, stack) {
    return path.join(root, ".pulumi", `${stack.replace(/[^A-Za-z0-9._-]/g, "_")}-consul-ca.pem`);
}

/** The SHA-256 fingerprint of a PEM certificate, as browsers show it (AA:BB:…), or undefined. */
export function fingerprint(pem) {
    try {
        return new X509Certificate(pem).fingerprint256;
    } catch {
        return undefined;
    }
}

/** An output the shortcut cannot do without. */
function required(outputs, stack, name) {
    const v = outputs[name];
    if (typeof v !== "string" || v === "") throw new Error(`stack ${stack} has no output ${name}: has \`pulumi up\` finished?`);
    return v;
}

/**
 * The certificate the Consul UI serves, verified against the stack's CA: its SHA-256 fingerprint
 * (what a browser shows for the site), or why there is none.
 * @returns {Promise<{ fingerprint?: string, error?: string }>}
 */
export function servedCertificate(url, caPem, timeoutMs = 3000) {
    const u = new URL(url);
    return new Promise((resolve) => {
        const socket = tls.connect({ host: u.hostname, port: Number(u.port || 443), ca: caPem, servername: net.isIP(u.hostname) ? undefined : u.hostname });
        const done = (result) => {
            socket.destroy();
            resolve(result);
        };
        socket.setTimeout(timeoutMs, () => done({ error: `no answer within ${timeoutMs / 1000} s` }));
        socket.once("error", (e) => done({ error: e.code === "ECONNREFUSED" ? "nothing answers there" : e.message }));
        socket.once("secureConnect", () => done({ fingerprint: socket.getPeerCertificate().fingerprint256 }));
    });
}

/**
 * What the shortcut prints for a stack's outputs.
 * @param {Record<string, unknown>} outputs `pulumi stack output --json --show-secrets`
 * @param {{ stack: string, caFile: string, showToken: boolean, served?: { fingerprint?: string, error?: string } }} options
 * @returns {{ exports: string, text: string }} stdout (the exports) and stderr (for people)
 */
export function operatorView(outputs, { stack, caFile, showToken, served }) {
    const need = (name) => required(outputs, stack, name);
    const uiUrl = need("consulUiUrl");
    const api = new URL(uiUrl).origin;
    // The operators' read-only token, never the management token (Pulumi's, and break-glass).
    if (typeof outputs.consulOperatorToken !== "string" || outputs.consulOperatorToken === "")
        throw new Error(`stack ${stack} has no output consulOperatorToken: run \`pulumi up\` (it creates the operators' token)`);
    const token = outputs.consulOperatorToken;
    const statsUser = typeof outputs.statsUser === "string" ? outputs.statsUser : "stats";
    const show = (name) => `pulumi stack output ${name} --show-secrets --stack ${shellWord(stack)}`;
    const tokenExport = showToken && token !== "[secret]" ? shellWord(token) : `"$(${show("consulOperatorToken")})"`;
    const exports = [
        `export CONSUL_HTTP_ADDR=${shellWord(api)}`,
        `export CONSUL_CACERT=${shellWord(caFile)}`,
        `export CONSUL_HTTP_TOKEN=${tokenExport}`,
        "",
    ].join("\n");

    const rows = [];
    const services = outputs.serviceUrls && typeof outputs.serviceUrls === "object" ? Object.entries(outputs.serviceUrls) : [];
    for (const [name, url] of services) rows.push([String(url), `service ${name}, through the gateway`, "none"]);
    const tcp = outputs.tcpEndpoints && typeof outputs.tcpEndpoints === "object" ? Object.entries(outputs.tcpEndpoints) : [];
    for (const [name, endpoint] of tcp) rows.push([`${endpoint} (tcp)`, `tcp service ${name}, through the gateway`, "the service's own"]);
    if (typeof outputs.gatewayUrl === "string") rows.push([`${outputs.gatewayUrl.replace(/\/$/, "")}/`, "the gateway (a path no service owns: 404)", "none"]);
    const gateways = Array.isArray(outputs.gatewayUrls) ? outputs.gatewayUrls.filter((u) => u !== outputs.gatewayUrl) : [];
    for (const url of gateways) rows.push([`${String(url).replace(/\/$/, "")}/`, "the gateway of one edge node", "none"]);
    if (typeof outputs.statsUrl === "string") {
        const stats = outputs.statsUrl.replace(/\/$/, "");
        rows.push([`${stats}/`, "HAProxy stats page", `user ${statsUser}, password: ${show("statsPassword")}`]);
        rows.push([`${stats}/metrics`, "Prometheus metrics", "the same"]);
    }
    rows.push([uiUrl, "Consul UI", `the operator token ($CONSUL_HTTP_TOKEN, or ${show("consulOperatorToken")}) at "Log in"`]);
    rows.push([`${api}/v1/`, "Consul HTTP API (consul, curl)", "the same token: header X-Consul-Token, CA $CONSUL_CACERT"]);
    const width = (i) => Math.max(...rows.map((r) => r[i].length), ["URL", "what"][i].length);
    const line = (r) => `  ${r[0].padEnd(width(0))}  ${r[1].padEnd(width(1))}  ${r[2]}`;

    const fp = fingerprint(need("consulCaPem"));
    const local = /^https:\/\/(127\.0\.0\.1|localhost)[:/]/.test(uiUrl);
    const site = served?.fingerprint
        ? `  the UI's own certificate (verified against it): SHA-256 ${served.fingerprint}`
        : `  the UI's own certificate: none to compare (${served?.error ?? "not read"})`;
    const text = [
        `operator: stack ${stack}: Consul CA written to ${caFile}`,
        `  the CA: SHA-256 ${fp ?? "(not a certificate: check the consulCaPem output)"}`,
        site,
        "",
        line(["URL", "what", "login"]),
        ...rows.map(line),
        "",
        `In this shell: eval "$(${stack === "dev" ? "" : `STACK=${shellWord(stack)} `}npm run -s operator)", then`,
        "  consul members",
        "  consul catalog services",
        '  curl --cacert "$CONSUL_CACERT" -H "X-Consul-Token: $CONSUL_HTTP_TOKEN" "$CONSUL_HTTP_ADDR/v1/catalog/services"',
        ...(local ? [`  without a consul CLI: docker exec -e CONSUL_HTTP_TOKEN ${stack}-consul consul members`] : []),
        "",
        "The Consul UI's certificate is signed by the stack's own CA, which browsers do not know. Either",
        "compare the UI certificate's fingerprint above with the one the browser shows for the site and",
        "accept it, or import the CA file. Imported, it is trusted for every site, and whoever can read the",
        "stack's state holds its key: prefer a Firefox profile kept for this stack (its authorities are its own).",
        "  Firefox: Settings > Privacy & Security > Certificates > View Certificates > Authorities > Import,",
        '           tick "Trust this CA to identify websites"',
        `  Chrome, Edge on Linux: certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n ${shellWord(`consul-${stack}`)} -i ${shellWord(caFile)}  (libnss3-tools)`,
        `  macOS (Safari, Chrome): security add-trusted-cert -r trustRoot -k ~/Library/Keychains/login.keychain-db ${shellWord(caFile)}`,
        `  Windows (Chrome, Edge), from WSL: certutil.exe -user -addstore Root "$(wslpath -w ${shellWord(caFile)})"`,
        "",
    ].join("\n");
    return { exports, text };
}

function readOutputs(stack) {
    const from = arg("--from");
    if (from !== undefined) return JSON.parse(fs.readFileSync(from === "-" ? 0 : from, "utf8"));
    // Pulumi may ask for the passphrase: it talks to the terminal on stdin and stderr.
    const r = spawnSync("pulumi", ["stack", "output", "--json", "--show-secrets", "--stack", stack], {
        cwd: ROOT,
        encoding: "utf8",
        stdio: ["inherit", "pipe", "inherit"],
    });
    if (r.error) throw new Error(`cannot run pulumi: ${r.error.message} (npm run preflight says what is missing)`);
    if (r.status !== 0) throw new Error(`\`pulumi stack output --stack ${stack}\` failed (exit ${r.status}): is the stack up? (npm run up)`);
    return JSON.parse(r.stdout);
}

async function main() {
    const stack = arg("--stack") || process.env.STACK || "dev";
    if (!/^[A-Za-z0-9._/-]+$/.test(stack)) {
        console.error(`operator: --stack ${JSON.stringify(stack)} is not a stack name`);
        process.exit(2);
    }
    try {
        const outputs = readOutputs(stack);
        const caFile = caFileFor(ROOT, stack);
        const served = await servedCertificate(required(outputs, stack, "consulUiUrl"), required(outputs, stack, "consulCaPem"));
        const view = operatorView(outputs, { stack, caFile, showToken: !process.stdout.isTTY, served });
        fs.mkdirSync(path.dirname(caFile), { recursive: true });
        fs.writeFileSync(caFile, outputs.consulCaPem.endsWith("\n") ? outputs.consulCaPem : `${outputs.consulCaPem}\n`, { mode: 0o644 });
        process.stderr.write(view.text);
        process.stdout.write(view.exports);
    } catch (e) {
        console.error(`operator: ${e instanceof Error ? e.message : e}`);
        process.exit(1);
    }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) await main();
