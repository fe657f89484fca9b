// Encodes with the npm `tiktoken` package, ordinary encoding (special-token text
// is plain text).
// Usage: node tiktoken_encode.js NPM_DIR ENCODING FILE
//   FILE *.json: a JSON array of strings -> prints a JSON array of id arrays
//   any other FILE: its UTF-8 text -> prints the ids separated by spaces
const [npmDir, encoding, file] = process.argv.slice(2);
const { get_encoding } = require(npmDir + "/node_modules/tiktoken");
const fs = require("fs");
const enc = get_encoding(encoding);
if (file.endsWith(".json")) {
  const texts = JSON.parse(fs.readFileSync(file, "utf8"));
  process.stdout.write(JSON.stringify(texts.map((t) => Array.from(enc.encode_ordinary(t)))) + "\n");
} else {
  const text = fs.readFileSync(file, "utf8");
  process.stdout.write(Array.from(enc.encode_ordinary(text)).join(" ") + "\n");
}
enc.free();
