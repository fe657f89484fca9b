// teddy's Jinja engine, construct by construct (expected outputs are Jinja2's, with
// transformers' trim_blocks / lstrip_blocks), its errors (line and column, constructs
// refused by name) and the chat-template wrapper: Jinja templates in ChatTemplate,
// loss masks from the prefix property, the end-of-turn token. The published templates
// against Jinja2 and @huggingface/jinja: tests/io/test_jinja_peers.cpp.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "teddy/data/sft/chat_template.h"
#include "teddy/data/sft/dataset.h"
#include "teddy/data/sft/jinja/template.h"
#include "teddy/data/sft/jinja_chat.h"
#include "teddy/io/hf_extras.h"
#include "teddy/tokenizer/bpe_trainer.h"
#include "tokenizer/tokenizer_test_util.h"

namespace teddy {
namespace {

using json = nlohmann::json;

std::string R(const std::string& src, const json& ctx = json::object()) { return jinja::Template(src, "t").render(ctx); }

std::string error_of(const std::string& src, const json& ctx = json::object()) {
  try {
    R(src, ctx);
  } catch (const jinja::JinjaError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for: " << src;
  return "";
}

TEST(Jinja, TextOutputAndComments) {
  EXPECT_EQ(R("Hello {{ name }}!{# a comment #}", {{"name", "world"}}), "Hello world!");
  EXPECT_EQ(R("{{ 'a' }}{{ \"b\" }}{{ 1 }}{{ 2.5 }}{{ true }}{{ none }}"), "ab12.5TrueNone");
  EXPECT_EQ(R("{{ 'It\\'s \\\"q\\\" \\n\\t\\\\ \\u00e9 \\x41' }}"), "It's \"q\" \n\t\\ \xc3\xa9 A");
  EXPECT_EQ(R("{{ 'a' 'b' }}"), "ab");  // adjacent literals
  EXPECT_EQ(R("{{ [1, 'x', none, true] }}{{ {'k': 'v'} }}"), "[1, 'x', None, True]{'k': 'v'}");
  EXPECT_EQ(R("{{ 1.0 }} {{ 0.1 }} {{ 1e-5 }} {{ 1e16 }} {{ 3 / 2 }} {{ 4 / 2 }}"), "1.0 0.1 1e-05 1e+16 1.5 2.0");
}

TEST(Jinja, WhitespaceControl) {
  // trim_blocks: the newline after a block tag goes; lstrip_blocks: the indentation before it.
  EXPECT_EQ(R("{% if true %}\n  yes\n{% endif %}\nend"), "  yes\nend");
  EXPECT_EQ(R("a\n    {% if true %}\nb\n    {% endif %}\nc"), "a\nb\nc");
  EXPECT_EQ(R("a  {{- ' b ' -}}  c"), "a b c");
  EXPECT_EQ(R("a \n {%- if true -%} \n b {%- endif %}"), "ab");
  EXPECT_EQ(R("{{ 'x' }}\n{{ 'y' }}"), "x\ny");  // no trim after }}
  EXPECT_EQ(R("  {%+ if true %}x{% endif +%}\ny"), "  x\ny");  // + keeps both
  EXPECT_EQ(R("{# c #}\nx"), "x");
  EXPECT_EQ(R("x\n"), "x");  // one trailing newline dropped (keep_trailing_newline = False)
  EXPECT_EQ(R("x\r\ny"), "x\ny");
}

TEST(Jinja, IfElifElse) {
  const std::string t = "{% if n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %}";
  EXPECT_EQ(R(t, {{"n", 1}}), "one");
  EXPECT_EQ(R(t, {{"n", 2}}), "two");
  EXPECT_EQ(R(t, {{"n", 3}}), "many");
  EXPECT_EQ(R("{% if x %}t{% else %}f{% endif %}", {{"x", json::array()}}), "f");
  EXPECT_EQ(R("{% if x %}t{% else %}f{% endif %}"), "f");  // undefined is false
}

TEST(Jinja, ForLoops) {
  EXPECT_EQ(R("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.length }}"
              "{{ loop.first }}{{ loop.last }}|{% endfor %}",
              {{"xs", {"a", "b"}}}),
            "10212TrueFalse|21102FalseTrue|");
  EXPECT_EQ(R("{% for x in xs %}{{ x }}{% else %}empty{% endfor %}", {{"xs", json::array()}}), "empty");
  EXPECT_EQ(R("{% for x in xs if x > 1 %}{{ x }}{{ loop.length }}{% endfor %}", {{"xs", {1, 2, 3}}}), "2232");
  EXPECT_EQ(R("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {{"d", {{"a", 1}, {"b", 2}}}}), "a=1;b=2;");
  EXPECT_EQ(R("{% for k in d %}{{ k }}{% endfor %}", {{"d", {{"a", 1}, {"b", 2}}}}), "ab");
  EXPECT_EQ(R("{% for c in 'hé' %}[{{ c }}]{% endfor %}"), "[h][\xc3\xa9]");
  EXPECT_EQ(R("{% for x in [1,2,3,4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}"
              "{% endfor %}"),
            "13");
  EXPECT_EQ(R("{% for x in [1,2] %}{% for y in [3,4] %}{{ loop.index }}{% endfor %}{{ loop.index }}{% endfor %}"), "121122");
  EXPECT_EQ(R("{% for x in xs %}{{ x }}{% endfor %}"), "");  // undefined iterates as empty
}

TEST(Jinja, SetScopingAndNamespace) {
  EXPECT_EQ(R("{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}"), "2");          // if is not a scope
  EXPECT_EQ(R("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}"), "1");  // for is
  EXPECT_EQ(R("{% set ns = namespace(n=0) %}{% for i in [1,2,3] %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}"), "6");
  EXPECT_EQ(R("{% set ns = namespace() %}{% set ns.found = true %}{{ ns.found }}"), "True");
  EXPECT_EQ(R("{% set a, b = 1, 2 %}{{ a }}{{ b }}"), "12");
  EXPECT_EQ(R("{% set x %}in {{ 'block' }}{% endset %}[{{ x }}]"), "[in block]");
  EXPECT_EQ(R("{% set messages = messages[1:] %}{{ messages | length }}", {{"messages", {1, 2, 3}}}), "2");
  // Each iteration starts from the outer value (Jinja2: "01020"), and a macro sees the
  // template's variables as they are when it is called.
  EXPECT_EQ(R("{% set x = 0 %}{% for i in [1,2] %}{{ x }}{% set x = i %}{{ x }}{% endfor %}{{ x }}"), "01020");
  EXPECT_EQ(R("{% for i in [1,2] %}[{{ y }}]{% set y = i %}{% endfor %}"), "[][]");
  EXPECT_EQ(R("{% macro m() %}{{ g }}{% endmacro %}{% set g = 5 %}{{ m() }}"), "5");
}

TEST(Jinja, Macros) {
  EXPECT_EQ(R("{% macro m(a, b='d') %}<{{ a }}{{ b }}>{% endmacro %}{{ m(1) }}{{ m(1, 2) }}{{ m(a=3, b=4) }}"), "<1d><12><34>");
}

TEST(Jinja, Expressions) {
  EXPECT_EQ(R("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }}"),
            "7 9 3 -4 1 2 1024");
  EXPECT_EQ(R("{{ 'a' ~ 1 ~ none }} {{ 'ab' * 2 }} {{ [1] + [2] }} {{ -x }}", {{"x", 3}}), "a1None abab [1, 2] -3");
  EXPECT_EQ(R("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 1 != 2 }}"), "True False True True True");
  EXPECT_EQ(R("{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in d }} {{ 'z' not in d }}", {{"d", {{"k", 1}}}}),
            "True True True True");
  EXPECT_EQ(R("{{ x and y }} {{ x or y }} {{ not x }}", {{"x", 0}, {"y", "yes"}}), "0 yes True");
  EXPECT_EQ(R("{{ 'a' if c else 'b' }}{{ 'a' if not c }}", {{"c", false}}), "ba");
  EXPECT_EQ(R("{{ m.role }} {{ m['content'] }} {{ xs[0] }} {{ xs[-1] }} {{ xs.1 }}",
              {{"m", {{"role", "user"}, {"content", "hi"}}}, {"xs", {10, 20}}}),
            "user hi 10 20 20");
  EXPECT_EQ(R("{{ xs[1:] }} {{ xs[:-1] }} {{ xs[::-1] }} {{ xs[::2] }} {{ s[1:3] }} {{ s[-2:] }}",
              {{"xs", {1, 2, 3}}, {"s", "h\xc3\xa9llo"}}),
            "[2, 3] [1, 2] [3, 2, 1] [1, 3] \xc3\xa9l lo");
  EXPECT_EQ(R("{{ xs[5] }}|{{ d.missing }}|{{ none.x }}", {{"xs", {1}}, {"d", json::object()}}), "||");
}

TEST(Jinja, Tests) {
  const json ctx = {{"s", "x"}, {"n", 1}, {"f", 1.5}, {"l", {1}}, {"d", {{"a", 1}}}, {"z", nullptr}, {"b", true}};
  EXPECT_EQ(R("{{ s is string }}{{ n is number }}{{ f is number }}{{ l is iterable }}{{ d is mapping }}{{ z is none }}"
              "{{ u is defined }}{{ u is undefined }}{{ s is not none }}{{ l is sequence }}{{ d is iterable }}"
              "{{ n is integer }}{{ f is float }}{{ b is boolean }}{{ s is mapping }}",
              ctx),
            "TrueTrueTrueTrueTrueTrueFalseTrueTrueTrueTrueTrueTrueTrueFalse");
  EXPECT_EQ(R("{{ 3 is odd }}{{ 4 is even }}{{ 6 is divisibleby 3 }}{{ 'a' is equalto 'a' }}{{ 2 is eq(2) }}{{ 1 is lt 2 }}"),
            "TrueTrueTrueTrueTrueTrue");
}

TEST(Jinja, Filters) {
  EXPECT_EQ(R("[{{ '  a b \n' | trim }}]{{ 'abc' | length }}{{ [1,2] | count }}{{ 'hé' | length }}"), "[a b]32" "2");
  EXPECT_EQ(R("{{ 'aBc' | upper }}{{ 'aBc' | lower }}{{ 'aBc dEf' | capitalize }}{{ 'hello wORLD-x' | title }}"),
            "ABCabcAbc defHello World-X");
  EXPECT_EQ(R("{{ u | default('d') }}{{ '' | default('e', true) }}{{ 'v' | d('x') }}"), "dev");
  EXPECT_EQ(R("{{ [1,2,3] | first }}{{ [1,2,3] | last }}{{ [1,2,3] | join('-') }}{{ 'aaa' | replace('a', 'b', 2) }}"),
            "13" "1-2-3bba");
  EXPECT_EQ(R("{{ 5 | string ~ 1 }}{{ '42' | int + 1 }}{{ 'x' | int }}{{ 3.9 | int }}{{ '2.5' | float }}"), "5143032.5");
  EXPECT_EQ(R("{{ d | items | list }}{{ 'ab' | list }}{{ [1,2] | reverse | list }}{{ -3 | abs }}", {{"d", {{"a", 1}}}}),
            "[['a', 1]]['a', 'b'][2, 1]3");
  const json ctx = {{"ms", {{{"role", "user"}, {"c", 1}}, {{"role", "assistant"}, {"c", 2}}, {{"role", "user"}, {"c", 3}}}}};
  EXPECT_EQ(R("{{ ms | selectattr('role', 'equalto', 'user') | map(attribute='c') | list }}"
              "{{ ms | rejectattr('role', 'equalto', 'user') | list | length }}"
              "{{ [1, 0, 2] | select | list }}{{ [1, 2, 3] | reject('odd') | list }}{{ ['a', 'b'] | map('upper') | join }}",
              ctx),
            "[1, 3]1[1, 2][2]AB");
}

TEST(Jinja, ToJson) {
  const json ctx = {{"d", json::parse(R"({"b": [1, 2.5, "é\"\n"], "a": {"x": null, "t": true}, "e": [], "f": {}})")}};
  // nlohmann::json keeps keys sorted: a, b, e, f
  EXPECT_EQ(R("{{ d | tojson }}", ctx), R"({"a": {"t": true, "x": null}, "b": [1, 2.5, "é\"\n"], "e": [], "f": {}})");
  EXPECT_EQ(R("{{ d.b | tojson(indent=2) }}", ctx), "[\n  1,\n  2.5,\n  \"é\\\"\\n\"\n]");
  EXPECT_EQ(R("{{ 'é' | tojson(ensure_ascii=true) }}{{ [1,2] | tojson(separators=[',', ':']) }}"), "\"\\u00e9\"[1,2]");
  EXPECT_EQ(R("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}"), "{\"a\": 2, \"b\": 1}");
}

TEST(Jinja, Methods) {
  EXPECT_EQ(R("[{{ '  x  '.strip() }}][{{ 'xxaxx'.strip('x') }}][{{ '  x'.lstrip() }}][{{ 'x  '.rstrip() }}]"), "[x][a][x][x]");
  EXPECT_EQ(R("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith('bc') }}{{ 'abc'.startswith(('x', 'a')) }}"), "TrueTrueTrue");
  EXPECT_EQ(R("{{ 'a b  c'.split() }}{{ 'a,b,,c'.split(',') }}{{ 'a,b,c'.split(',', 1) }}"),
            "['a', 'b', 'c']['a', 'b', '', 'c']['a', 'b,c']");
  EXPECT_EQ(R("{{ 'ab'.upper() }}{{ 'AB'.lower() }}{{ 'a-a'.replace('a', 'b') }}{{ 'ab cd'.title() }}"), "ABabb-bAb Cd");
  EXPECT_EQ(R("{{ d.get('a') }}{{ d.get('z') }}{{ d.get('z', 5) }}{{ d.keys() | list }}{{ d.values() | list }}",
              {{"d", {{"a", 1}}}}),
            "1None5['a'][1]");
}

TEST(Jinja, GlobalsRaiseAndStrftime) {
  jinja::RenderOptions opt;
  opt.now = [] { return static_cast<std::time_t>(1721952000); };  // 2024-07-26 00:00 UTC
  setenv("TZ", "UTC", 1);
  tzset();
  EXPECT_EQ(jinja::Template("{{ strftime_now('%d %b %Y') }}").render(json::object(), opt), "26 Jul 2024");
  EXPECT_EQ(R("{{ range(3) | list }}{{ range(1, 7, 2) | list }}"), "[0, 1, 2][1, 3, 5]");
  const std::string e = error_of("line one\n{{ raise_exception('Roles must alternate') }}");
  EXPECT_EQ(e, "t:2:4: the chat template raised an error: Roles must alternate");
}

TEST(Jinja, UndefinedSemantics) {
  EXPECT_EQ(R("[{{ u }}][{{ u | trim }}][{{ u | length }}][{{ u ~ 'x' }}]"), "[][][0][x]");
  EXPECT_EQ(error_of("{{ u.x }}"), "t:1:4: 'u' is undefined");
  EXPECT_EQ(error_of("{{ d.a.b }}", {{"d", json::object()}}), "t:1:4: dict object has no attribute 'a'");
  EXPECT_EQ(error_of("\n  {{ u + 1 }}"), "t:2:6: 'u' is undefined");
  EXPECT_EQ(error_of("{{ u() }}"), "t:1:4: 'u' is undefined");
}

TEST(Jinja, SyntaxErrorsNameLineAndColumn) {
  EXPECT_EQ(error_of("ok\n{% if x %}\nno end"), "t:3:7: missing {% endif %} (the template ended inside a block)");
  EXPECT_EQ(error_of("{{ x "), "t:1:1: unclosed tag (no }})");
  EXPECT_EQ(error_of("a\n  {{ 'abc }}"), "t:2:6: unclosed string literal");
  EXPECT_EQ(error_of("{# never closed"), "t:1:1: unclosed comment (no #})");
  EXPECT_EQ(error_of("{{ 1 + }}"), "t:1:8: expected an expression (got }})");
  EXPECT_EQ(error_of("{% for x in %}{% endfor %}"), "t:1:13: expected an expression (got %})");
  EXPECT_EQ(error_of("{{ x ; }}"), "t:1:6: unexpected character ';'");
  EXPECT_EQ(error_of("{% endif %}"), "t:1:4: unknown tag 'endif'");
}

TEST(Jinja, UnsupportedConstructsRefusedByName) {
  EXPECT_EQ(error_of("{% include 'x' %}"), "t:1:4: unsupported Jinja tag 'include' (teddy's engine renders chat templates: docs/SFT.md)");
  EXPECT_EQ(error_of("a\n{% generation %}x{% endgeneration %}"),
            "t:2:4: unsupported Jinja tag 'generation' (teddy's engine renders chat templates: docs/SFT.md)");
  EXPECT_EQ(error_of("{% raw %}{% endraw %}"), "t:1:4: unsupported Jinja tag 'raw' (teddy's engine renders chat templates: docs/SFT.md)");
  EXPECT_EQ(error_of("{{ x | wordwrap }}"), "t:1:8: unsupported filter 'wordwrap'");
  EXPECT_EQ(error_of("{{ x is escaped }}"), "t:1:9: unsupported test 'escaped'");
  EXPECT_EQ(error_of("{% for x in y recursive %}{% endfor %}"), "t:1:15: unsupported: recursive for loops");
  EXPECT_EQ(error_of("{{ '%s' % x }}", {{"x", 1}}), "t:1:9: printf-style string formatting (%) is not supported");
}

// --- Jinja templates in ChatTemplate: SFT masks, generation prompts, the end-of-turn token.

std::string published(const std::string& file) {
  return test::read_file(TEDDY_SOURCE_DIR "/tests/data/jinja_templates/" + file);
}

// A BPE tokenizer trained on mixed text, with the markers of every template tested as specials.
Tokenizer bpe_with_markers(PretokenizerKind kind) {
  BpeTrainer t({.vocab_size = 600, .pattern = kind, .specials = {"<|endoftext|>"}});
  t.add_text(test::read_file(TEDDY_SOURCE_DIR "/tests/tokenizer/tokenizer_mixed.txt"));
  Tokenizer tok = t.train();
  for (const char* s : {"<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                        "<|eot_id|>", "<s>", "</s>", "[INST]", "[/INST]", "<bos>", "<start_of_turn>", "<end_of_turn>"})
    tok.add_special(s);
  return tok;
}

std::vector<std::vector<ChatTurn>> sft_conversations() {
  return {
      {{ChatRole::user, "What is 2 + 2?"}, {ChatRole::assistant, "4."}},
      {{ChatRole::system, "You are terse."}, {ChatRole::user, "Hi there"}, {ChatRole::assistant, "Hello."},
       {ChatRole::user, "Name a colour\nplease"}, {ChatRole::assistant, "Blue, «bleu» and 'azul'."}},
      {{ChatRole::user, "  spaces\t"}, {ChatRole::assistant, "  日本語 🙂  "}, {ChatRole::user, "last"}},
  };
}

// teddy's ChatML as Jinja (the text export publishes) gives the built-in ChatML's tokens
// and loss masks exactly, with and without train_on_inputs, on the byte tokenizer and
// on a trained BPE: the prefix-derived masks are the built-in's. (Content that starts
// with whitespace is left out on purpose: the Jinja path encodes the rendered text as
// Hugging Face does, so BPE may merge a header's "\n" with the content's leading
// spaces, where the built-in encodes them apart.)
TEST(JinjaChat, ChatmlJinjaMasksEqualBuiltin) {
  const ChatTemplate builtin = ChatTemplate::named("chatml");
  const ChatTemplate jinja = ChatTemplate::from_jinja("jinja:chatml", chat_template_jinja(builtin), "", "");
  Tokenizer bytes = Tokenizer::bytes();
  add_template_specials(bytes, builtin);
  const Tokenizer gpt2 = bpe_with_markers(PretokenizerKind::gpt2), llama3 = bpe_with_markers(PretokenizerKind::llama3);
  std::vector<std::vector<ChatTurn>> convs = sft_conversations();
  convs[2][0].content = "spaces\tinside";
  convs[2][1].content = "日本語 🙂  ";
  for (const Tokenizer* tok : std::vector<const Tokenizer*>{&bytes, &gpt2, &llama3}) {
    for (const auto& conv : convs)
      for (bool inputs : {false, true}) {
        const ChatTokens a = render_chat(*tok, builtin, conv, inputs), b = render_chat(*tok, jinja, conv, inputs);
        EXPECT_EQ(a.tokens, b.tokens);
        EXPECT_EQ(a.loss, b.loss);
        EXPECT_GT(b.loss_count(), 0u);
      }
    const std::vector<ChatTurn> ask = {{ChatRole::system, "S"}, {ChatRole::user, "Q?"}};
    EXPECT_EQ(render_generation_prompt(*tok, builtin, ask), render_generation_prompt(*tok, jinja, ask));
    EXPECT_EQ(end_of_turn_id(*tok, builtin), end_of_turn_id(*tok, jinja));
  }
  // The whole dataset too: a file's examples through SftDataset.
  std::vector<SftExample> ex;
  for (const auto& conv : convs) ex.push_back(SftExample{conv, SftFormat::messages, "", "f.jsonl", ex.size() + 1});
  const SftDataset da(ex, bytes, builtin, {256, SftTruncation::right, false});
  const SftDataset db(ex, bytes, jinja, {256, SftTruncation::right, false});
  ASSERT_EQ(da.size(), db.size());
  for (size_t i = 0; i < da.size(); ++i) {
    EXPECT_EQ(da[i].tokens, db[i].tokens);
    EXPECT_EQ(da[i].loss, db[i].loss);
  }
  EXPECT_EQ(da.stats().loss_tokens, db.stats().loss_tokens);
}

// On a published template the loss covers exactly each reply: its content, the
// end-of-turn marker and what the template writes after it in that turn (Qwen's "\n").
TEST(JinjaChat, PublishedTemplateMasksCoverTheReplies) {
  const Tokenizer tok = bpe_with_markers(PretokenizerKind::llama3);
  const ChatTemplate qwen = ChatTemplate::from_jinja("model", published("Qwen-Qwen2.5-7B-Instruct.jinja"), "", "<|im_end|>");
  const std::vector<ChatTurn> conv = sft_conversations()[1];
  const ChatTokens ct = render_chat(tok, qwen, conv, false);
  std::string learnt;
  for (size_t i = 0; i < ct.tokens.size(); ++i)
    if (ct.loss[i]) {
      const uint32_t id = static_cast<uint32_t>(ct.tokens[i]);
      learnt += tok.decode(std::span<const uint32_t>(&id, 1));
    }
  EXPECT_EQ(learnt, "Hello.<|im_end|>\nBlue, «bleu» and 'azul'.<|im_end|>\n");
  // The tokens are the encoding of the template's text.
  std::vector<uint32_t> ids(ct.tokens.begin(), ct.tokens.end());
  EXPECT_EQ(tok.decode(ids), render_jinja_text(qwen, conv, false));
  // And the generation prompt is the rendering with add_generation_prompt.
  const std::vector<ChatTurn> ask(conv.begin(), conv.begin() + 4);
  const std::vector<int32_t> p = render_generation_prompt(tok, qwen, ask);
  EXPECT_EQ(tok.decode(std::vector<uint32_t>(p.begin(), p.end())), render_jinja_text(qwen, ask, true));
  EXPECT_EQ(render_jinja_text(qwen, ask, true).substr(render_jinja_text(qwen, ask, true).size() - 22), "<|im_start|>assistant\n");
}

TEST(JinjaChat, EndOfTurnDerivedFromEachPublishedTemplate) {
  const Tokenizer tok = bpe_with_markers(PretokenizerKind::llama3);
  const std::vector<std::pair<std::string, std::string>> want = {
      {"meta-llama-Llama-3.1-8B-Instruct.jinja", "<|eot_id|>"}, {"meta-llama-Llama-3.2-3B-Instruct.jinja", "<|eot_id|>"},
      {"Qwen-Qwen2.5-7B-Instruct.jinja", "<|im_end|>"},         {"mistralai-Mistral-Nemo-Instruct-2407.jinja", "</s>"},
      {"google-gemma-2-2b-it.jinja", "<end_of_turn>"},          {"HuggingFaceTB-SmolLM2-135M-Instruct.jinja", "<|im_end|>"},
  };
  const std::map<std::string, std::pair<std::string, std::string>> tokens = {
      {"meta", {"<|begin_of_text|>", "<|eot_id|>"}}, {"mist", {"<s>", "</s>"}}, {"goog", {"<bos>", "</s>"}}};
  for (const auto& [file, eot] : want) {
    const auto bt = tokens.count(file.substr(0, 4)) ? tokens.at(file.substr(0, 4)) : std::pair<std::string, std::string>{"", ""};
    const ChatTemplate t = ChatTemplate::from_jinja("model", published(file), bt.first, bt.second);
    EXPECT_EQ(derive_jinja_end_of_turn(tok, t), eot) << file;
    EXPECT_EQ(end_of_turn_id(tok, t), static_cast<int32_t>(tok.special_id(eot))) << file;
    // Every published template has the prefix property on conversations without a system prompt.
    for (const auto& conv : {sft_conversations()[0]}) EXPECT_GT(render_chat(tok, t, conv, false).loss_count(), 2u) << file;
  }
}

// strftime_now reads the pinned clock: Llama 3.2's "Today Date" is the same every day
// (else an SFT run's tokens would change with the day it resumes on).
TEST(JinjaChat, TodaysDateIsPinned) {
  const ChatTemplate t = ChatTemplate::from_jinja("model", published("meta-llama-Llama-3.2-3B-Instruct.jinja"),
                                                  "<|begin_of_text|>", "<|eot_id|>");
  const std::vector<ChatTurn> conv = {{ChatRole::user, "Hi"}};
  EXPECT_EQ(render_jinja_text(t, conv, true),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
            "Today Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

// Mistral's template writes the system prompt into the last user turn only: a
// conversation with one has no prefix property, and SFT refuses it, naming the turn
// (and, through SftDataset, the file and line).
TEST(JinjaChat, TemplateWithoutPrefixPropertyIsRefused) {
  const Tokenizer tok = bpe_with_markers(PretokenizerKind::llama3);
  const ChatTemplate mistral = ChatTemplate::from_jinja("model", published("mistralai-Mistral-Nemo-Instruct-2407.jinja"), "<s>", "</s>");
  const std::vector<ChatTurn> conv = sft_conversations()[1];
  std::vector<SftExample> ex = {SftExample{conv, SftFormat::messages, "", "data.jsonl", 7}};
  try {
    SftDataset(ex, tok, mistral, {256, SftTruncation::right, false});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "data.jsonl:7: chat template \"model\": the conversation up to assistant turn 1 with add_generation_prompt is "
              "not a prefix of its rendering with the reply, so the reply's tokens cannot be told apart for the loss mask "
              "(docs/SFT.md, Jinja templates)");
  }
  // Gemma's template refuses a system prompt itself: the template's own message comes through.
  const ChatTemplate gemma = ChatTemplate::from_jinja("model", published("google-gemma-2-2b-it.jinja"), "<bos>", "<eos>");
  try {
    render_chat(tok, gemma, conv, false);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the chat template raised an error: System role not supported"), std::string::npos) << e.what();
  }
}

TEST(JinjaChat, NamedAndSavedJinjaTemplates) {
  const std::string dir = TEDDY_BINARY_DIR "/test_jinja_chat." + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  test::write_file(dir + "/t.jinja", "{% for m in messages %}<{{ m.role }}>{{ m.content }}</s>{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}");
  const ChatTemplate t = ChatTemplate::named("jinja:" + dir + "/t.jinja");
  EXPECT_TRUE(t.is_jinja());
  EXPECT_EQ(t.name, "jinja:" + dir + "/t.jinja");
  t.save(dir + "/chat_template.json");
  const ChatTemplate back = ChatTemplate::load(dir + "/chat_template.json");
  EXPECT_EQ(back.jinja, t.jinja);  // the text travels with the run
  const std::vector<ChatTurn> conv = {{ChatRole::user, "q"}};
  EXPECT_EQ(back.render_text(conv, true), "<user>q</s><assistant>");
  EXPECT_TRUE(ChatTemplate::named("model").wants_model_template());
  test::write_file(dir + "/bad.jinja", "ok\n{% for m in messages %}{{ m.content | frobnicate }}{% endfor %}");
  try {
    ChatTemplate::named("jinja:" + dir + "/bad.jinja");
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "chat template \"jinja:" + dir + "/bad.jinja\":2:39: unsupported filter 'frobnicate'");
  }
  try {
    ChatTemplate::named("jinja:" + dir + "/missing.jinja");
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot read the Jinja chat template"), std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace teddy
