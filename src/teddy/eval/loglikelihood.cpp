#include "teddy/eval/loglikelihood.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "teddy/core/error.h"

namespace teddy {

std::pair<std::vector<int32_t>, std::vector<int32_t>> encode_pair(const Tokenizer& tok, std::string_view context,
                                                                  std::string_view continuation) {
  std::string ctx(context), cont(continuation);
  if (ctx.empty()) {
    const std::vector<uint32_t> c = tok.encode(cont);
    if (c.empty()) throw Error("log-likelihood: the continuation encodes to no tokens");
    return {{static_cast<int32_t>(tok.eot_id())}, std::vector<int32_t>(c.begin(), c.end())};
  }
  const size_t keep = ctx.find_last_not_of(" \t\n\r\f\v");
  const size_t cut = keep == std::string::npos ? 0 : keep + 1;
  cont = ctx.substr(cut) + cont;
  ctx.resize(cut);
  const std::vector<uint32_t> whole = tok.encode(ctx + cont);
  const std::vector<uint32_t> c = tok.encode(ctx);
  if (whole.size() <= c.size()) throw Error("log-likelihood: the continuation encodes to no tokens past the context");
  return {std::vector<int32_t>(c.begin(), c.end()), std::vector<int32_t>(whole.begin() + static_cast<ptrdiff_t>(c.size()), whole.end())};
}

namespace {

struct Row {
  std::vector<int32_t> input;
  std::vector<size_t> requests;  // indices of the requests read from this row
};

}  // namespace

std::vector<LoglikResult> score_loglikelihood(Model& model, std::span<const LoglikRequest> requests,
                                              const LoglikOptions& opt,
                                              const std::function<void(size_t, size_t)>& progress) {
  const ModelConfig& cfg = model.config();
  const int L = cfg.max_seq_len, V = cfg.vocab_size, Vp = cfg.padded_vocab_size;
  // One row per distinct model input.
  std::vector<Row> rows;
  std::map<std::vector<int32_t>, size_t> index;
  for (size_t i = 0; i < requests.size(); ++i) {
    const LoglikRequest& r = requests[i];
    if (r.continuation.empty()) throw Error("log-likelihood request " + std::to_string(i) + ": empty continuation");
    if (r.continuation.size() > static_cast<size_t>(L))
      throw Error("log-likelihood request " + std::to_string(i) + ": a continuation of " + std::to_string(r.continuation.size()) +
                  " tokens does not fit the model's context of " + std::to_string(L));
    std::vector<int32_t> all = r.context;
    all.insert(all.end(), r.continuation.begin(), r.continuation.end());
    for (int32_t t : all)
      if (t < 0 || t >= V)
        throw Error("log-likelihood request " + std::to_string(i) + ": token id " + std::to_string(t) +
                    " is outside the model's vocabulary of " + std::to_string(V));
    const size_t start = all.size() > static_cast<size_t>(L) + 1 ? all.size() - static_cast<size_t>(L) - 1 : 0;
    std::vector<int32_t> input(all.begin() + static_cast<ptrdiff_t>(start), all.end() - 1);
    auto [it, fresh] = index.emplace(std::move(input), rows.size());
    if (fresh) rows.push_back({it->first, {}});
    rows[it->second].requests.push_back(i);
  }
  // Longest first, so a batch's padding is small and memory peaks at the start.
  std::vector<size_t> order(rows.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rows[a].input.size() > rows[b].input.size(); });

  std::vector<LoglikResult> out(requests.size());
  std::vector<int32_t> tokens;
  std::vector<float> logits;
  size_t done = 0;
  for (size_t first = 0; first < order.size();) {
    const int T = static_cast<int>(rows[order[first]].input.size());
    const size_t per_row = static_cast<size_t>(T) * static_cast<size_t>(Vp) * sizeof(float);
    int B = static_cast<int>(std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(std::max(1, opt.max_batch)),
                                                                  opt.max_logit_bytes / per_row)));
    B = static_cast<int>(std::min<size_t>(static_cast<size_t>(B), order.size() - first));
    tokens.assign(static_cast<size_t>(B) * static_cast<size_t>(T), 0);
    for (int b = 0; b < B; ++b) {
      const std::vector<int32_t>& in = rows[order[first + static_cast<size_t>(b)]].input;
      std::copy(in.begin(), in.end(), tokens.begin() + static_cast<ptrdiff_t>(b) * T);
    }
    logits.resize(static_cast<size_t>(B) * static_cast<size_t>(T) * static_cast<size_t>(Vp));
    Batch batch;
    batch.tokens = tokens.data();
    batch.B = B;
    batch.T = T;
    model.forward(batch, logits.data());
    for (int b = 0; b < B; ++b) {
      const Row& row = rows[order[first + static_cast<size_t>(b)]];
      const size_t n_in = row.input.size();
      for (size_t ri : row.requests) {
        const std::vector<int32_t>& cont = requests[ri].continuation;
        LoglikResult res;
        res.greedy = true;
        for (size_t j = 0; j < cont.size(); ++j) {
          const size_t p = n_in - cont.size() + j;  // this position's logits predict cont[j]
          const float* z = logits.data() + (static_cast<size_t>(b) * static_cast<size_t>(T) + p) * static_cast<size_t>(Vp);
          // log-softmax over the real vocabulary (padded ids excluded), in double.
          float zmax = z[0];
          int best = 0;
          for (int v = 1; v < V; ++v)
            if (z[v] > zmax) zmax = z[v], best = v;
          double sum = 0;
          for (int v = 0; v < V; ++v) sum += std::exp(static_cast<double>(z[v]) - zmax);
          res.logprob += static_cast<double>(z[cont[j]]) - zmax - std::log(sum);
          res.greedy = res.greedy && best == cont[j];
        }
        out[ri] = res;
      }
      done += row.requests.size();
    }
    first += static_cast<size_t>(B);
    if (progress) progress(done, requests.size());
  }
  return out;
}

}  // namespace teddy
