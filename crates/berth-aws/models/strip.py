#!/usr/bin/env python3
"""Copies botocore's service models from ../shared/aws-models without their
documentation strings, so the server can embed them (operation tables,
input validation, the compatibility page). Run from the repository root:
    python3 crates/berth-aws/models/strip.py ../shared/aws-models
"""
import json, os, sys

SERVICES = ["ecs", "ecr", "elbv2", "application-autoscaling", "cloudwatch", "logs", "iam", "sts"]
DROP = {"documentation", "documentationUrl", "examples", "deprecatedMessage"}

def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in DROP}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v

src = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
for s in SERVICES:
    with open(os.path.join(src, s, "service-2.json")) as f:
        model = strip(json.load(f))
    with open(os.path.join(here, s + ".json"), "w") as f:
        json.dump(model, f, separators=(",", ":"), sort_keys=True)
        f.write("\n")
