// The shipped Dockerfiles (components/images/*/Dockerfile) pin what they build from: every FROM
// a base pinned by digest (its ARG default), every apt package by version. Each rule is checked
// against the shipped files and against a file that breaks it.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { dockerfileBaseImages, unpinnedBaseImages } from "../../policy/policies";
import { ROOT } from "../support/program";

const IMAGES = path.join(ROOT, "components/images");
const DOCKERFILES = fs
    .readdirSync(IMAGES)
    .filter((d) => fs.existsSync(path.join(IMAGES, d, "Dockerfile")))
    .map((d) => ({ name: `components/images/${d}/Dockerfile`, text: fs.readFileSync(path.join(IMAGES, d, "Dockerfile"), "utf8") }));
const DIGEST = "sha256:" + "0".repeat(64);

/** The RUN instructions of a Dockerfile, continuation lines joined. */
function runInstructions(text: string): string[] {
    return text
        .replace(/\\\r?\n/g, " ")
        .split(/\r?\n/)
        .map((l) => l.trim())
        .filter((l) => /^RUN\s/i.test(l));
}

/** Packages an `apt-get install` (or `apt install`) in a RUN names without `=version`. */
function unpinnedAptPackages(text: string): string[] {
    const unpinned: string[] = [];
    for (const run of runInstructions(text)) {
        for (const command of run.split(/;|&&|\|\|/)) {
            const words = command.trim().split(/\s+/);
            const at = words.findIndex((w, i) => /^apt(-get)?$/.test(w) && words[i + 1] === "install");
            if (at === -1) continue;
            for (const w of words.slice(at + 2)) {
                if (w === "\\" || w.startsWith("-")) continue;
                if (!/^[a-z0-9][a-z0-9+.-]*=[A-Za-z0-9.+~:-]+$/.test(w)) unpinned.push(w);
            }
        }
    }
    return unpinned;
}

describe("shipped Dockerfiles: every base image pinned by digest", () => {
    it("finds the four images", () => {
        assert.deepEqual(DOCKERFILES.map((d) => d.name).sort(), [
            "components/images/gateway/Dockerfile",
            "components/images/hello/Dockerfile",
            "components/images/postgres/Dockerfile",
            "components/images/socket-proxy/Dockerfile",
        ]);
    });
    for (const d of DOCKERFILES) {
        it(`${d.name}: each FROM resolves to name:tag@sha256:<digest> by default, and the build arg BASE_IMAGE replaces it`, () => {
            const bases = dockerfileBaseImages(d.text);
            assert.ok(bases.length >= 1, "at least one base image");
            assert.deepEqual(unpinnedBaseImages(d.text), []);
            for (const b of bases) assert.match(b, /^debian:bookworm-slim@sha256:[a-f0-9]{64}$/);
            // The substitution the e2e harness (and a mirror) relies on: a build arg, not an edit.
            assert.deepEqual(new Set(dockerfileBaseImages(d.text, { BASE_IMAGE: "debian:bookworm-slim" })), new Set(["debian:bookworm-slim"]));
        });
    }
    it("every Dockerfile starts from the same base digest", () => {
        assert.equal(new Set(DOCKERFILES.flatMap((d) => dockerfileBaseImages(d.text))).size, 1);
    });
    it("fails a FROM by tag, an ARG default without a digest, and a build arg without one", () => {
        assert.deepEqual(unpinnedBaseImages("FROM debian:bookworm-slim\nRUN true\n"), ["debian:bookworm-slim"]);
        assert.deepEqual(unpinnedBaseImages("ARG BASE=debian:bookworm-slim\nFROM --platform=$BUILDPLATFORM ${BASE} AS build\nFROM build\n"), [
            "debian:bookworm-slim",
        ]);
        assert.deepEqual(unpinnedBaseImages(`ARG BASE=debian@${DIGEST}\nFROM $BASE\n`, { BASE: "debian:12" }), ["debian:12"]);
        // An ARG with no default names nothing pinned.
        assert.deepEqual(unpinnedBaseImages("ARG BASE\nFROM ${BASE}\n"), ["${BASE}"]);
        // Each shipped file with its default's digest taken off.
        for (const d of DOCKERFILES) {
            const tagOnly = d.text.replace(/@sha256:[a-f0-9]{64}/g, "");
            assert.ok(unpinnedBaseImages(tagOnly).length >= 1, d.name);
        }
    });
    it("passes scratch, earlier stages (also one an ARG chooses) and continuation lines", () => {
        const text = [
            `ARG BASE=debian:bookworm-slim@${DIGEST}`,
            "ARG SOURCE=release",
            "FROM ${BASE} AS node-release",
            "FROM scratch AS node-context",
            "FROM node-${SOURCE} AS node",
            "FROM \\",
            "    ${BASE}",
        ].join("\n");
        assert.deepEqual(dockerfileBaseImages(text), [`debian:bookworm-slim@${DIGEST}`, `debian:bookworm-slim@${DIGEST}`]);
    });
});

describe("shipped Dockerfiles: every apt package pinned by version", () => {
    for (const d of DOCKERFILES) {
        it(`${d.name}: installs only name=version`, () => {
            assert.ok(/apt-get install/.test(d.text), "installs packages");
            assert.deepEqual(unpinnedAptPackages(d.text), []);
        });
    }
    it("fails a package without a version, also after a continuation line and in a second command", () => {
        assert.deepEqual(unpinnedAptPackages("RUN apt-get update && apt-get install -y --no-install-recommends haproxy=2.6.12-1+deb12u4 curl\n"), ["curl"]);
        assert.deepEqual(unpinnedAptPackages("RUN set -eu; \\\n    apt-get install -y \\\n      python3 ; apt install -y jq=1.6-2.1\n"), ["python3"]);
        for (const d of DOCKERFILES) {
            const floating = d.text.replace(/(apt-get install[^;\n]*?\s)([a-z0-9][a-z0-9+.-]*)=[A-Za-z0-9.+~:-]+/, "$1$2");
            assert.equal(unpinnedAptPackages(floating).length, 1, d.name);
        }
    });
});
