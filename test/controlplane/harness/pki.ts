// TLS material for the tests: a CA and a server certificate, once per process (openssl through
// test/support/pki.ts, the tests' one way to make certificates).
import * as fs from "node:fs";
import * as path from "node:path";
import { CONSUL_HOST, serverTlsName } from "../../../components/consul-agent-config";
import { certificateRequest, newKey, selfSign, signRequest } from "../../support/pki";
import { makeTempDir } from "./processes";

/** A test CA, issuing certificates the way components/consul-tls.ts does. */
export class TestCa {
    readonly caFile: string;
    readonly caPem: string;
    private serial = 0;

    constructor(
        readonly dir: string,
        name: string,
    ) {
        newKey(dir, "ca-key.pem");
        selfSign(dir, {
            keyFile: "ca-key.pem",
            subject: `/CN=${name}`,
            days: 2,
            extensions: { ca: true, keyUsage: ["keyCertSign", "cRLSign", "digitalSignature"] },
            out: "ca.pem",
        });
        this.caFile = path.join(dir, "ca.pem");
        this.caPem = fs.readFileSync(this.caFile, "utf8");
    }

    /** A key and certificate for `dnsNames` (the first is the CN) and 127.0.0.1; file paths. */
    issue(dnsNames: string[]): { cert: string; key: string } {
        const n = ++this.serial;
        const names = [...dnsNames.map((d) => `DNS:${d}`), "IP:127.0.0.1"];
        newKey(this.dir, `agent-${n}-key.pem`);
        certificateRequest(this.dir, { keyFile: `agent-${n}-key.pem`, subject: `/CN=${dnsNames[0]}`, out: `agent-${n}.csr` });
        signRequest(this.dir, {
            requestFile: `agent-${n}.csr`,
            caFile: "ca.pem",
            caKeyFile: "ca-key.pem",
            days: 2,
            extensions: {
                ca: false,
                keyUsage: ["digitalSignature", "keyEncipherment"],
                extendedKeyUsage: ["serverAuth", "clientAuth"],
                subjectAltNames: names,
            },
            out: `agent-${n}.pem`,
        });
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
