// The e2e applier's @pulumi/random resources: generated here, as the provider would.
import { randomBytes, randomInt } from "node:crypto";
import { allow } from "./inputs";
import { type Obj } from "./scope";

export function randomPassword(where: string, inputs: Obj): { id: string; outputs: Obj } {
    const p = allow(where, inputs, ["length"], ["special", "upper", "lower", "numeric"]);
    let chars = "";
    if (p.lower !== false) chars += "abcdefghijklmnopqrstuvwxyz";
    if (p.upper !== false) chars += "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    if (p.numeric !== false) chars += "0123456789";
    if (p.special !== false) chars += "!@#$%&*()-_=+[]{}<>:?";
    let result = "";
    for (let i = 0; i < Number(p.length); i++) result += chars[randomInt(chars.length)];
    return { id: "none", outputs: { result } };
}

export function randomId(where: string, inputs: Obj): { id: string; outputs: Obj } {
    const p = allow(where, inputs, ["byteLength"]);
    const bytes = randomBytes(Number(p.byteLength));
    const b64Url = bytes.toString("base64url");
    return {
        id: b64Url,
        outputs: { b64Std: bytes.toString("base64"), b64Url, hex: bytes.toString("hex"), dec: BigInt(`0x${bytes.toString("hex")}`).toString(), id: b64Url },
    };
}
