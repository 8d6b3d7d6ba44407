// The certificates the gateway serves and the ACME answers it gives, decided from the KV subtree
// service/haproxy/tls/ (docs/security.md, "TLS at the edge"). Pure (crypto, no I/O): the model
// (model.ts) calls it, the applier (apply.ts) installs what it returns through the runtime API.
//   tls/certificates/<name>/chain  the certificate and its chain, PEM (public)
//   tls/certificates/<name>/key    its private key, PEM, sealed at that path (sealed.ts)
//   tls/acme/challenges/<token>    an HTTP-01 key authorization, served at /.well-known/acme-challenge/<token>
// A value that is not what it should be — a key that does not open with this gateway's sealing
// key, a PEM that does not parse, a key that is not the certificate's, an expired certificate —
// is `rejected:` with a note, and the certificate of that name the gateway runs is kept.
import { createHash, createPrivateKey, X509Certificate } from "node:crypto";
import { ACME_KEY_AUTHORIZATION, ACME_TOKEN, CERTIFICATE_NAME, KV_PREFIX, TLS_KV } from "./rules";
import { unseal } from "./sealed";

export interface Certificate {
    readonly name: string;
    /** The chain then the key, PEM, normalised (no blank line: the runtime API's payload ends at one). */
    readonly pem: string;
    /** Of the leaf, as HAProxy and openssl print it (upper-case hex). */
    readonly serial: string;
    readonly notAfterMs: number;
    /** The DNS names it covers (its subject alternative names). */
    readonly hosts: readonly string[];
}

/** At most this many certificates and challenges are read (each is a file and a runtime command). */
export const MAX_CERTIFICATES = 100;
export const MAX_CHALLENGES = 100;
/** A chain of a few certificates is a few KiB; anything much larger is not one. */
const MAX_PEM_BYTES = 65536;

const byBytes = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const sha8 = (v: string): string => createHash("sha256").update(v, "utf8").digest("hex").slice(0, 8);

/** What a chain and a key make, or why they make nothing. */
type Parsed = { ok: true; cert: Omit<Certificate, "name"> } | { ok: false; why: string };
/** Parsing and unsealing are cached by value: the model is rebuilt on every catalog change. */
const parsed = new Map<string, Parsed>();

/** Parses a certificate chain and its (unsealed) key. */
export function parseCertificate(chainPem: string, keyPem: string, nowMs: number): Parsed {
    if (chainPem.length > MAX_PEM_BYTES || keyPem.length > MAX_PEM_BYTES) return { ok: false, why: "is larger than 64 KiB" };
    const blocks = chainPem.match(/-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----/g) ?? [];
    if (blocks.length === 0) return { ok: false, why: "holds no PEM certificate" };
    let chain: X509Certificate[];
    try {
        chain = blocks.map((b) => new X509Certificate(b));
    } catch (err) {
        return { ok: false, why: `does not parse as X.509 (${(err as Error).message})` };
    }
    let key;
    try {
        key = createPrivateKey(keyPem);
    } catch {
        return { ok: false, why: "has a key that does not parse as a PEM private key" };
    }
    const leaf = chain[0]!;
    if (!leaf.checkPrivateKey(key)) return { ok: false, why: "has a key that is not the certificate's (a rotation half written?)" };
    const notAfterMs = Date.parse(leaf.validTo);
    if (!(notAfterMs > nowMs)) return { ok: false, why: `expired on ${new Date(notAfterMs).toISOString()}` };
    const hosts = (leaf.subjectAltName ?? "")
        .split(", ")
        .filter((s) => s.startsWith("DNS:"))
        .map((s) => s.slice(4));
    const pem = `${chain.map((c) => c.toString().trim()).join("\n")}\n${key.export({ type: "pkcs8", format: "pem" }).toString().trim()}\n`;
    return { ok: true, cert: { pem, serial: leaf.serialNumber.toUpperCase(), notAfterMs, hosts } };
}

/**
 * The certificates of the KV subtree tls/certificates/ (keys relative to KV_PREFIX), sorted by name.
 * `previous`: those the gateway runs now, kept for a name whose new value is rejected.
 */
export function readCertificates(
    kv: ReadonlyMap<string, string>,
    o: { sealingKey: Buffer | undefined; previous: readonly Certificate[]; nowMs: number },
    note: (line: string) => void,
): Certificate[] {
    const parts = new Map<string, { chain?: string; key?: string }>();
    for (const [rel, value] of kv) {
        if (!rel.startsWith(TLS_KV.certificates)) continue;
        const m = /^([^/]+)\/(chain|key)$/.exec(rel.slice(TLS_KV.certificates.length));
        if (!m || !CERTIFICATE_NAME.test(m[1]!)) {
            note(
                `rejected: KV key under ${KV_PREFIX}/${TLS_KV.certificates} (sha256 ${sha8(rel)}) is not <name>/chain or <name>/key with a DNS label as name; ignored`,
            );
            continue;
        }
        const entry = parts.get(m[1]!) ?? {};
        entry[m[2] as "chain" | "key"] = value;
        parts.set(m[1]!, entry);
    }
    const previous = new Map(o.previous.map((c) => [c.name, c]));
    const out: Certificate[] = [];
    for (const name of [...parts.keys()].sort(byBytes)) {
        if (out.length >= MAX_CERTIFICATES) {
            note(`skipped: certificate ${name}: over the cap of ${MAX_CERTIFICATES} certificates`);
            continue;
        }
        const { chain, key } = parts.get(name)!;
        const where = `${KV_PREFIX}/${TLS_KV.certificates}${name}`;
        let why: string | undefined;
        let cert: Omit<Certificate, "name"> | undefined;
        if (chain === undefined) why = "has a key but no chain";
        else if (key === undefined) why = "has a chain but no key";
        else if (o.sealingKey === undefined) why = "cannot be opened: this gateway has no sealing key (GATEWAY_SEALING_KEY_FILE)";
        else {
            const cacheKey = `${name}\0${chain}\0${key}`;
            let p = parsed.get(cacheKey);
            if (p === undefined) {
                let keyPem: string | undefined;
                try {
                    keyPem = unseal(o.sealingKey, `${KV_PREFIX}/${TLS_KV.key(name)}`, key);
                } catch (err) {
                    p = { ok: false, why: `has a key that cannot be unsealed: it ${(err as Error).message.replace(/^not a /, "is not a ")}` };
                }
                if (keyPem !== undefined) p = parseCertificate(chain, keyPem, o.nowMs);
                if (parsed.size > 256) parsed.clear();
                // Expiry depends on the time: only a parse that is not about it is cached.
                if (p!.ok || !p!.why.startsWith("expired")) parsed.set(cacheKey, p!);
            }
            if (p!.ok && !(p!.cert.notAfterMs > o.nowMs)) p = { ok: false, why: `expired on ${new Date(p!.cert.notAfterMs).toISOString()}` };
            if (p!.ok) cert = p!.cert;
            else why = p!.why;
        }
        if (cert !== undefined) {
            out.push({ name, ...cert });
            continue;
        }
        const kept = previous.get(name);
        note(`rejected: KV ${where}: the certificate ${why}; ${kept ? `keeping the one running (serial ${kept.serial})` : "not served"}`);
        if (kept) out.push(kept);
    }
    return out;
}

/** The ACME HTTP-01 answers of the KV subtree tls/acme/challenges/: [token, key authorization], sorted. */
export function readChallenges(kv: ReadonlyMap<string, string>, note: (line: string) => void): [string, string][] {
    const out: [string, string][] = [];
    const keys = [...kv.keys()].filter((k) => k.startsWith(TLS_KV.acmeChallenges)).sort(byBytes);
    for (const rel of keys) {
        const token = rel.slice(TLS_KV.acmeChallenges.length);
        const v = kv.get(rel)!.trim();
        if (!ACME_TOKEN.test(token) || !ACME_KEY_AUTHORIZATION.test(v) || !v.startsWith(`${token}.`)) {
            note(`rejected: KV key under ${KV_PREFIX}/${TLS_KV.acmeChallenges} (sha256 ${sha8(rel)}) is not <token> with its key authorization; not served`);
            continue;
        }
        if (out.length >= MAX_CHALLENGES) {
            note(`skipped: ACME challenge ${token}: over the cap of ${MAX_CHALLENGES} challenges`);
            continue;
        }
        out.push([token, v]);
    }
    return out;
}
