// The per-job secret and the proof a native client gives the store (DESIGN §2: "native clients
// prove membership with a per-job secret that never appears on a command line").
//
// Handshake (wire format in store_protocol.hpp): after VALIDATE, the client sends AUTH_CHALLENGE;
// the server answers with a fresh random nonce; the client sends AUTH_RESPONSE carrying
// auth_proof(token, nonce); the server compares it with its own in constant time and answers
// accepted, or rejected and closes. The token itself never crosses the wire, and a recorded proof
// is useless on another connection (new nonce). One-way: the client does not check the server.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ds::store {

// n bytes from the kernel's CSPRNG (getrandom). Throws ResourceError if the kernel refuses.
std::string random_bytes(std::size_t n);

// A fresh job token: 32 random bytes as 64 lower-case hex digits.
std::string generate_token();

// HMAC-SHA256 keyed by the token's text, over nonce || k_auth_context; 32 raw bytes.
std::string auth_proof(std::string_view token, std::string_view nonce);

}  // namespace ds::store
