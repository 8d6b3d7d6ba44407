// The tests' shared certificate helper (test/support/pki.ts): what the control-plane CA and the
// e2e applier's @pulumi/tls stand-in issue must verify the way Consul and HAProxy verify it.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { certificateRequest, newKey, openssl, requestedNames, selfSign, signRequest } from "../support/pki";

describe("test PKI helper", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sd-pki-"));
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    function ca(name: string): void {
        newKey(dir, `${name}-key.pem`);
        selfSign(dir, {
            keyFile: `${name}-key.pem`,
            subject: `/CN=${name}`,
            days: 1,
            extensions: { ca: true, keyUsage: ["keyCertSign", "cRLSign"] },
            out: `${name}.pem`,
        });
    }

    it("issues a certificate that verifies against its CA only, with the requested names and uses", () => {
        ca("ca-a");
        ca("ca-b");
        newKey(dir, "leaf-key.pem", { algorithm: "RSA", bits: 2048 });
        certificateRequest(dir, { keyFile: "leaf-key.pem", subject: "/CN=leaf", subjectAltNames: ["DNS:leaf.example", "IP:127.0.0.1"], out: "leaf.csr" });
        assert.deepEqual(requestedNames(dir, "leaf.csr"), ["DNS:leaf.example", "IP:127.0.0.1"]);
        signRequest(dir, {
            requestFile: "leaf.csr",
            caFile: "ca-a.pem",
            caKeyFile: "ca-a-key.pem",
            days: 1,
            extensions: { ca: false, keyUsage: ["digitalSignature"], extendedKeyUsage: ["serverAuth"], subjectAltNames: requestedNames(dir, "leaf.csr") },
            out: "leaf.pem",
        });
        assert.match(openssl(dir, ["verify", "-CAfile", "ca-a.pem", "-purpose", "sslserver", "leaf.pem"]), /leaf.pem: OK/);
        assert.throws(() => openssl(dir, ["verify", "-CAfile", "ca-b.pem", "leaf.pem"]), /unable to get local issuer certificate/);
        const text = openssl(dir, ["x509", "-in", "leaf.pem", "-noout", "-text"]);
        assert.match(text, /DNS:leaf\.example, IP Address:127\.0\.0\.1/);
        assert.match(text, /CA:FALSE/);
        assert.equal(fs.statSync(path.join(dir, "leaf-key.pem")).mode & 0o077, 0, "a key is readable by its owner only");
    });

    it("names the openssl command that failed", () => {
        assert.throws(
            () =>
                signRequest(dir, {
                    requestFile: "absent.csr",
                    caFile: "ca-a.pem",
                    caKeyFile: "ca-a-key.pem",
                    days: 1,
                    extensions: { ca: false },
                    out: "x.pem",
                }),
            /^Error: openssl x509 -req -in absent\.csr/,
        );
    });
});
