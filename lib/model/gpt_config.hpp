// The shape of a GPT-2-family model, its named presets and the --model spec parser.
//
// Presets (parameter counts with the padded vocabulary, tied wte counted once; see docs in
// gpt_config.cpp's table and tests/model/gpt_layout_test.cpp):
//   tiny         2 layers,  4 heads,  128 wide, seq 128, vocab 256 (bytes)      445,952 (tests, CPU demo)
//   gpt2         12 layers, 12 heads, 768 wide,  seq 1024, vocab 50257 → 50304   124,475,904
//   gpt2-medium  24 layers, 16 heads, 1024 wide                                  354,871,296
//   gpt2-large   36 layers, 20 heads, 1280 wide                                  774,090,240
//   gpt2-xl      48 layers, 25 heads, 1600 wide                                1,557,686,400
//   gpt2-2.7b    32 layers, 32 heads, 2560 wide  (GPT-3 paper's 2.7B shape)    2,649,052,160
//   gpt2-6.7b    32 layers, 32 heads, 4096 wide  (GPT-3 paper's 6.7B shape)    6,654,402,560
//   gpt2-13b     40 layers, 40 heads, 5120 wide  (GPT-3 13B; its table's 5140 is not a multiple of 40)
//                                                                            12,848,384,000
// The offload presets keep GPT-2's vocabulary and seq_len 1024 (GPT-3 trained at 2048; pass
// seq_len=2048 to get that).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ds::model {

struct GptConfig {
  std::string name = "custom";  // the preset it came from, for logs
  int n_layer = 0;              // L
  int n_head = 0;               // NH; n_embd must be a multiple of it
  int n_embd = 0;               // C
  int seq_len = 0;              // the longest T (rows of wpe)
  int vocab_size = 0;           // V: token ids in [0, V); the softmax runs over these
  // Vp: rows of wte and columns of the logits. vocab_size rounded up to a multiple of 64 unless set
  // (GPT-2's 50257 → 50304, as nanoGPT and llm.c do: the GPU matmuls run much faster). The extra
  // rows never receive gradient from the loss and are dropped by the HF export.
  int padded_vocab_size = 0;
};

inline constexpr int k_vocab_padding = 64;

// The named preset; throws UsageError listing the valid names.
GptConfig gpt_preset(std::string_view name);
std::vector<std::string> gpt_preset_names();

// "gpt2" | "gpt2-xl,seq_len=256" | "n_layer=4,n_head=4,n_embd=128,vocab_size=256,seq_len=64".
// Comma-separated; the first item may be a preset name, every other item is key=value with key one
// of n_layer, n_head, n_embd, seq_len, vocab_size, padded_vocab_size. Without a preset n_layer,
// n_head and n_embd are required; seq_len defaults to 1024 and vocab_size to 50257 (GPT-2's BPE).
// padded_vocab_size follows vocab_size unless given. Throws UsageError naming the bad item.
GptConfig parse_model_spec(std::string_view spec);

// Throws UsageError unless every field is positive, n_embd % n_head == 0 and
// padded_vocab_size >= vocab_size.
void validate(const GptConfig& config);

// "gpt2 (n_layer=12,n_head=12,n_embd=768,seq_len=1024,vocab_size=50257,padded_vocab_size=50304)"
std::string describe(const GptConfig& config);

// Trainable parameters, the tied wte once: Vp·C + seq_len·C + L·(12C² + 13C) + 2C.
int64_t gpt_num_params(const GptConfig& config);

}  // namespace ds::model
