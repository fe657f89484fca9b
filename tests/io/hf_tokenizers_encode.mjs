// Encodes texts with @huggingface/tokenizers (Hugging Face's JS tokenizers) loading a
// model directory's tokenizer.json and tokenizer_config.json, for the tokenizer test.
// Usage: node hf_tokenizers_encode.mjs NPM_DIR MODEL_DIR TEXTS.json
// Prints a JSON array of id arrays (add_special_tokens false; special-token text in the
// input becomes its id, as Hugging Face tokenizers always do).
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [npmDir, modelDir, textsFile] = process.argv.slice(2);
const { Tokenizer } = await import(
  pathToFileURL(path.join(npmDir, "node_modules/@huggingface/tokenizers/dist/tokenizers.mjs")).href);
const read = (f) => JSON.parse(fs.readFileSync(path.join(modelDir, f), "utf8"));
const tok = new Tokenizer(read("tokenizer.json"), read("tokenizer_config.json"));
const texts = JSON.parse(fs.readFileSync(textsFile, "utf8"));
process.stdout.write(JSON.stringify(texts.map((t) => tok.encode(t, { add_special_tokens: false }).ids)) + "\n");
