"""Renders chat templates with Jinja2 (Debian's python3-jinja2) in the environment
transformers renders chat templates in (transformers/utils/chat_template_utils.py):
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
extensions=[loopcontrols]), a tojson filter with ensure_ascii=False and optional indent,
separators and sort_keys, and the globals raise_exception and strftime_now.

Usage: python3 jinja_render.py JOB.json
  JOB: [{"template": "...", "context": {...variables...}, "now": unix_seconds}, ...]
  (strftime_now formats `now` in UTC, so renders are deterministic)
Prints a JSON array: each the rendered string, or {"error": message} when rendering failed.
"""
import json
import sys
from datetime import datetime, timezone

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # transformers' override: Jinja's own tojson escapes HTML characters
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        jobs = json.load(f)
    out = []
    for job in jobs:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
        env.filters["tojson"] = tojson
        now = job.get("now", 0)
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = lambda fmt: datetime.fromtimestamp(now, timezone.utc).strftime(fmt)
        try:
            out.append(env.from_string(job["template"]).render(**job["context"]))
        except Exception as e:  # the test compares failures too
            out.append({"error": f"{type(e).__name__}: {e}"})
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
