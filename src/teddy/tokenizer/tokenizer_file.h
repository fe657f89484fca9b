#pragma once
// Tokenizer files: parse and format the three formats teddy reads. Parsers throw
// FormatError "<path>:<line>: ..." (tiktoken rank files, JSON syntax errors) or
// "<path>: <field>: ..." (JSON fields), and never print.
//
//   teddy     JSON {"format": "teddy-bpe", "version": 1, "pattern": "gpt2"|"llama3",
//             "tokens": [base64 bytes by id, "" for none], "ranks": [by id, -1 for
//             none] (absent: rank = id), "specials": {"<|endoftext|>": 256},
//             "merges": [[left id, right id], ...] and "whole_piece_first" (optional:
//             the merge rules; absent means tiktoken's byte rule)}
//   hf        Hugging Face tokenizer.json with a byte-level BPE model
//   tiktoken  one "<base64 token bytes> <rank>" pair a line; id = rank
#include <string>
#include <string_view>

#include "teddy/tokenizer/tokenizer.h"

namespace teddy {

enum class TokenizerFileKind { teddy, hf_json, tiktoken };

// JSON with "format": "teddy-bpe" -> teddy; other JSON -> hf_json; else tiktoken.
TokenizerFileKind detect_tokenizer_file(std::string_view content);
// Reads a whole file; throws Error "<path>: cannot open: <reason>".
std::string read_text_file(const std::string& path);

BpeVocab parse_teddy_tokenizer(std::string_view content, const std::string& path);
BpeVocab parse_hf_tokenizer(std::string_view content, const std::string& path);
// Pattern gpt2, no specials: the caller decides (see tiktoken_default_specials).
BpeVocab parse_tiktoken_ranks(std::string_view content, const std::string& path);
// The pattern and specials Tokenizer::load assumes for a tiktoken file of n ranks.
PretokenizerKind tiktoken_default_pattern(size_t n_ranks);
std::vector<std::pair<std::string, uint32_t>> tiktoken_default_specials(size_t n_ranks);

// The byte-level "unicode" alphabet of GPT-2 / Hugging Face: byte -> code point.
uint32_t byte_to_unicode(unsigned char b);
// `bytes` spelled in that alphabet (UTF-8): how tokenizer.json and GGUF write a token.
std::string to_byte_alphabet(std::string_view bytes);

class BpeEncoder;
std::string format_teddy_tokenizer(const BpeVocab& vocab);
std::string format_tiktoken_ranks(const BpeVocab& vocab);
// Needs the encoder to recover which pair each token is merged from.
std::string format_hf_tokenizer(const BpeVocab& vocab, const BpeEncoder& encoder);

}  // namespace teddy
