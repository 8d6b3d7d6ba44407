// The e2e applier's side of the secured control plane: what @pulumi/tls, the Consul provider's
// ACL resources and data source, @pulumi/command's local.Command and the Docker provider's
// `uploads` do, done for real: certificates by openssl, ACLs through Consul's HTTPS API with
// the provider's token and CA, commands run as processes, files put into containers as a tar.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as https from "node:https";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import * as pki from "../../support/pki";

type Obj = Record<string, any>;

// --- Consul API with a provider's settings ----------------------------------------------------

export interface ConsulProviderInputs {
    address: string;
    scheme?: string;
    caPem?: string;
    token?: string;
    datacenter?: string;
    /** The agent's UNIX socket instead of the address (the address then only names the Host). */
    socketPath?: string;
}

/** The provider's address as a URL origin (the provider takes host:port plus `scheme`, or a URL). */
export function consulOrigin(p: ConsulProviderInputs): string {
    if (/^https?:\/\//.test(p.address)) return p.address.replace(/\/+$/, "");
    return `${p.scheme ?? "http"}://${p.address}`;
}

/** One request as the provider makes it: its token, verified against its CA. Throws on >= 400. */
export function consulRequest(p: ConsulProviderInputs, method: string, pathAndQuery: string, body?: string): Promise<string> {
    const url = new URL(pathAndQuery, consulOrigin(p));
    const request = url.protocol === "https:" ? https.request : http.request;
    return new Promise((resolve, reject) => {
        // Consul holds a request up to ~7 s while it has no leader; the provider's client waits.
        const req = request(
            url,
            {
                method,
                agent: false,
                timeout: 60_000,
                headers: { ...(p.token ? { "X-Consul-Token": p.token } : {}) },
                ...(p.caPem ? { ca: p.caPem } : {}),
                ...(p.socketPath ? { socketPath: p.socketPath } : {}),
            },
            (res) => {
                let text = "";
                res.on("data", (d: Buffer) => (text += d.toString()));
                res.on("end", () =>
                    (res.statusCode ?? 0) >= 400 ? reject(new Error(`consul ${method} ${url.pathname}: ${res.statusCode} ${text.trim()}`)) : resolve(text),
                );
            },
        );
        req.on("timeout", () => req.destroy(new Error(`consul ${method} ${url.pathname}: timeout`)));
        req.on("error", (e) => reject(new Error(`consul ${method} ${url}: ${e.message}`)));
        if (body !== undefined) req.write(body);
        req.end();
    });
}

/** consul_acl_policy: PUT /v1/acl/policy. */
export async function aclPolicy(p: ConsulProviderInputs, inputs: Obj): Promise<{ id: string; outputs: Obj }> {
    const body = { Name: inputs.name, Description: inputs.description ?? "", Rules: inputs.rules, Datacenters: inputs.datacenters ?? [] };
    const created = JSON.parse(await consulRequest(p, "PUT", "/v1/acl/policy", JSON.stringify(body)));
    return { id: created.ID, outputs: {} };
}

/** consul_acl_token: PUT /v1/acl/token; the resource's id is the accessor ID. */
export async function aclToken(p: ConsulProviderInputs, inputs: Obj): Promise<{ id: string; outputs: Obj }> {
    const body = {
        Description: inputs.description ?? "",
        Policies: ((inputs.policies ?? []) as string[]).map((Name) => ({ Name })),
        NodeIdentities: ((inputs.nodeIdentities ?? []) as Obj[]).map((n) => ({ NodeName: n.nodeName, Datacenter: n.datacenter })),
        Local: inputs.local === true,
    };
    const created = JSON.parse(await consulRequest(p, "PUT", "/v1/acl/token", JSON.stringify(body)));
    return { id: created.AccessorID, outputs: { accessorId: created.AccessorID } };
}

/** consul_acl_token deleted (a node the program no longer declares): by its accessor ID, as the provider deletes it. */
export async function deleteAclToken(p: ConsulProviderInputs, accessorId: string): Promise<void> {
    await consulRequest(p, "DELETE", `/v1/acl/token/${encodeURIComponent(accessorId)}`);
}

/** consul_acl_token_policy_attachment: adds a policy to an existing token (the anonymous one). */
export async function aclTokenPolicyAttachment(p: ConsulProviderInputs, inputs: Obj): Promise<{ id: string; outputs: Obj }> {
    const token = JSON.parse(await consulRequest(p, "GET", `/v1/acl/token/${inputs.tokenId}`));
    const policies = [...(token.Policies ?? []).map((x: Obj) => ({ ID: x.ID })), { Name: inputs.policy }];
    await consulRequest(p, "PUT", `/v1/acl/token/${inputs.tokenId}`, JSON.stringify({ ...token, Policies: policies }));
    return { id: `${inputs.tokenId}:${inputs.policy}`, outputs: {} };
}

/** consul.getAclTokenSecretId: the secret ID of a token, by accessor ID. */
export async function aclTokenSecretId(p: ConsulProviderInputs, inputs: Obj): Promise<Obj> {
    const token = JSON.parse(await consulRequest(p, "GET", `/v1/acl/token/${inputs.accessorId}`));
    return { id: inputs.accessorId, accessorId: inputs.accessorId, secretId: token.SecretID, encryptedSecretId: "" };
}

// --- @pulumi/tls with openssl (test/support/pki.ts) -------------------------------------------

function inTempDir<T>(fn: (dir: string) => T): T {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sd-e2e-tls-"));
    try {
        return fn(dir);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/** tls.PrivateKey (ECDSA P256 or RSA). */
export function privateKey(inputs: Obj): { id: string; outputs: Obj } {
    return inTempDir((dir) => {
        if (inputs.algorithm === "ECDSA") {
            if ((inputs.ecdsaCurve ?? "P224") !== "P256") throw new Error(`tls.PrivateKey: curve ${inputs.ecdsaCurve} is not applied by the e2e applier`);
            pki.newKey(dir, "key.pem", { algorithm: "ECDSA" });
        } else if (inputs.algorithm === "RSA") {
            pki.newKey(dir, "key.pem", { algorithm: "RSA", bits: Number(inputs.rsaBits ?? 2048) });
        } else {
            throw new Error(`tls.PrivateKey: algorithm ${inputs.algorithm} is not applied by the e2e applier`);
        }
        const privateKeyPem = fs.readFileSync(path.join(dir, "key.pem"), "utf8");
        const publicKeyPem = pki.openssl(dir, ["pkey", "-in", "key.pem", "-pubout"]);
        return { id: `key-${Date.now()}`, outputs: { privateKeyPem, publicKeyPem, algorithm: inputs.algorithm } };
    });
}

function subjectOf(subject: Obj | undefined): string {
    const parts: string[] = [];
    if (subject?.organization) parts.push(`/O=${subject.organization}`);
    if (subject?.commonName) parts.push(`/CN=${subject.commonName}`);
    return parts.join("") || "/";
}

const USES: Record<string, { key?: string; ext?: string }> = {
    cert_signing: { key: "keyCertSign" },
    crl_signing: { key: "cRLSign" },
    digital_signature: { key: "digitalSignature" },
    key_encipherment: { key: "keyEncipherment" },
    server_auth: { ext: "serverAuth" },
    client_auth: { ext: "clientAuth" },
};

/** The provider's allowedUses and isCaCertificate as certificate extensions. */
function extensions(inputs: Obj, subjectAltNames: string[]): pki.Extensions {
    const uses = (inputs.allowedUses ?? []) as string[];
    for (const u of uses) if (!USES[u]) throw new Error(`tls: allowed use ${u} is not applied by the e2e applier`);
    return {
        ca: inputs.isCaCertificate === true,
        keyUsage: uses.map((u) => USES[u]!.key).filter((x): x is string => !!x),
        extendedKeyUsage: uses.map((u) => USES[u]!.ext).filter((x): x is string => !!x),
        subjectAltNames,
    };
}

function days(hours: unknown): number {
    return Math.max(1, Math.ceil(Number(hours) / 24));
}

/** tls.SelfSignedCert. */
export function selfSignedCert(inputs: Obj): { id: string; outputs: Obj } {
    return inTempDir((dir) => {
        fs.writeFileSync(path.join(dir, "key.pem"), inputs.privateKeyPem, { mode: 0o600 });
        pki.selfSign(dir, {
            keyFile: "key.pem",
            subject: subjectOf(inputs.subject),
            days: days(inputs.validityPeriodHours),
            extensions: extensions(inputs, []),
            out: "cert.pem",
        });
        return { id: `ca-${Date.now()}`, outputs: { certPem: fs.readFileSync(path.join(dir, "cert.pem"), "utf8") } };
    });
}

/** tls.CertRequest: the names go into the request; the signer copies them (as the provider does). */
export function certRequest(inputs: Obj): { id: string; outputs: Obj } {
    return inTempDir((dir) => {
        fs.writeFileSync(path.join(dir, "key.pem"), inputs.privateKeyPem, { mode: 0o600 });
        const sans = [...((inputs.dnsNames ?? []) as string[]).map((d) => `DNS:${d}`), ...((inputs.ipAddresses ?? []) as string[]).map((i) => `IP:${i}`)];
        pki.certificateRequest(dir, { keyFile: "key.pem", subject: subjectOf(inputs.subject), subjectAltNames: sans, out: "req.pem" });
        return { id: `csr-${Date.now()}`, outputs: { certRequestPem: fs.readFileSync(path.join(dir, "req.pem"), "utf8") } };
    });
}

/** tls.LocallySignedCert: the request's names copied into the certificate, as the provider does. */
export function locallySignedCert(inputs: Obj): { id: string; outputs: Obj } {
    return inTempDir((dir) => {
        fs.writeFileSync(path.join(dir, "req.pem"), inputs.certRequestPem);
        fs.writeFileSync(path.join(dir, "ca.pem"), inputs.caCertPem);
        fs.writeFileSync(path.join(dir, "ca-key.pem"), inputs.caPrivateKeyPem, { mode: 0o600 });
        pki.signRequest(dir, {
            requestFile: "req.pem",
            caFile: "ca.pem",
            caKeyFile: "ca-key.pem",
            days: days(inputs.validityPeriodHours),
            extensions: extensions(inputs, pki.requestedNames(dir, "req.pem")),
            out: "cert.pem",
        });
        return { id: `cert-${Date.now()}`, outputs: { certPem: fs.readFileSync(path.join(dir, "cert.pem"), "utf8") } };
    });
}

// --- command.local.Command ------------------------------------------------------------------

/** Runs `create` with sh in `cwd`, with the declared environment added; non-zero exit fails. */
export function localCommand(where: string, inputs: Obj, cwd: string, timeoutMs = 300_000): Promise<{ id: string; outputs: Obj }> {
    return new Promise((resolve, reject) => {
        const env = { ...process.env, ...((inputs.environment ?? {}) as Record<string, string>) };
        const child = spawn("/bin/sh", ["-c", String(inputs.create)], { cwd: inputs.dir ?? cwd, env, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
        child.on("close", (code) => {
            clearTimeout(timer);
            if (code === 0) resolve({ id: `cmd-${Date.now()}`, outputs: { stdout, stderr } });
            else reject(new Error(`${where}: \`${inputs.create}\` exited ${code}:\n${stdout}${stderr}`));
        });
    });
}

// --- docker.Container uploads -----------------------------------------------------------------

export interface Upload {
    file: string;
    content: Buffer;
    mode: number;
    uid: number;
    gid: number;
}

/** The provider's upload semantics: content or contentBase64; permissions (octal), else 0644/0744. */
export function parseUpload(where: string, u: Obj): Upload {
    const keys = Object.keys(u).filter((k) => u[k] !== undefined);
    const unknown = keys.filter((k) => !["file", "content", "contentBase64", "executable", "permissions", "owner", "group"].includes(k));
    if (unknown.length) throw new Error(`${where}: upload inputs ${unknown.join(", ")} are not applied by the e2e applier`);
    if (typeof u.file !== "string" || !u.file.startsWith("/")) throw new Error(`${where}: upload file ${JSON.stringify(u.file)} must be an absolute path`);
    const content =
        u.content !== undefined ? Buffer.from(String(u.content)) : u.contentBase64 !== undefined ? Buffer.from(String(u.contentBase64), "base64") : undefined;
    if (!content) throw new Error(`${where}: upload ${u.file} has neither content nor contentBase64`);
    const mode = u.permissions !== undefined ? parseInt(String(u.permissions), 8) : u.executable ? 0o744 : 0o644;
    const id = (v: unknown, what: string): number => {
        if (v === undefined) return 0;
        if (!/^[0-9]+$/.test(String(v)))
            throw new Error(`${where}: upload ${u.file} ${what} ${JSON.stringify(v)}: only numeric ids are applied by the e2e applier`);
        return Number(v);
    };
    return { file: u.file, content, mode, uid: id(u.owner, "owner"), gid: id(u.group, "group") };
}

/** A POSIX ustar archive of regular files (paths relative to /), for PUT /containers/{id}/archive. */
export function tarOf(files: Upload[]): Buffer {
    const blocks: Buffer[] = [];
    const octal = (n: number, width: number) => n.toString(8).padStart(width - 1, "0") + "\0";
    for (const f of files) {
        const name = f.file.replace(/^\/+/, "");
        let prefix = "";
        let base = name;
        if (Buffer.byteLength(name) > 100) {
            const cut = name.lastIndexOf("/", 154);
            prefix = name.slice(0, cut);
            base = name.slice(cut + 1);
        }
        const header = Buffer.alloc(512, 0);
        header.write(base, 0, 100);
        header.write(octal(f.mode, 8), 100, 8);
        header.write(octal(f.uid, 8), 108, 8);
        header.write(octal(f.gid, 8), 116, 8);
        header.write(octal(f.content.length, 12), 124, 12);
        header.write(octal(Math.floor(Date.now() / 1000), 12), 136, 12);
        header.write("        ", 148, 8); // checksum placeholder
        header.write("0", 156, 1);
        header.write("ustar\0", 257, 6);
        header.write("00", 263, 2);
        header.write(prefix, 345, 155);
        let sum = 0;
        for (const b of header) sum += b;
        header.write(octal(sum, 7) + " ", 148, 8);
        blocks.push(header, f.content, Buffer.alloc((512 - (f.content.length % 512)) % 512, 0));
    }
    blocks.push(Buffer.alloc(1024, 0));
    return Buffer.concat(blocks);
}
