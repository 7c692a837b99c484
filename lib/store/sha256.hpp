// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), for the store's job-token handshake
// (store_auth.hpp). Written here so the store needs no crypto library; tested against the
// FIPS 180-4 examples and the RFC 4231 HMAC vectors (tests/store/sha256_test.cpp).
// Not constant-time with respect to message length (it need not be: lengths are public).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ds::store {

using Sha256Digest = std::array<uint8_t, 32>;

// Incremental hasher: update() any number of times, then finish() once.
class Sha256 {
 public:
  Sha256();
  void update(std::string_view bytes);
  void update(const void* data, std::size_t size);
  // Pads, hashes the last block and returns the digest. The object must not be used afterwards.
  Sha256Digest finish();

 private:
  void compress(const uint8_t* block);  // block is 64 bytes

  std::array<uint32_t, 8> m_state;
  std::array<uint8_t, 64> m_block{};
  std::size_t m_block_used = 0;
  uint64_t m_total_bytes = 0;
};

Sha256Digest sha256(std::string_view bytes);

// HMAC-SHA256 of message under key (any length; keys longer than 64 bytes are hashed first).
Sha256Digest hmac_sha256(std::string_view key, std::string_view message);

// Lower-case hex of bytes ("ba7816bf...").
std::string to_hex(const uint8_t* data, std::size_t size);
std::string to_hex(const Sha256Digest& digest);

// True if a and b are equal; the time taken depends only on the sizes, not on where they differ
// (so a wrong guess at an authentication code leaks nothing about the right one).
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace ds::store
