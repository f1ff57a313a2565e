"""What issue 25's table scripts share: the held-out dipeptides (held_out_25.txt), a JSON file
read if it exists, and a result's largest basin error against its reference."""
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
names = [l.strip() for l in open(os.path.join(here, "held_out_25.txt")) if l.strip() and not l.startswith("#")]


def load(path):
    return json.load(open(path)) if os.path.exists(path) else None


def basin_error(m):
    """The largest difference of a basin's population between samples and reference
    (`bgen eval`'s metrics.json)."""
    d = m["details"]
    return max(abs(v["value"] - d["basins_reference"].get(k, {"value": 0.0})["value"]) for k, v in d["basins_samples"].items())
