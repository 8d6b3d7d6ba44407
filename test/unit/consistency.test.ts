// One source of truth per fact: the versions the stack ships are the versions the tests
// build, and the template's defaults and patterns agree with the config the program validates.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { CONSUL_VERSION, DURATION_PATTERN, parseSettings, SERVICE_NAME_PATTERN, VERSION_PATTERN } from "../../components/config";
import { KV_PREFIX } from "../../components/gateway-kv";
import { ROOT, stackConfig } from "../support/program";

const read = (file: string) => fs.readFileSync(path.join(ROOT, file), "utf8");
const template = read("components/images/gateway/haproxy.ctmpl");

/** A `$name := "pattern"` assignment in the template, as a JS RegExp. */
function templatePattern(name: string): RegExp {
    const m = new RegExp(`\\$${name} := "([^"]+)"`).exec(template);
    assert.ok(m, `template defines $${name}`);
    return new RegExp(m[1]);
}

describe("pinned versions", () => {
    it("Consul: config default, Pulumi.dev.yaml and the test build agree", () => {
        assert.match(read("test/tools/consul/go.mod"), new RegExp(`github\\.com/hashicorp/consul v${CONSUL_VERSION.replace(/\./g, "\\.")}\\b`));
        assert.equal(JSON.parse(stackConfig("dev")["service-discovery:consul"]).image, `hashicorp/consul:${CONSUL_VERSION}`);
        assert.equal(parseSettings({}, "dev").consul.image, `hashicorp/consul:${CONSUL_VERSION}`);
    });

    it("consul-template: the image's pinned release and the test build agree", () => {
        const version = /^ARG CONSUL_TEMPLATE_VERSION=(.+)$/m.exec(read("components/images/gateway/Dockerfile"))?.[1];
        assert.ok(version);
        assert.match(read("test/tools/consul-template/go.mod"), new RegExp(`github\\.com/hashicorp/consul-template v${version.replace(/\./g, "\\.")}\\b`));
    });

    it("the image verifies the release checksum for every architecture it supports", () => {
        const dockerfile = read("components/images/gateway/Dockerfile");
        assert.match(dockerfile, /ARG CONSUL_TEMPLATE_SHA256_AMD64=[0-9a-f]{64}\n/);
        assert.match(dockerfile, /ARG CONSUL_TEMPLATE_SHA256_ARM64=[0-9a-f]{64}\n/);
        assert.match(dockerfile, /sha256sum -c -/);
    });
});

describe("template and config agree", () => {
    it("the template's KV keys are the ones the program writes, with the config defaults", () => {
        const defaults = parseSettings({}, "dev").haproxy;
        // One watch reads every key under the prefix into scratch as "kv/<key>"; each setting then
        // falls back to its default when its key is absent.
        assert.ok(
            template.includes(`range tree "${KV_PREFIX}/" }}{{ scratch.Set (printf "kv/%s" .Key) .Value }}`),
            `template reads ${KV_PREFIX}/ with one tree`,
        );
        const expected: [string, string][] = [
            ["timeouts/connect", defaults.timeouts.connect],
            ["timeouts/client", defaults.timeouts.client],
            ["timeouts/server", defaults.timeouts.server],
        ];
        for (const [key, value] of expected) {
            assert.ok(template.includes(`:= "${value}" }}{{ if scratch.Key "kv/${key}" }}`), `template reads ${KV_PREFIX}/${key} with default ${value}`);
        }
        // maxconn's default is the config's, unless the file descriptor budget is smaller.
        assert.ok(template.includes(`$defaultMaxconn := ${defaults.maxconn} }}`), `template's default maxconn is ${defaults.maxconn}`);
        assert.ok(template.includes(`{{ if scratch.Key "kv/maxconn" }}{{ $maxconn = scratch.Get "kv/maxconn" }}`), "template reads maxconn");
    });

    it("a duration the config accepts is one the template accepts, and the reverse", () => {
        assert.equal(templatePattern("durationPattern").source, DURATION_PATTERN.source);
    });

    it("every Consul name the config can produce is routed by the template, at the configured path", () => {
        const name = templatePattern("namePattern");
        const versioned = templatePattern("versioned");
        for (const [service, version] of [
            ["hello", "v1"],
            ["a", "v9999"],
            ["my-api", "v2"],
            ["x".repeat(32), "v10"],
        ] as const) {
            assert.match(service, SERVICE_NAME_PATTERN);
            assert.match(version, VERSION_PATTERN);
            const consulName = `${service}-${version}`;
            assert.match(consulName, name);
            assert.match(consulName, versioned);
            // The template's own rewrite from Consul name to URL path.
            assert.equal(consulName.replace(/^(.*)-(v[0-9]{1,4})$/, "/$1/$2"), `/${service}/${version}`);
            assert.match(service, name);
            assert.doesNotMatch(service, versioned, "an unversioned name is never mistaken for a version");
        }
    });
});

describe("the tools the tests build", () => {
    it("test/tools/install.sh reads each pinned version from the file that defines it", () => {
        const script = read("test/tools/install.sh");
        const consulFile = /CONSUL_VERSION = .*"\$root\/([^"]+)"\)"/.exec(script)?.[1];
        assert.ok(consulFile, "install.sh names the file it reads CONSUL_VERSION from");
        assert.ok(read(consulFile).includes(`export const CONSUL_VERSION = "${CONSUL_VERSION}";`), `${consulFile} defines CONSUL_VERSION`);
        assert.match(script, /ARG CONSUL_TEMPLATE_VERSION=\/\/p' "\$root\/components\/images\/gateway\/Dockerfile"/);
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
        // COPY lines without --from: their sources come from the context.
        const copied = read(`${dir}/Dockerfile`)
            .split("\n")
            .filter((l) => /^COPY (?!--from)/.test(l))
            .flatMap((l) => l.trim().split(/\s+/).slice(1, -1));
        assert.ok(copied.includes("runtime-apply.sh") && copied.includes("reload.sh"), copied.join(" "));
        for (const f of copied) {
            assert.ok(allowed.has(f), `${f} is copied but excluded by .dockerignore`);
            assert.ok(fs.existsSync(path.join(ROOT, dir, f)) || f === "consul-template", `${f} exists`);
        }
    });
});
