// One source of truth per fact: the versions the stack ships are the versions the tests
// build. (The gateway's rules and the config: gateway-agreement.test.ts.)
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { CONSUL_VERSION, parseSettings } from "../../components/config";
import { ROOT, stackConfig } from "../support/program";

const read = (file: string) => fs.readFileSync(path.join(ROOT, file), "utf8");

describe("pinned versions", () => {
    it("Consul: config default, Pulumi.dev.yaml and the test build agree", () => {
        assert.match(read("test/tools/consul/go.mod"), new RegExp(`github\\.com/hashicorp/consul v${CONSUL_VERSION.replace(/\./g, "\\.")}\\b`));
        assert.equal(JSON.parse(stackConfig("dev")["service-discovery:consul"]).image, `hashicorp/consul:${CONSUL_VERSION}`);
        assert.equal(parseSettings({}, "dev").consul.image, `hashicorp/consul:${CONSUL_VERSION}`);
    });

    it("Node.js: the gateway image's pinned release is the major version the controller's bundle targets and package.json requires", () => {
        const version = /^ARG NODE_VERSION=([0-9]+)\.[0-9]+\.[0-9]+$/m.exec(read("components/images/gateway/Dockerfile"));
        assert.ok(version, "ARG NODE_VERSION=<major>.<minor>.<patch> in the Dockerfile");
        assert.match(read("components/images/gateway/bundle.ts"), new RegExp(`target: "node${version[1]}"`));
        assert.equal(JSON.parse(read("package.json")).engines.node, `>=${version[1]}`);
    });

    it("the image verifies the release checksum for every architecture it supports", () => {
        const dockerfile = read("components/images/gateway/Dockerfile");
        assert.match(dockerfile, /ARG NODE_SHA256_AMD64=[0-9a-f]{64}\n/);
        assert.match(dockerfile, /ARG NODE_SHA256_ARM64=[0-9a-f]{64}\n/);
        assert.match(dockerfile, /sha256sum -c -/);
    });
});

describe("the tools the tests build", () => {
    it("test/tools/install.sh reads each pinned version from the file that defines it", () => {
        const script = read("test/tools/install.sh");
        const consulFile = /CONSUL_VERSION = .*"\$root\/([^"]+)"\)"/.exec(script)?.[1];
        assert.ok(consulFile, "install.sh names the file it reads CONSUL_VERSION from");
        assert.ok(read(consulFile).includes(`export const CONSUL_VERSION = "${CONSUL_VERSION}";`), `${consulFile} defines CONSUL_VERSION`);
    });
});

describe("the gateway image's build context", () => {
    it("lets through every file the Dockerfile copies from it (.dockerignore is an allow-list)", () => {
        const dir = "components/images/gateway";
        const ignore = read(`${dir}/.dockerignore`)
            .split("\n")
            .map((l) => l.trim())
            .filter(Boolean);
        assert.equal(ignore[0], "*", ".dockerignore starts by excluding everything");
        const allowed = new Set(ignore.filter((l) => l.startsWith("!")).map((l) => l.slice(1)));
        // COPY lines without --from: their sources come from the context (options such as --chmod aside).
        const copied = read(`${dir}/Dockerfile`)
            .split("\n")
            .filter((l) => /^COPY (?!--from)/.test(l))
            .flatMap((l) => l.trim().split(/\s+/).slice(1, -1))
            .filter((w) => !w.startsWith("--"));
        assert.ok(copied.includes("dist/controller.js") && copied.includes("bootstrap.cfg") && copied.includes("node"), copied.join(" "));
        // Made before a build, not committed: the bundle (bundle.ts) and, for nodeSource context, node.
        const made = ["dist/controller.js", "node"];
        for (const f of copied) {
            assert.ok(allowed.has(f), `${f} is copied but excluded by .dockerignore`);
            assert.ok(fs.existsSync(path.join(ROOT, dir, f)) || made.includes(f), `${f} exists`);
        }
        const gitignore = read(".gitignore").split("\n");
        assert.ok(gitignore.includes(`${dir}/dist/`) && gitignore.includes(`${dir}/node`), "what is made before a build is not committed");
    });
});
