#!/usr/bin/env python3
"""Fail when `cargo test --workspace` rebuilds a crate that `cargo build` already built.

Usage: same-build.py BUILD.json TEST.json, the `--message-format=json` output of `cargo build`
and then of `cargo test --workspace --no-run`. A crate that both built (a dependency, or the
agent's own library and binary) but the tests compiled again was resolved with other features by
the two README commands (see the feature list in the root Cargo.toml): the newcomer's second
command would rebuild it and everything above it, tract included. Crates only the tests use,
and the test harnesses, are new, not rebuilt.
"""

import json
import re
import sys


def artifacts(path):
    with open(path) as f:
        for line in f:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if message.get("reason") == "compiler-artifact":
                yield message


def key(message):
    target = message["target"]
    return message["package_id"], target["name"], tuple(target["kind"]), message["profile"]["test"]


def hashes(message):
    """The hashes in an artifact's file names (`deps/libtract_core-0123456789abcdef.rlib`): they
    cover the crate's features and those of everything below it, so a crate the tests resolve
    differently gets other files, whether this target directory already has them or not."""
    return {h for f in message["filenames"] for h in re.findall(r"-([0-9a-f]{16})(?=[./]|$)", f)}


built = {}
for m in artifacts(sys.argv[1]):
    built.setdefault(key(m), set()).update(hashes(m))
rebuilt = sorted({f"{m['target']['name']} [{' '.join(m['features']) or 'no features'}]"
                  for m in artifacts(sys.argv[2])
                  if key(m) in built and not hashes(m) <= built[key(m)]})
if rebuilt:
    print(f"same-build: `cargo test --workspace` builds {len(rebuilt)} crate(s) again that `cargo build` "
          f"built, with other features; add the union to the root Cargo.toml: {', '.join(rebuilt)}",
          file=sys.stderr)
    sys.exit(1)
print(f"same-build: the tests reuse all {len(built)} artifacts of the agent's build")
