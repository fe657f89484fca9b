// Encoding throughput of the npm `tiktoken` package (gpt2, ordinary encoding) on
// one file, with 1 or more worker threads (the text is cut at newlines into equal
// parts, one per worker). Loading is not timed. Prints one JSON line.
// Usage: node tiktoken_throughput.js NPM_DIR FILE THREADS [REPEATS]
const { Worker, isMainThread, parentPort, workerData } = require("worker_threads");

if (!isMainThread) {
  const { get_encoding } = require(workerData.npmDir + "/node_modules/tiktoken");
  const enc = get_encoding("gpt2");
  parentPort.on("message", (text) => {
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();  // the whole process's CPU time (user + system)
    const n = enc.encode_ordinary(text).length;
    const c = process.cpuUsage(c0);
    parentPort.postMessage({ n, ns: Number(process.hrtime.bigint() - t0), cpu_s: (c.user + c.system) / 1e6 });
  });
  parentPort.postMessage("ready");
  return;
}

const fs = require("fs");
const [npmDir, file, threadsArg, repeatsArg] = process.argv.slice(2);
const threads = Number(threadsArg || 1), repeats = Number(repeatsArg || 3);
const text = fs.readFileSync(file, "utf8");
const bytes = fs.statSync(file).size;

// Equal parts, each ending at a newline.
const parts = [];
let start = 0;
for (let k = 1; k <= threads; ++k) {
  let end = k === threads ? text.length : text.indexOf("\n", Math.floor((text.length * k) / threads));
  end = end < 0 ? text.length : Math.min(text.length, end + 1);
  parts.push(text.slice(start, end));
  start = end;
}

const workers = parts.map(() => new Worker(__filename, { workerData: { npmDir } }));
const ready = workers.map((w) => new Promise((r) => w.once("message", r)));

(async () => {
  await Promise.all(ready);
  let best = Infinity, best_cpu = Infinity, tokens = 0;
  for (let r = 0; r < repeats; ++r) {
    const t0 = process.hrtime.bigint();
    const results = await Promise.all(
      workers.map((w, i) => new Promise((res) => { w.once("message", res); w.postMessage(parts[i]); })));
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    tokens = results.reduce((a, x) => a + x.n, 0);
    best = Math.min(best, s);
    best_cpu = Math.min(best_cpu, Math.max(...results.map((x) => x.cpu_s)));
  }
  console.log(JSON.stringify({ impl: "tiktoken (npm, WASM)", threads, bytes, tokens, seconds: best, mb_per_s: bytes / 1e6 / best,
                                cpu_seconds: best_cpu, mb_per_cpu_s: bytes / 1e6 / best_cpu }));
  workers.forEach((w) => w.terminate());
})();
