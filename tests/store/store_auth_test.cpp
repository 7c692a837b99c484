// The job-token handshake and the protected namespaces ("dslaunch/", "dsworker/") (store_auth.hpp, store_server.hpp).
#include <catch2/catch.hpp>

#include <algorithm>

#include "base/error.hpp"
#include "store/sha256.hpp"
#include "store/store_auth.hpp"
#include "store/store_client.hpp"
#include "store/store_server.hpp"
#include "store_test_util.hpp"

using namespace ds;
using namespace ds::store;
using namespace std::chrono_literals;
using ds::test::framed;
using ds::test::RawClient;
using ds::test::u64_le;

namespace {

StoreClient client_for(const StoreServer& server, const std::string& token) {
  return StoreClient({.host = "127.0.0.1", .port = server.port(), .token = token, .timeout = 20s, .connect_timeout = 5s});
}

}  // namespace

TEST_CASE("generate_token gives 64 fresh hex digits") {
  const std::string a = generate_token(), b = generate_token();
  CHECK(a.size() == 64);
  CHECK(a.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(a != b);
}

TEST_CASE("the proof is HMAC-SHA256 of the nonce and the context under the token") {
  const std::string nonce(32, '\x5a');
  const Sha256Digest expected = hmac_sha256("secret", nonce + "dslaunch-store-auth-v1");
  CHECK(auth_proof("secret", nonce) == std::string(reinterpret_cast<const char*>(expected.data()), 32));
  CHECK(auth_proof("secret", nonce) != auth_proof("secreT", nonce));
}

TEST_CASE("a client with the right token authenticates and may use dslaunch/ keys") {
  const std::string token = generate_token();
  StoreServer server({.token = token});
  server.set("dslaunch/config", R"({"train_batch_size": 8})");
  StoreClient client = client_for(server, token);
  CHECK(client.authenticated());
  CHECK(client.get("dslaunch/config") == R"({"train_batch_size": 8})");
  client.set("dslaunch/failure/3", "rank 3 exited with 1");
  CHECK(client.num_keys() == 2);  // a reply, so the SET (which has none) has been applied
  CHECK(server.try_get("dslaunch/failure/3") == "rank 3 exited with 1");
}

TEST_CASE("a wrong token is rejected with a clear RendezvousError") {
  StoreServer server({.token = generate_token()});
  CHECK_THROWS_MATCHES(client_for(server, "not-the-token"), RendezvousError,
                       Catch::Message("the store at 127.0.0.1:" + std::to_string(server.port()) +
                                      " rejected this client's job token: it is not the token of the job that runs "
                                      "this store. Check that the worker received this job's token (not another job's)"));
  // The server carries on.
  StoreClient plain = client_for(server, "");
  plain.set("k", "v");
  CHECK(plain.get("k") == "v");
}

TEST_CASE("every protected namespace is in the table: dslaunch/ and dsworker/, not torch's keys") {
  CHECK(is_protected_key("dslaunch/plan"));
  CHECK(is_protected_key("dsworker/run-1/attempt_0/dp/gloo/1"));
  CHECK(is_protected_key("dsworker/run-1/attempt_0/dp/failure"));
  CHECK_FALSE(is_protected_key("/dslaunch/plan"));  // torch's client prefixes '/'
  CHECK_FALSE(is_protected_key("default_pg/0//cpu//0/0"));
  CHECK_FALSE(is_protected_key("init/"));
  CHECK_FALSE(is_protected_key("dsworker"));
  CHECK(protected_prefixes_text() == "'dslaunch/', 'dsworker/'");
}

TEST_CASE("an unauthenticated connection cannot read or write protected keys but can use the others") {
  const std::string token = generate_token();
  StoreServer server({.token = token});
  // One key per namespace: the launcher's plan and a rank's Gloo address as dsworker names it.
  const std::string ns = GENERATE(as<std::string>{}, "dslaunch/", "dsworker/dslaunch-1-2/attempt_0/dp/gloo/");
  server.set(ns + "plan", "secret plan");

  SECTION("through the client: the connection is closed and the error explains why") {
    StoreClient torch_like = client_for(server, "");
    CHECK_FALSE(torch_like.authenticated());
    torch_like.set("/default_pg/0//cpu//0/0", "address");
    CHECK(torch_like.get("/default_pg/0//cpu//0/0") == "address");
    CHECK_THROWS_WITH(torch_like.get(ns + "plan"),
                      Catch::Contains("a store with a job token closes connections that use protected keys "
                                      "('dslaunch/', 'dsworker/') without proving the token: pass the job token"));
  }
  SECTION("on the wire: every kind of access to a protected key closes the connection") {
    const std::vector<std::string> requests = {
        "\x01" + framed(ns + "plan") + framed("overwritten"),              // SET
        "\x03" + framed(ns + "plan"),                                       // GET
        "\x02" + framed(ns + "plan") + framed("") + framed("x"),            // COMPARE_SET
        "\x04" + framed(ns + "n") + u64_le(1),                              // ADD
        "\x05" + u64_le(1) + framed(ns + "plan"),                           // CHECK
        "\x06" + u64_le(2) + framed("ok") + framed(ns + "plan"),            // WAIT
        "\x08" + framed(ns + "plan"),                                       // DELETE_KEY
        "\x09" + framed(ns + "plan") + framed("x"),                         // APPEND
        "\x0a" + u64_le(1) + framed(ns + "plan"),                           // MULTI_GET
        "\x0b" + u64_le(1) + framed(ns + "plan") + framed("x"),             // MULTI_SET
        "\x0e" + framed(ns + "q") + framed("x"),                            // QUEUE_PUSH
    };
    for (const auto& request : requests) {
      RawClient c(server.port());
      c.validate();
      c.send(request);
      CHECK(c.closed_by_server());
    }
    CHECK(server.try_get(ns + "plan") == "secret plan");
    CHECK_FALSE(server.try_get(ns + "n"));
  }
  SECTION("listings and counts do not show protected keys to unauthenticated clients") {
    StoreClient torch_like = client_for(server, "");
    torch_like.set("visible", "1");
    CHECK(torch_like.list_keys() == std::vector<std::string>{"visible"});
    CHECK(torch_like.num_keys() == 1);
    StoreClient native = client_for(server, token);
    CHECK(native.num_keys() == 2);
    auto keys = native.list_keys();
    std::sort(keys.begin(), keys.end());
    CHECK(keys == std::vector<std::string>{ns + "plan", "visible"});
  }
}

TEST_CASE("require_auth refuses every data command from an unauthenticated connection") {
  const std::string token = generate_token();
  StoreServer server({.token = token, .require_auth = true});
  StoreClient anonymous = client_for(server, "");  // VALIDATE and PING are still allowed
  CHECK_THROWS_WITH(anonymous.add("k", 1), Catch::Contains("if the store requires the job token (require_auth), pass it"));
  StoreClient member = client_for(server, token);
  CHECK(member.add("k", 1) == 1);
  CHECK_THROWS_AS(StoreServer({.require_auth = true}), UsageError);
}

TEST_CASE("the handshake bytes: a 32-byte nonce, a 32-byte proof, a one-byte verdict") {
  const std::string token = "job-secret";
  StoreServer server({.token = token});
  RawClient c(server.port());
  c.validate();
  c.send("\xa0");
  CHECK(c.recv(8) == u64_le(32));
  const std::string nonce = c.recv(32);
  c.send("\xa1" + framed(auth_proof(token, nonce)));
  CHECK(c.recv_hex(1) == "00");
  c.send("\x03" + framed("dslaunch/anything"));  // now allowed: empty value for a missing key
  CHECK(c.recv(8) == u64_le(0));

  // A recorded proof is worthless on another connection: the nonce differs.
  RawClient replay(server.port());
  replay.validate();
  replay.send("\xa0");
  CHECK(replay.recv(8) == u64_le(32));
  CHECK(replay.recv(32) != nonce);
  replay.send("\xa1" + framed(auth_proof(token, nonce)));
  CHECK(replay.recv_hex(1) == "01");  // rejected, then closed
  CHECK(replay.closed_by_server());

  RawClient unasked(server.port());  // a proof without a challenge
  unasked.validate();
  unasked.send("\xa1" + framed(std::string(32, 'x')));
  CHECK(unasked.closed_by_server());
}

TEST_CASE("a client holding a token refuses a store that has none") {
  StoreServer server({});
  CHECK_THROWS_WITH(client_for(server, "some-token"), Catch::Contains("has no job token but this client was given one"));
}
