#include "teddy/eval/perplexity.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "teddy/core/error.h"
#include "teddy/data/shard.h"
#include "teddy/eval/jsonl.h"
#include "teddy/eval/tasks.h"

namespace fs = std::filesystem;

namespace teddy {

std::vector<LoglikRequest> rolling_windows(const std::vector<int32_t>& t, int32_t prefix, int L) {
  std::vector<LoglikRequest> out;
  const size_t n = t.size(), len = static_cast<size_t>(L);
  if (n == 0) return out;
  const size_t first = std::min(len, n);
  out.push_back({{prefix}, std::vector<int32_t>(t.begin(), t.begin() + static_cast<ptrdiff_t>(first))});
  size_t predicted = first;
  while (predicted < n) {
    const size_t m = std::min(n - predicted, len);  // tokens this window predicts
    const size_t end = predicted + m;
    // lm-eval's window: input t[end-L-1 .. end-1) predicting t[end-m .. end); its
    // disjoint form keeps as context only what precedes the predicted tokens.
    const size_t ctx_begin = end >= len + 1 ? end - len - 1 : 0;
    out.push_back({std::vector<int32_t>(t.begin() + static_cast<ptrdiff_t>(ctx_begin), t.begin() + static_cast<ptrdiff_t>(end - m)),
                   std::vector<int32_t>(t.begin() + static_cast<ptrdiff_t>(end - m), t.begin() + static_cast<ptrdiff_t>(end))});
    predicted = end;
  }
  return out;
}

namespace {

struct Doc {
  std::string name, text;       // text empty for a shard
  std::vector<int32_t> tokens;
};

bool is_shard(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  char magic[8] = {};
  return in.read(magic, 8) && std::memcmp(magic, kShardMagic, 8) == 0;
}

std::vector<Doc> read_docs(const std::string& data, const Tokenizer& tok, const EvalOptions& o) {
  std::vector<Doc> docs;
  auto add_file = [&](const fs::path& p) {
    if (is_shard(p)) {
      ShardReader sr(p.string());
      Doc d;
      d.name = p.string();
      d.tokens.resize(sr.size());
      sr.read(0, sr.size(), d.tokens.data());
      docs.push_back(std::move(d));
      return;
    }
    const std::string s = p.string();
    if (s.size() > 6 && (s.ends_with(".jsonl") || s.ends_with(".jsonl.gz"))) {
      for (const JsonlRow& r : read_jsonl(s)) {
        Doc d;
        d.name = s + ":" + std::to_string(r.line);
        d.text = require_string(r, s, o.text_field.c_str());
        docs.push_back(std::move(d));
      }
      return;
    }
    Doc d;
    d.name = s;
    d.text = read_maybe_gz(s);
    docs.push_back(std::move(d));
  };
  if (!fs::exists(data)) throw FormatError(data + ": no such file or folder");
  if (fs::is_directory(data)) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(data))
      if (e.is_regular_file() && e.path().filename().string()[0] != '.' && e.path().filename() != "manifest.json")
        files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) add_file(f);
  } else {
    add_file(data);
  }
  for (Doc& d : docs)
    if (!d.text.empty()) {
      const std::vector<uint32_t> ids = tok.encode(d.text);
      d.tokens.assign(ids.begin(), ids.end());
    }
  std::erase_if(docs, [](const Doc& d) { return d.tokens.empty(); });
  if (docs.empty()) throw FormatError(data + ": no text to score");
  return docs;
}

// lm-eval's word count for word_perplexity: len(re.split(r"\s+", doc)).
size_t words(const std::string& s) {
  size_t n = 1;
  for (size_t i = 0; i < s.size();) {
    if (std::isspace(static_cast<unsigned char>(s[i]))) {
      ++n;
      while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    } else {
      ++i;
    }
  }
  return n;
}

}  // namespace

EvalResult eval_perplexity(Model& m, const Tokenizer& tok, const std::string& data, const EvalOptions& o) {
  std::vector<Doc> docs = read_docs(data, tok, o);
  if (o.limit && docs.size() > o.limit) docs.resize(o.limit);
  const int32_t prefix = static_cast<int32_t>(tok.eot_id());
  std::vector<LoglikRequest> reqs;
  std::vector<size_t> owner;
  for (size_t i = 0; i < docs.size(); ++i)
    for (LoglikRequest& w : rolling_windows(docs[i].tokens, prefix, m.config().max_seq_len)) {
      reqs.push_back(std::move(w));
      owner.push_back(i);
    }
  const std::vector<LoglikResult> res = score_loglikelihood(m, reqs, o.loglik, o.progress);
  std::vector<double> ll(docs.size(), 0.0);
  for (size_t k = 0; k < res.size(); ++k) ll[owner[k]] += res[k].logprob;
  double sum = 0, tokens = 0, bytes = 0, nwords = 0;
  bool have_text = true;
  EvalResult r;
  r.task = "perplexity";
  for (size_t i = 0; i < docs.size(); ++i) {
    sum += ll[i];
    tokens += static_cast<double>(docs[i].tokens.size());
    have_text = have_text && !docs[i].text.empty();
    bytes += static_cast<double>(docs[i].text.size());
    nwords += static_cast<double>(words(docs[i].text));
    nlohmann::ordered_json j;
    j["doc"] = docs[i].name;
    j["tokens"] = docs[i].tokens.size();
    j["loglikelihood"] = ll[i];
    j["perplexity"] = std::exp(-ll[i] / static_cast<double>(docs[i].tokens.size()));
    r.samples.push_back(std::move(j));
  }
  r.n = docs.size();
  r.metrics["perplexity"] = std::exp(-sum / tokens);  // per token of this tokenizer
  if (have_text) {  // tokenizer-independent forms (lm-eval's wikitext metrics)
    r.metrics["word_perplexity"] = std::exp(-sum / nwords);
    r.metrics["byte_perplexity"] = std::exp(-sum / bytes);
    r.metrics["bits_per_byte"] = -sum / bytes / std::log(2.0);
  }
  r.info["tokens"] = tokens;
  r.info["windows"] = reqs.size();
  r.info["context"] = m.config().max_seq_len;
  r.info["chance"] = "perplexity = vocabulary size (" + std::to_string(m.config().vocab_size) + ") for a uniform model";
  return r;
}

}  // namespace teddy
