// `teddy arena`: Bradley-Terry (Elo-scale) ratings from pairwise battles.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "teddy/cli/commands.h"
#include "teddy/eval/arena.h"

namespace teddy::cli {

void register_arena(CLI::App& app, Run& run) {
  struct Opts {
    std::string battles;
    int bootstrap = 1000;
    uint64_t seed = 1;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand("arena", "Arena ratings (Bradley-Terry, Elo scale) from pairwise battles");
  sub->add_option("--battles", o->battles, "JSONL rows {model_a, model_b, winner: model_a | model_b | tie}")->required();
  sub->add_option("--bootstrap", o->bootstrap, "Bootstrap resamples for the 95% intervals (0: none)")->check(CLI::NonNegativeNumber);
  sub->add_option("--seed", o->seed, "Bootstrap seed");
  sub->add_flag("--json", o->json, "Print one JSON object: {\"ratings\": {MODEL: {rating, lower, upper, battles}}, \"win_rate\": ...}");
  sub->footer(
      "P(A beats B) = 1 / (1 + 10^((R_B - R_A) / 400)), fitted by maximum likelihood (ties: half a win each), mean "
      "rating 1000; intervals: 2.5th and 97.5th percentiles over bootstrap resamples of the battles (docs/EVAL.md).");
  sub->callback([o, &run] {
    run = [o] {
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
        std::printf("%s\n", j.dump().c_str());
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
