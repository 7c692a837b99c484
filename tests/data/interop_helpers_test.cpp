// Hidden test cases ("[.]": CTest does not list them) that scripts run by name:
// tests/data/safetensors_interop.py checks our files against Python's safetensors and
// transformers through the "interop: ..." cases, with paths in the environment:
//   DS_INTEROP_DIR                   where "write" puts and "read" finds the fixtures
//   DS_INTEROP_IN, DS_INTEROP_OUT    the file "copy" reads and the file it writes
// The values here and in the script must agree. "tools: write the default corpus" writes
// DS_CORPUS_OUT (for bench/default_corpus_learning.py, or to look at).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "model/data_corpus.hpp"
#include "zero/safetensors.hpp"

using namespace ds;
using namespace ds::zero;

namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') FAIL("set " << name << " (run through tests/data/safetensors_interop.py)");
  return value;
}

template <typename T>
std::span<const std::byte> as_bytes(const std::vector<T>& v) {
  return std::as_bytes(std::span<const T>(v));
}

}  // namespace

TEST_CASE("interop: write fixtures", "[.]") {
  const std::string dir = env("DS_INTEROP_DIR");
  // f32 (3,4): 0.5·i - 2      f16 (5,): i - 2.5      bf16 (2,3): 0.25·(i+1)
  std::vector<float> f32(12);
  for (size_t i = 0; i < f32.size(); ++i) f32[i] = 0.5f * static_cast<float>(i) - 2.0f;
  std::vector<f16> half(5);
  for (size_t i = 0; i < half.size(); ++i) half[i] = to_f16(static_cast<float>(i) - 2.5f);
  std::vector<bf16> brain(6);
  for (size_t i = 0; i < brain.size(); ++i) brain[i] = to_bf16(0.25f * static_cast<float>(i + 1));

  // Without BF16 (numpy has no bfloat16), so numpy can load it and Python can rewrite it.
  SafetensorsWriter numpy_file;
  numpy_file.add("layer.weight", DType::f32, {3, 4}, as_bytes(f32));
  numpy_file.add("layer.bias", DType::f16, {5}, as_bytes(half));
  numpy_file.write(dir + "/ours_np.safetensors");

  SafetensorsWriter mixed;
  mixed.set_metadata("producer", "dslaunch-test");
  mixed.add("layer.weight", DType::f32, {3, 4}, as_bytes(f32));
  mixed.add("layer.bias", DType::f16, {5}, as_bytes(half));
  mixed.add("norm.weight", DType::bf16, {2, 3}, [&](SafetensorsSink& sink) {  // streamed, one element at a time
    for (const bf16& x : brain) sink.write(&x, sizeof x);
  });
  mixed.write(dir + "/ours_mixed.safetensors");
}

TEST_CASE("interop: read fixtures", "[.]") {
  // theirs.safetensors, from Python: weight f32 (2,3) 1.5·i; half f16 (3,) [-1, 0.5, 2];
  // index i64 (3,) [7, 8, 9]; metadata {"format": "np", "source": "python"}.
  const SafetensorsReader reader(env("DS_INTEROP_DIR") + "/theirs.safetensors");
  CHECK(reader.metadata() == std::map<std::string, std::string>{{"format", "np"}, {"source", "python"}});
  CHECK(reader.info("weight").shape == std::vector<int64_t>{2, 3});
  std::vector<float> weight(6);
  reader.read("weight", TensorRef{weight.data(), DType::f32, 6});
  for (size_t i = 0; i < 6; ++i) CHECK(weight[i] == 1.5f * static_cast<float>(i));
  std::vector<float> half(3);
  reader.read("half", TensorRef{half.data(), DType::f32, 3});
  CHECK(half == std::vector<float>{-1.0f, 0.5f, 2.0f});
  REQUIRE(reader.info("index").dtype == "I64");
  std::vector<int64_t> index(3);
  std::memcpy(index.data(), reader.bytes("index").data(), 24);
  CHECK(index == std::vector<int64_t>{7, 8, 9});
}

TEST_CASE("interop: copy", "[.]") {
  // Reads any F32/BF16/F16 safetensors file and writes it again through our writer, streaming each
  // tensor in 64 KiB pieces from the mapped input.
  const SafetensorsReader reader(env("DS_INTEROP_IN"));
  SafetensorsWriter writer;
  writer.clear_metadata();
  for (const auto& [key, value] : reader.metadata()) writer.set_metadata(key, value);
  for (const SafetensorsTensorInfo& t : reader.tensors()) {
    const std::span<const std::byte> bytes = reader.bytes(t.name);
    writer.add(t.name, t.ds_dtype(), t.shape, [bytes](SafetensorsSink& sink) {
      for (size_t at = 0; at < bytes.size(); at += 65536) sink.write(bytes.data() + at, std::min<size_t>(65536, bytes.size() - at));
    });
  }
  writer.write(env("DS_INTEROP_OUT"));
}

TEST_CASE("tools: write the default corpus", "[.]") {
  // DS_CORPUS_OUT=corpus.txt (or corpus.bin) build/tests/test_data "tools: write the default corpus"
  model::write_default_corpus(env("DS_CORPUS_OUT"));
}
