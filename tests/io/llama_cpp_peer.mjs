// The llama.cpp side of the GGUF peer test, through the npm package node-llama-cpp
// (prebuilt llama.cpp), plus @huggingface/gguf's independent header parser.
// Usage: node llama_cpp_peer.mjs NPM_DIR JOB.json
//   JOB: {"model": "x.gguf", "context": 256,
//         "generate": [{"prompt": [ids], "n": 40}, ...],   greedy (temperature 0) continuations
//         "tokenize": ["text", ...]}                        ordinary tokenization (special-token text is plain)
// Prints JSON: {"generated": [[ids]], "tokenized": [[ids]], "metadata": {key: value} (arrays as
// their length), "tensors": [{"name", "shape", "dtype"}]}.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [npmDir, jobFile] = process.argv.slice(2);
const job = JSON.parse(fs.readFileSync(jobFile, "utf8"));
const mod = (name, file) => import(pathToFileURL(path.join(npmDir, "node_modules", name, file)).href);
const { getLlama, LlamaLogLevel } = await mod("node-llama-cpp", "dist/index.js");
const { gguf } = await mod("@huggingface/gguf", "dist/index.mjs");

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: job.model, gpuLayers: 0 });
const out = { generated: [], tokenized: [] };
const ctx = await model.createContext({ contextSize: job.context ?? 256, threads: 2,
                                        experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" });
const seq = ctx.getSequence();
for (const g of job.generate ?? []) {
  await seq.clearHistory();
  const tokens = [];
  for await (const t of seq.evaluate(g.prompt, { temperature: 0 })) {
    tokens.push(t);
    if (tokens.length >= g.n) break;
  }
  out.generated.push(tokens);
}
for (const text of job.tokenize ?? []) out.tokenized.push(Array.from(model.tokenize(text, false)));
await ctx.dispose();
await model.dispose();

const parsed = await gguf(job.model, { allowLocalFile: true });
out.metadata = {};
for (const [k, v] of Object.entries(parsed.metadata))
  out.metadata[k] = Array.isArray(v) ? { length: v.length, first: v.slice(0, 3) } : typeof v === "bigint" ? Number(v) : v;
out.tensors = parsed.tensorInfos.map((t) => ({ name: t.name, shape: t.shape.map(Number), dtype: t.dtype }));
process.stdout.write(JSON.stringify(out) + "\n");
