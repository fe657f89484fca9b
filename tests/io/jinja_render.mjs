// Renders chat templates with @huggingface/jinja (the Jinja engine of Hugging Face's JS
// libraries), for the chat-template test.
// Usage: node jinja_render.mjs NPM_DIR JOB.json
//   JOB: [{"template": "...", "messages": [{"role", "content"}], "add_generation_prompt": bool}, ...]
// Prints a JSON array of the rendered strings.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [npmDir, jobFile] = process.argv.slice(2);
const { Template } = await import(pathToFileURL(path.join(npmDir, "node_modules/@huggingface/jinja/dist/index.js")).href);
const jobs = JSON.parse(fs.readFileSync(jobFile, "utf8"));
const out = jobs.map((j) => new Template(j.template).render({ messages: j.messages, add_generation_prompt: j.add_generation_prompt }));
process.stdout.write(JSON.stringify(out) + "\n");
