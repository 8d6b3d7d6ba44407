// The policy pack `pulumi preview --policy-pack policy` runs. The rules live in policies.ts
// so that the tests can exercise them without starting the policy server.
import { PolicyPack } from "@pulumi/policy";
import { policies } from "./policies";

new PolicyPack("service-discovery", { policies });
