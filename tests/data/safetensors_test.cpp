#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "base/atomic_file.hpp"
#include "base/error.hpp"
#include "support/process.hpp"
#include "zero/safetensors.hpp"

using namespace ds;
using namespace ds::zero;

namespace {

// A safetensors file image: 8-byte little-endian header length, header, data.
std::string st_image(const std::string& header, const std::string& data) {
  std::string image(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(image.data(), &n, 8);
  return image + header + data;
}

template <typename T>
std::span<const std::byte> as_bytes(const std::vector<T>& v) {
  return std::as_bytes(std::span<const T>(v));
}

std::string reader_error(const std::string& path) {
  try {
    SafetensorsReader reader(path);
  } catch (const IoError& e) {
    return e.what();
  }
  return "no error";
}

template <typename T>
std::vector<T> values_of(const SafetensorsReader& reader, const std::string& name) {
  const auto bytes = reader.bytes(name);
  std::vector<T> out(bytes.size() / sizeof(T));
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

}  // namespace

TEST_CASE("a safetensors file round-trips tensors, shapes, dtypes and metadata") {
  test::TempDir dir;
  const std::vector<float> wte{1.0f, -2.0f, 3.5f, 0.25f, 5.0f, -6.0f};
  std::vector<bf16> ln;
  for (float x : {1.0f, 0.5f, -0.125f, 2.0f}) ln.push_back(to_bf16(x));
  std::vector<f16> bias;
  for (float x : {0.5f, -1.0f, 65504.0f}) bias.push_back(to_f16(x));
  const std::vector<float> scalar{42.0f};

  SafetensorsWriter writer;
  writer.set_metadata("producer", "dslaunch");
  writer.add("transformer.wte.weight", DType::f32, {2, 3}, as_bytes(wte));
  writer.add("transformer.ln_f.weight", DType::bf16, {4}, as_bytes(ln));
  writer.add("transformer.h.0.attn.c_attn.bias", DType::f16, {3, 1}, as_bytes(bias));
  writer.add("step", DType::f32, {}, as_bytes(scalar));
  writer.add("empty", DType::f32, {0, 5}, std::span<const std::byte>());
  writer.write(dir.file("model.safetensors"));
  CHECK(std::filesystem::file_size(dir.file("model.safetensors")) == writer.file_size());

  const SafetensorsReader reader(dir.file("model.safetensors"));
  CHECK(reader.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"producer", "dslaunch"}});
  REQUIRE(reader.tensors().size() == 5);
  const SafetensorsTensorInfo& w = reader.info("transformer.wte.weight");
  CHECK(w.dtype == "F32");
  CHECK(w.ds_dtype() == DType::f32);
  CHECK(w.shape == std::vector<int64_t>{2, 3});
  CHECK(w.numel == 6);
  CHECK(values_of<float>(reader, "transformer.wte.weight") == wte);
  CHECK(reader.info("transformer.ln_f.weight").dtype == "BF16");
  CHECK(values_of<uint16_t>(reader, "transformer.ln_f.weight")[2] == to_bf16(-0.125f).bits);
  CHECK(reader.info("transformer.h.0.attn.c_attn.bias").shape == std::vector<int64_t>{3, 1});
  CHECK(values_of<uint16_t>(reader, "transformer.h.0.attn.c_attn.bias")[2] == to_f16(65504.0f).bits);
  CHECK(reader.info("step").shape.empty());
  CHECK(reader.info("step").numel == 1);
  CHECK(values_of<float>(reader, "step") == scalar);
  CHECK(reader.info("empty").numel == 0);
  CHECK(reader.bytes("empty").empty());
  CHECK(reader.contains("step"));
  CHECK_FALSE(reader.contains("missing"));
  CHECK_THROWS_WITH(reader.info("missing"),
                    "safetensors file '" + dir.file("model.safetensors") + "' has no tensor 'missing' (it holds 5 tensors)");
}

TEST_CASE("the safetensors header is compact JSON padded with spaces to a multiple of 8 bytes") {
  test::TempDir dir;
  const std::vector<float> data{0, 1, 2, 3, 4, 5};
  SafetensorsWriter writer;
  writer.clear_metadata();
  writer.add("attn.0", DType::f32, {1, 2, 3}, as_bytes(data));
  // 64 bytes: no padding needed
  CHECK(writer.header() == R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})");
  writer.write(dir.file("a.safetensors"));
  const std::string image = read_file(dir.file("a.safetensors"));
  REQUIRE(image.size() == 8 + 64 + 24);
  CHECK(image.substr(0, 8) == std::string("\x40\0\0\0\0\0\0\0", 8));
  CHECK(image.substr(72, 4) == std::string("\0\0\0\0", 4));  // 0.0f
  CHECK(image.substr(76, 4) == std::string("\0\0\x80\x3f", 4));  // 1.0f

  SafetensorsWriter shorter;
  shorter.clear_metadata();
  shorter.add("attn0", DType::f32, {1, 1, 2, 3}, as_bytes(data));
  CHECK(shorter.header() == R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})" + std::string(7, ' '));
  CHECK(shorter.header().size() == 72);

  SafetensorsWriter empty;
  CHECK(empty.header() == R"({"__metadata__":{"format":"pt"}})");  // 32 bytes: no padding
  empty.clear_metadata();
  CHECK(empty.header() == "{}      ");
  empty.write(dir.file("empty.safetensors"));
  CHECK(SafetensorsReader(dir.file("empty.safetensors")).tensors().empty());
}

TEST_CASE("tensors are laid out by descending dtype size, then name, each aligned to its element size") {
  test::TempDir dir;
  const std::vector<f16> h(3);
  const std::vector<bf16> b(5);
  const std::vector<float> f(1);
  SafetensorsWriter writer;
  writer.add("a", DType::f16, {3}, as_bytes(h));
  writer.add("m", DType::bf16, {5}, as_bytes(b));
  writer.add("z", DType::f32, {1}, as_bytes(f));
  writer.add("y", DType::f32, {1}, as_bytes(f));
  const std::string json = R"({"__metadata__":{"format":"pt"},)"
                           R"("y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                           R"("z":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
                           R"("m":{"dtype":"BF16","shape":[5],"data_offsets":[8,18]},)"
                           R"("a":{"dtype":"F16","shape":[3],"data_offsets":[18,24]}})";
  CHECK(writer.header() == json + std::string((8 - json.size() % 8) % 8, ' '));
  writer.write(dir.file("order.safetensors"));
  const SafetensorsReader reader(dir.file("order.safetensors"));
  std::vector<std::string> names;
  for (const auto& t : reader.tensors()) {
    names.push_back(t.name);
    CHECK((8 + reader.header_bytes() + t.begin) % t.element_size == 0);
  }
  CHECK(names == std::vector<std::string>{"y", "z", "m", "a"});
  CHECK(reader.header_bytes() % 8 == 0);
}

TEST_CASE("a file written by Python's safetensors reads back exactly") {
  // Bytes of safetensors.numpy.save({"b": float16 [1, -2], "a": float32 [[1.5]], "c": int64 [0, 1, 2]},
  // metadata={"format": "np", "note": "x"}) with safetensors 0.8.
  test::TempDir dir;
  const std::string header =
      R"({"__metadata__":{"note":"x","format":"np"},"c":{"dtype":"I64","shape":[3],"data_offsets":[0,24]},)"
      R"("a":{"dtype":"F32","shape":[1,1],"data_offsets":[24,28]},"b":{"dtype":"F16","shape":[2],"data_offsets":[28,32]}})"
      "       ";
  REQUIRE(header.size() == 216);
  std::string data(24, '\0');
  data[8] = 1;
  data[16] = 2;
  data += std::string("\x00\x00\xc0\x3f", 4) + std::string("\x00\x3c\x00\xc0", 4);
  dir.write("python.safetensors", st_image(header, data));

  const SafetensorsReader reader(dir.file("python.safetensors"));
  CHECK(reader.metadata() == std::map<std::string, std::string>{{"format", "np"}, {"note", "x"}});
  CHECK(values_of<int64_t>(reader, "c") == std::vector<int64_t>{0, 1, 2});
  CHECK(values_of<float>(reader, "a") == std::vector<float>{1.5f});
  CHECK(reader.info("a").shape == std::vector<int64_t>{1, 1});
  std::vector<float> b(2);
  reader.read("b", TensorRef{b.data(), DType::f32, 2});
  CHECK(b == std::vector<float>{1.0f, -2.0f});
  CHECK_THROWS_WITH(reader.read("c", TensorRef{b.data(), DType::f32, 2}),
                    "tensor 'c' is I64; only F32, BF16 and F16 tensors can be read as parameters");
}

TEST_CASE("a file with tensors listed out of offset order and an unpadded header still reads") {
  test::TempDir dir;
  const std::string header =
      R"({"second":{"dtype":"F32","shape":[1],"data_offsets":[2,6]},"first":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}})";
  REQUIRE(header.size() % 8 != 0);
  const float x = -3.0f;
  std::string data = std::string("\x80\x3f", 2) + std::string(reinterpret_cast<const char*>(&x), 4);
  dir.write("other.safetensors", st_image(header, data));
  const SafetensorsReader reader(dir.file("other.safetensors"));
  CHECK(reader.tensors()[0].name == "first");
  CHECK(reader.metadata().empty());
  std::vector<float> out(1);
  reader.read("second", TensorRef{out.data(), DType::f32, 1});  // unaligned in the mapping
  CHECK(out[0] == -3.0f);
  reader.read("first", TensorRef{out.data(), DType::f32, 1});
  CHECK(out[0] == 1.0f);
}

TEST_CASE("reading a tensor converts between F32, BF16 and F16 and checks the element count") {
  test::TempDir dir;
  const std::vector<float> values{1.0f, 1.0f + 1.0f / 256, -0.33333334f, 3.0e-5f};
  SafetensorsWriter writer;
  writer.add("w", DType::f32, {2, 2}, as_bytes(values));
  writer.write(dir.file("w.safetensors"));
  const SafetensorsReader reader(dir.file("w.safetensors"));
  std::vector<bf16> as_bf16(4);
  reader.read("w", TensorRef{as_bf16.data(), DType::bf16, 4});
  std::vector<f16> as_f16(4);
  reader.read("w", TensorRef{as_f16.data(), DType::f16, 4});
  for (size_t i = 0; i < 4; ++i) {
    CHECK(as_bf16[i].bits == to_bf16(values[i]).bits);
    CHECK(as_f16[i].bits == to_f16(values[i]).bits);
  }
  std::vector<float> wrong(3);
  CHECK_THROWS_WITH(reader.read("w", TensorRef{wrong.data(), DType::f32, 3}),
                    "safetensors file '" + dir.file("w.safetensors") + "': tensor 'w' has 4 elements (shape [2,2]), the destination 3");
}

TEST_CASE("a streamed tensor is written piece by piece without a copy of the whole") {
  test::TempDir dir;
  constexpr int64_t k_rows = 1000, k_cols = 700;
  SafetensorsWriter writer;
  int calls = 0;
  writer.add("big", DType::f32, {k_rows, k_cols}, [&](SafetensorsSink& sink) {
    ++calls;
    std::vector<float> row(k_cols);
    for (int64_t r = 0; r < k_rows; ++r) {
      for (int64_t c = 0; c < k_cols; ++c) row[static_cast<size_t>(c)] = static_cast<float>(r * k_cols + c);
      sink.write(row.data(), row.size() * sizeof(float));
    }
  });
  CHECK(calls == 0);  // nothing runs before write()
  writer.write(dir.file("big.safetensors"));
  CHECK(calls == 1);
  CHECK(std::filesystem::file_size(dir.file("big.safetensors")) == writer.file_size());
  const SafetensorsReader reader(dir.file("big.safetensors"));
  const std::vector<float> back = values_of<float>(reader, "big");
  REQUIRE(back.size() == static_cast<size_t>(k_rows * k_cols));
  CHECK(back[0] == 0.0f);
  CHECK(back[123456] == 123456.0f);
  CHECK(back.back() == static_cast<float>(k_rows * k_cols - 1));
}

TEST_CASE("a failed safetensors export leaves the previous file in place and no temporary file") {
  test::TempDir dir;
  dir.write("model.safetensors", "previous export");
  SafetensorsWriter writer;
  writer.add("w", DType::f32, {4}, [](SafetensorsSink& sink) {
    const float x = 1.0f;
    sink.write(&x, 4);
    throw IoError("cannot read shard 3 of the checkpoint");
  });
  CHECK_THROWS_WITH(writer.write(dir.file("model.safetensors")), "cannot read shard 3 of the checkpoint");
  CHECK(read_file(dir.file("model.safetensors")) == "previous export");
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()) == 1);
}

TEST_CASE("every malformed safetensors file is an IoError naming the file and the problem") {
  test::TempDir dir;
  const std::string f = dir.file("bad.safetensors");
  const std::string name = "safetensors file '" + f + "'";
  const std::string t = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  auto check = [&](const std::string& image, const std::string& expected) {
    dir.write("bad.safetensors", image);
    CHECK(reader_error(f) == expected);
  };

  check(st_image(t, std::string(8, '\0')), "no error");  // the control: a valid file
  check(std::string("\x10\0\0", 3), name + " is 3 bytes, too short for the 8-byte header length");
  check(std::string("\x00\xc2\xeb\x0b\0\0\0\0", 8) + "{}",
        name + " declares a header of 200000000 bytes, more than the 100000000 the format allows: it is not a safetensors file");
  check(st_image(t, std::string(8, '\0')).substr(0, 40),
        name + " declares a header of 54 bytes but holds only 32 bytes after the length: the file is truncated");
  check(st_image("[1, 2]  ", ""), name + " has a header that does not start with '{': it is not a safetensors file");
  check(st_image(R"({"t":{"dtype":)", ""),
        name + " has a header that is not valid JSON: [json.exception.parse_error.101] parse error at line 1, column 15: "
               "syntax error while parsing value - unexpected end of input; expected '[', '{', or a literal");
  check(st_image(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                 std::string(8, '\0')),
        name + " names 't' twice in its header");
  check(st_image(R"({"__metadata__":{"format":"pt","epoch":3}})", ""),
        name + ": '__metadata__' must map strings to strings, but 'epoch' is 3");
  check(st_image(R"({"t":{"dtype":"F32","shape":[2]}})", ""), name + ": tensor 't' lacks 'data_offsets'");
  check(st_image(R"({"t":{"dtype":"F128","shape":[2],"data_offsets":[0,32]}})", std::string(32, '\0')),
        name + ": tensor 't' has unknown dtype 'F128'");
  check(st_image(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", std::string(8, '\0')),
        name + ": tensor 't' has shape [-2]: dimensions must be non-negative integers");
  check(st_image(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", std::string(8, '\0')),
        name + ": tensor 't' has data_offsets [8,0]: the end lies before the begin");
  check(st_image(R"({"t":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", std::string(20, '\0')),
        name + ": tensor 't' (F32, shape [2,3]) needs 24 bytes but its data_offsets [0,20] span 20");
  check(st_image(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, '\0')),
        name + ": the first tensor 't' starts at byte 4 of the data buffer; tensors must tile the buffer from byte 0");
  check(st_image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[6,10]}})",
                 std::string(10, '\0')),
        name + ": tensor 'b' starts at byte 6 of the data buffer but 'a' ends at byte 4 (gap); tensors must tile the buffer "
               "without gaps or overlaps");
  check(st_image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                 std::string(8, '\0')),
        name + ": tensor 'b' starts at byte 4 of the data buffer but 'a' ends at byte 8 (overlap); tensors must tile the "
               "buffer without gaps or overlaps");
  check(st_image(t, std::string(6, '\0')),
        name + ": its tensors end at byte 8 of the data buffer but the file holds only 6 bytes of data: the file is truncated");
  check(st_image(t, std::string(11, '\0')),
        name + ": its tensors end at byte 8 of the data buffer but the file holds 11 bytes of data: 3 unexpected bytes follow "
               "the last tensor");
}
