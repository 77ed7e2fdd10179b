#!/usr/bin/env python3
"""Print the model manifests a release ships, one name per line: `models` of the edgemass
package's [package.metadata.release] in Cargo.toml (read through `cargo metadata`)."""

import json
import subprocess

metadata = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                                     check=True, capture_output=True, text=True).stdout)
agent = next(p for p in metadata["packages"] if p["name"] == "edgemass")
print(*agent["metadata"]["release"]["models"], sep="\n")
