// `teddy arena`: Bradley-Terry (Elo-scale) ratings from pairwise battles.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "teddy/cli/commands.h"
#include "teddy/cli/progress.h"
#include "teddy/core/error.h"
#include "teddy/eval/arena.h"
#include "teddy/eval/arena_battle.h"
#include "teddy/io/atomic_file.h"
#include "teddy/io/hf_import.h"
#include "teddy/train/chat_model.h"

namespace teddy::cli {

// JSON text of generated strings, which may hold invalid UTF-8 (a token can end
// inside a character): such bytes become U+FFFD instead of an exception.
static std::string dump_lossy(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

void register_arena(CLI::App& app, Run& run) {
  struct Opts {
    std::string battles;
    int bootstrap = 1000;
    uint64_t seed = 1;
    bool json = false;
    // arena battle
    std::vector<std::string> models;
    std::string prompts, judge = "loglik", out;
    int max_tokens = 64;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand("arena", "Arena ratings (Bradley-Terry, Elo scale) from pairwise battles");
  sub->add_option("--battles", o->battles, "JSONL rows {model_a, model_b, winner: model_a | model_b | tie} (required, unless `battle`)");
  sub->add_option("--bootstrap", o->bootstrap, "Bootstrap resamples for the 95% intervals (0: none)")->check(CLI::NonNegativeNumber);
  sub->add_option("--seed", o->seed, "Bootstrap seed");
  sub->add_flag("--json", o->json, "Print one JSON object: {\"ratings\": {MODEL: {rating, lower, upper, battles}}, \"win_rate\": ...}");
  sub->footer(
      "P(A beats B) = 1 / (1 + 10^((R_B - R_A) / 400)), fitted by maximum likelihood (ties: half a win each), mean "
      "rating 1000; intervals: 2.5th and 97.5th percentiles over bootstrap resamples of the battles (docs/EVAL.md).");
  CLI::App* bt = sub->add_subcommand("battle", "Battles between teddy models on a prompt set, judged automatically (then rated)");
  bt->add_option("--model", o->models, "NAME=SOURCE: a run / checkpoint directory or hf:DIR (two or more)")->required();
  bt->add_option("--prompts", o->prompts, "JSONL rows {prompt, reference} (or question, answer)")->required();
  bt->add_option("--judge", o->judge,
                 "loglik: the higher log-likelihood per byte of the reference wins; exact: a greedy answer (first line, "
                 "trimmed) equal to the reference wins; equal: tie");
  bt->add_option("--out", o->out, "Battles JSONL to write (model_a, model_b, winner, prompt, scores)")->required();
  bt->add_option("--max-tokens,-n", o->max_tokens, "exact: longest answer")->check(CLI::PositiveNumber);
  bt->add_option("--bootstrap", o->bootstrap, "Bootstrap resamples for the ratings printed after")->check(CLI::NonNegativeNumber);
  bt->callback([o, &run] {
    run = [o] {
      std::vector<ChatModel> loaded;
      std::vector<std::string> names;
      for (const std::string& spec : o->models) {
        const size_t eq = spec.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
          throw ConfigError("--model: NAME=SOURCE expected (got \"" + spec + "\")");
        names.push_back(spec.substr(0, eq));
        const std::string source = spec.substr(eq + 1), hf = hf_model_dir(source);
        loaded.push_back(hf.empty() ? load_chat_model(source, "", false) : load_hf_chat_model(hf, false));
      }
      std::vector<ArenaContestant> cs;
      for (size_t i = 0; i < loaded.size(); ++i) cs.push_back({names[i], loaded[i].model.get(), &loaded[i].tok});
      const std::vector<ArenaPrompt> prompts = read_arena_prompts(o->prompts);
      ProgressLine bar(stderr, 20);
      const std::vector<BattleRecord> recs = run_battles(cs, prompts, o->judge, o->max_tokens, [&](size_t d, size_t t) {
        bar.update(static_cast<int64_t>(d), static_cast<int64_t>(t), "");
      });
      bar.finish();
      std::string lines;
      std::vector<Battle> battles;
      for (const BattleRecord& r : recs) {
        nlohmann::ordered_json j;
        j["model_a"] = r.battle.model_a;
        j["model_b"] = r.battle.model_b;
        j["winner"] = r.battle.score_a == 1 ? "model_a" : r.battle.score_a == 0 ? "model_b" : "tie";
        j["prompt"] = r.prompt;
        j["judge"] = o->judge;
        j["score_a"] = r.score_a;
        j["score_b"] = r.score_b;
        if (o->judge == "exact") j["answer_a"] = r.answer_a, j["answer_b"] = r.answer_b;
        lines += dump_lossy(j) + "\n";
        battles.push_back(r.battle);
      }
      write_file_atomic(o->out, lines);
      std::printf("%zu battles (%zu prompts, %zu models, judge %s) -> %s\n", recs.size(), prompts.size(), cs.size(),
                  o->judge.c_str(), o->out.c_str());
      try {
        const ArenaResult r = arena_ratings(battles, o->bootstrap, o->seed);
        for (size_t i = 0; i < r.ratings.size(); ++i)
          std::printf("%-4zu %-28s %8.1f [%.1f, %.1f] %lld battles\n", i + 1, r.ratings[i].model.c_str(), r.ratings[i].rating,
                      r.ratings[i].lower, r.ratings[i].upper, static_cast<long long>(r.ratings[i].battles));
      } catch (const Error& e) {
        std::printf("no ratings: %s\n", e.what());  // the battles are written; they may just not determine them
      }
      return 0;
    };
  });
  sub->callback([o, bt, &run] {
    if (bt->parsed()) return;  // `teddy arena battle`: its own callback set the runner
    run = [o] {
      if (o->battles.empty()) throw ConfigError("arena: --battles is required (or use `teddy arena battle`)");
      const std::vector<Battle> battles = read_battles(o->battles);
      const ArenaResult r = arena_ratings(battles, o->bootstrap, o->seed);
      if (o->json) {
        nlohmann::ordered_json j, ratings = nlohmann::ordered_json::object(), wr = nlohmann::ordered_json::object();
        for (const ArenaRating& a : r.ratings)
          ratings[a.model] = {{"rating", a.rating}, {"lower", a.lower}, {"upper", a.upper}, {"battles", a.battles}};
        for (size_t i = 0; i < r.models.size(); ++i) {
          nlohmann::ordered_json row = nlohmann::ordered_json::object();
          for (size_t j = 0; j < r.models.size(); ++j)
            if (r.counts[i][j] > 0) row[r.models[j]] = r.win_rate[i][j];
          wr[r.models[i]] = row;
        }
        j["ratings"] = ratings;
        j["win_rate"] = wr;
        j["battles"] = battles.size();
        j["bootstrap"] = r.bootstrap;
        j["bootstrap_failed"] = r.bootstrap_failed;
        std::printf("%s\n", dump_lossy(j).c_str());
        return 0;
      }
      std::printf("%-4s %-28s %8s %20s %8s\n", "rank", "model", "rating", "95% interval", "battles");
      for (size_t i = 0; i < r.ratings.size(); ++i) {
        const ArenaRating& a = r.ratings[i];
        char ci[64];
        std::snprintf(ci, sizeof ci, "[%.1f, %.1f]", a.lower, a.upper);
        std::printf("%-4zu %-28s %8.1f %20s %8lld\n", i + 1, a.model.c_str(), a.rating, ci, static_cast<long long>(a.battles));
      }
      std::printf("\nwin rate of the row's model against the column's (ties half; - : never met)\n%-28s", "");
      for (size_t j = 0; j < r.models.size(); ++j) std::printf(" %8.8s", r.models[j].c_str());
      std::printf("\n");
      for (size_t i = 0; i < r.models.size(); ++i) {
        std::printf("%-28s", r.models[i].c_str());
        for (size_t j = 0; j < r.models.size(); ++j) {
          if (r.counts[i][j] > 0) std::printf(" %8.3f", r.win_rate[i][j]);
          else std::printf(" %8s", "-");
        }
        std::printf("\n");
      }
      std::printf("%zu battles, %d bootstrap resamples (%d without a finite fit, skipped)\n", battles.size(), r.bootstrap,
                  r.bootstrap_failed);
      return 0;
    };
  });
}

}  // namespace teddy::cli
