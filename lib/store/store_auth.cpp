#include "store/store_auth.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstring>

#include "base/error.hpp"
#include "store/sha256.hpp"
#include "store/store_protocol.hpp"

namespace ds::store {

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  std::size_t filled = 0;
  while (filled < n) {
    const ssize_t got = ::getrandom(out.data() + filled, n - filled, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw ResourceError(std::string("cannot read random bytes from the kernel (getrandom): ") + std::strerror(errno));
    }
    filled += static_cast<std::size_t>(got);
  }
  return out;
}

std::string generate_token() {
  const std::string bytes = random_bytes(32);
  return to_hex(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

std::string auth_proof(std::string_view token, std::string_view nonce) {
  std::string message(nonce);
  message.append(k_auth_context);
  const Sha256Digest mac = hmac_sha256(token, message);
  return std::string(reinterpret_cast<const char*>(mac.data()), mac.size());
}

}  // namespace ds::store
