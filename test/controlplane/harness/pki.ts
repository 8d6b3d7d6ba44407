// TLS material for the tests: a CA and a server certificate made with openssl, once per process.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { CONSUL_HOST, serverTlsName } from "../../../components/consul-agent-config";
import { makeTempDir } from "./processes";

/** A test CA made with openssl, issuing certificates the way components/consul-tls.ts does. */
export class TestCa {
    readonly caFile: string;
    readonly caPem: string;
    private serial = 0;

    constructor(
        readonly dir: string,
        name: string,
    ) {
        this.run(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca-key.pem"]);
        this.run([
            "req",
            "-x509",
            "-new",
            "-key",
            "ca-key.pem",
            "-sha256",
            "-days",
            "2",
            "-subj",
            `/CN=${name}`,
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        ]);
        this.caFile = path.join(dir, "ca.pem");
        this.caPem = fs.readFileSync(this.caFile, "utf8");
    }

    private run(args: string[]): void {
        const r = spawnSync("openssl", args, { cwd: this.dir, encoding: "utf8" });
        if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
    }

    /** A key and certificate for `dnsNames` (the first is the CN) and 127.0.0.1; file paths. */
    issue(dnsNames: string[]): { cert: string; key: string } {
        const n = ++this.serial;
        this.run(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `agent-${n}-key.pem`]);
        this.run(["req", "-new", "-key", `agent-${n}-key.pem`, "-subj", `/CN=${dnsNames[0]}`, "-out", `agent-${n}.csr`]);
        fs.writeFileSync(
            path.join(this.dir, `agent-${n}.cnf`),
            [
                `subjectAltName=${dnsNames.map((d) => `DNS:${d}`).join(",")},IP:127.0.0.1`,
                "keyUsage=critical,digitalSignature,keyEncipherment",
                "extendedKeyUsage=serverAuth,clientAuth",
            ].join("\n"),
        );
        this.run([
            "x509",
            "-req",
            "-in",
            `agent-${n}.csr`,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-sha256",
            "-extfile",
            `agent-${n}.cnf`,
            "-out",
            `agent-${n}.pem`,
        ]);
        fs.chmodSync(path.join(this.dir, `agent-${n}-key.pem`), 0o600);
        return { cert: path.join(this.dir, `agent-${n}.pem`), key: path.join(this.dir, `agent-${n}-key.pem`) };
    }
}

export interface TestPki {
    ca: TestCa;
    caFile: string;
    caPem: string;
    serverCert: string;
    serverKey: string;
}

let pki: TestPki | undefined;

/** The tests' CA and a certificate for server.dc1.consul (+ consul, localhost, 127.0.0.1), as ConsulTls issues; once per process. */
export function testPki(): TestPki {
    if (pki) return pki;
    const ca = new TestCa(makeTempDir("pki"), "Consul CA controlplane-test");
    const server = ca.issue([serverTlsName("dc1"), CONSUL_HOST, "localhost"]);
    pki = { ca, caFile: ca.caFile, caPem: ca.caPem, serverCert: server.cert, serverKey: server.key };
    return pki;
}
