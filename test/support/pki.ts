// The tests' one way to make TLS material: openssl, run in a directory the caller owns. The
// control-plane harness's test CA (test/controlplane/harness/pki.ts) and the e2e applier's
// stand-in for @pulumi/tls (test/e2e/applier/tls.ts) are both built on these few calls.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

/** Runs openssl in `dir`; its stdout, or an error with the command and openssl's message. */
export function openssl(dir: string, args: string[]): string {
    const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
}

export type KeyAlgorithm = { algorithm: "ECDSA" } | { algorithm: "RSA"; bits: number };

/** A private key (ECDSA P-256, or RSA of `bits`) written to `file` in `dir`, readable by its owner only. */
export function newKey(dir: string, file: string, key: KeyAlgorithm = { algorithm: "ECDSA" }): void {
    if (key.algorithm === "ECDSA") openssl(dir, ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", file]);
    else openssl(dir, ["genrsa", "-out", file, String(key.bits)]);
    fs.chmodSync(path.join(dir, file), 0o600);
}

/** The extension lines of a certificate: CA or not, key usages, extended key usages, subject alternative names. */
export interface Extensions {
    ca: boolean;
    keyUsage?: string[];
    extendedKeyUsage?: string[];
    /** In openssl's form: `DNS:name`, `IP:address`. */
    subjectAltNames?: string[];
}

export function extensionLines(e: Extensions): string {
    return [
        `basicConstraints=critical,CA:${e.ca ? "TRUE" : "FALSE"}`,
        ...(e.keyUsage?.length ? [`keyUsage=critical,${e.keyUsage.join(",")}`] : []),
        ...(e.extendedKeyUsage?.length ? [`extendedKeyUsage=${e.extendedKeyUsage.join(",")}`] : []),
        ...(e.subjectAltNames?.length ? [`subjectAltName=${e.subjectAltNames.join(",")}`] : []),
    ].join("\n");
}

/** A self-signed certificate of the key in `keyFile`, written to `out`. */
export function selfSign(dir: string, o: { keyFile: string; subject: string; days: number; extensions: Extensions; out: string }): void {
    fs.writeFileSync(path.join(dir, `${o.out}.cnf`), `[req]\ndistinguished_name=dn\n[dn]\n[v3]\n${extensionLines(o.extensions)}\nsubjectKeyIdentifier=hash\n`);
    openssl(
        dir,
        ["req", "-x509", "-new", "-key", o.keyFile, "-sha256", "-days", String(o.days), "-subj", o.subject, "-extensions", "v3"].concat([
            "-config",
            `${o.out}.cnf`,
            "-out",
            o.out,
        ]),
    );
}

/** A certificate request of the key in `keyFile`, carrying `subjectAltNames` (openssl form), written to `out`. */
export function certificateRequest(dir: string, o: { keyFile: string; subject: string; subjectAltNames?: string[]; out: string }): void {
    const sans = o.subjectAltNames ?? [];
    fs.writeFileSync(
        path.join(dir, `${o.out}.cnf`),
        `[req]\ndistinguished_name=dn\nreq_extensions=v3\n[dn]\n[v3]\n${sans.length ? `subjectAltName=${sans.join(",")}` : ""}\n`,
    );
    openssl(dir, ["req", "-new", "-key", o.keyFile, "-subj", o.subject, "-config", `${o.out}.cnf`, "-out", o.out]);
}

/** The subject alternative names a request carries, in openssl's form (`DNS:x`, `IP:y`). */
export function requestedNames(dir: string, requestFile: string): string[] {
    const text = openssl(dir, ["req", "-in", requestFile, "-noout", "-text"]);
    const m = /X509v3 Subject Alternative Name:\s*\n\s*(.+)\n/.exec(text);
    return m ? m[1]!.split(",").map((x) => x.trim().replace(/^IP Address:/, "IP:")) : [];
}

/** Signs the request in `requestFile` with the CA's certificate and key; the certificate is written to `out`. */
export function signRequest(
    dir: string,
    o: { requestFile: string; caFile: string; caKeyFile: string; days: number; extensions: Extensions; out: string },
): void {
    fs.writeFileSync(path.join(dir, `${o.out}.ext`), extensionLines(o.extensions));
    openssl(
        dir,
        ["x509", "-req", "-in", o.requestFile, "-CA", o.caFile, "-CAkey", o.caKeyFile, "-CAcreateserial", "-days", String(o.days), "-sha256"].concat([
            "-extfile",
            `${o.out}.ext`,
            "-out",
            o.out,
        ]),
    );
}
