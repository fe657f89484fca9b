// Renders chat templates with @huggingface/jinja (the Jinja engine of Hugging Face's JS
// libraries), for the chat-template tests.
// Usage: node jinja_render.mjs NPM_DIR JOB.json
//   JOB: [{"template": "...", "messages": [{"role", "content"}], "add_generation_prompt": bool}, ...]
//   or   [{"template": "...", "context": {...variables...}, "now": unix_seconds}, ...]
//   ("context" given: its keys are the variables; strftime_now, which @huggingface/jinja
//   defines itself, formats `now` in UTC: the clock is pinned for that render)
// Prints a JSON array: each the rendered string, or {"error": message} when rendering failed.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [npmDir, jobFile] = process.argv.slice(2);
const { Template } = await import(pathToFileURL(path.join(npmDir, "node_modules/@huggingface/jinja/dist/index.js")).href);
const jobs = JSON.parse(fs.readFileSync(jobFile, "utf8"));

process.env.TZ = "UTC";
const RealDate = Date;
function pinClock(seconds) {
  globalThis.Date = class extends RealDate {
    constructor(...a) {
      super(...(a.length ? a : [seconds * 1000]));
    }
    static now() {
      return seconds * 1000;
    }
  };
}

const out = jobs.map((j) => {
  const ctx = j.context ?? { messages: j.messages, add_generation_prompt: j.add_generation_prompt };
  globalThis.Date = RealDate;
  if (j.context) pinClock(j.now ?? 0);
  try {
    return new Template(j.template).render(ctx);
  } catch (e) {
    return { error: String(e.message ?? e) };
  } finally {
    globalThis.Date = RealDate;
  }
});
process.stdout.write(JSON.stringify(out) + "\n");
