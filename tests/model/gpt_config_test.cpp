// Model presets, the --model spec parser, and its error messages.
#include <catch2/catch.hpp>

#include "model/gpt_config.hpp"
#include "base/error.hpp"

using namespace ds;
using namespace ds::model;

TEST_CASE("presets give GPT-2's shapes with the vocabulary padded to a multiple of 64", "[config]") {
  const GptConfig g = gpt_preset("gpt2");
  CHECK(g.name == "gpt2");
  CHECK(g.n_layer == 12);
  CHECK(g.n_head == 12);
  CHECK(g.n_embd == 768);
  CHECK(g.seq_len == 1024);
  CHECK(g.vocab_size == 50257);
  CHECK(g.padded_vocab_size == 50304);
  CHECK(gpt_preset("gpt2-medium").n_embd == 1024);
  CHECK(gpt_preset("gpt2-large").n_layer == 36);
  CHECK(gpt_preset("gpt2-xl").n_head == 25);
  const GptConfig tiny = gpt_preset("tiny");
  CHECK(tiny.vocab_size == 256);
  CHECK(tiny.padded_vocab_size == 256);
  for (const std::string& name : gpt_preset_names()) CHECK_NOTHROW(validate(gpt_preset(name)));
}

TEST_CASE("parameter counts of the presets match the published GPT-2 sizes", "[config]") {
  // anchor-measurements.md §3 (vocab 50304, biases on, tied head counted once)
  CHECK(gpt_num_params(gpt_preset("gpt2")) == 124'475'904);
  CHECK(gpt_num_params(gpt_preset("gpt2-medium")) == 354'871'296);
  CHECK(gpt_num_params(gpt_preset("gpt2-large")) == 774'090'240);
  CHECK(gpt_num_params(gpt_preset("gpt2-xl")) == 1'557'686'400);
  CHECK(gpt_num_params(gpt_preset("gpt2-2.7b")) == 2'649'052'160);
  CHECK(gpt_num_params(gpt_preset("gpt2-6.7b")) == 6'654'402'560);
  CHECK(gpt_num_params(gpt_preset("gpt2-13b")) == 12'848'384'000);
  CHECK(gpt_num_params(gpt_preset("tiny")) == 445'952);
  // Hugging Face's gpt2 (vocab 50257, no padding): 124,439,808
  CHECK(gpt_num_params(parse_model_spec("gpt2,padded_vocab_size=50257")) == 124'439'808);
}

TEST_CASE("a model spec is a preset, a preset with overrides, or a full shape", "[config]") {
  CHECK(parse_model_spec("gpt2-xl").n_embd == 1600);
  const GptConfig short_xl = parse_model_spec("gpt2-xl, seq_len=256");
  CHECK(short_xl.seq_len == 256);
  CHECK(short_xl.n_layer == 48);
  CHECK(short_xl.name == "gpt2-xl (modified)");
  const GptConfig custom = parse_model_spec("n_layer=4,n_head=4,n_embd=128,vocab_size=300");
  CHECK(custom.name == "custom");
  CHECK(custom.n_layer == 4);
  CHECK(custom.seq_len == 1024);
  CHECK(custom.vocab_size == 300);
  CHECK(custom.padded_vocab_size == 320);
  CHECK(parse_model_spec("n_layer=1,n_head=1,n_embd=8").vocab_size == 50257);
  CHECK(parse_model_spec("tiny,vocab_size=100,padded_vocab_size=100").padded_vocab_size == 100);
  CHECK(describe(gpt_preset("gpt2")) ==
        "gpt2 (n_layer=12,n_head=12,n_embd=768,seq_len=1024,vocab_size=50257,padded_vocab_size=50304)");
}

TEST_CASE("an unknown model name is a usage error listing the valid names", "[config]") {
  CHECK_THROWS_AS(parse_model_spec("gpt3"), UsageError);
  CHECK_THROWS_WITH(parse_model_spec("gpt3"),
                    "unknown model 'gpt3': use one of tiny, gpt2, gpt2-medium, gpt2-large, gpt2-xl, gpt2-2.7b, "
                    "gpt2-6.7b, gpt2-13b, or give the shape as n_layer=..,n_head=..,n_embd=..[,seq_len=..,vocab_size=..]");
}

TEST_CASE("bad model specs are usage errors naming the bad item", "[config]") {
  CHECK_THROWS_WITH(parse_model_spec("gpt2,n_layers=3"),
                    "model spec 'gpt2,n_layers=3': unknown key 'n_layers' (valid: n_layer, n_head, n_embd, seq_len, "
                    "vocab_size, padded_vocab_size)");
  CHECK_THROWS_WITH(parse_model_spec("gpt2,seq_len=-5"), "model spec 'gpt2,seq_len=-5': seq_len=-5 is not a positive integer");
  CHECK_THROWS_WITH(parse_model_spec("gpt2,seq_len=12x"), "model spec 'gpt2,seq_len=12x': seq_len=12x is not a positive integer");
  CHECK_THROWS_WITH(parse_model_spec("n_layer=2,n_head=3"),
                    "model spec 'n_layer=2,n_head=3' needs n_layer, n_head and n_embd (or a preset: tiny, gpt2, "
                    "gpt2-medium, gpt2-large, gpt2-xl, gpt2-2.7b, gpt2-6.7b, gpt2-13b)");
  CHECK_THROWS_WITH(parse_model_spec("tiny,gpt2"),
                    "model spec 'tiny,gpt2': 'gpt2' must be key=value (only the first item may name a preset)");
  CHECK_THROWS_AS(parse_model_spec(""), UsageError);
  CHECK_THROWS_AS(parse_model_spec("gpt2,"), UsageError);
  CHECK_THROWS_WITH(parse_model_spec("n_layer=2,n_head=3,n_embd=128"),
                    "model custom (n_layer=2,n_head=3,n_embd=128,seq_len=1024,vocab_size=50257,padded_vocab_size=50304): "
                    "n_embd 128 is not a multiple of n_head 3");
  CHECK_THROWS_WITH(parse_model_spec("tiny,padded_vocab_size=100"),
                    "model tiny (modified) (n_layer=2,n_head=4,n_embd=128,seq_len=128,vocab_size=256,padded_vocab_size=100): "
                    "padded_vocab_size 100 is smaller than vocab_size 256");
}
