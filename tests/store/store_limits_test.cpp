// The launcher's store settings from its environment (store_limits.hpp): defaults, values, and
// one exact message per mistake.
#include <catch2/catch.hpp>

#include "base/error.hpp"
#include "store/store_limits.hpp"

using namespace ds;
using namespace ds::store;
using namespace std::chrono_literals;

TEST_CASE("without variables the store's caps are the documented defaults") {
  const StoreSettings s = store_settings_from_env({{"PATH", "/bin"}});
  CHECK(s.limits.max_reply_bytes == 64u << 20);
  CHECK(s.limits.max_stored_bytes == 1u << 30);
  CHECK(s.limits.max_connections == 8192);
  CHECK(s.limits.max_request_bytes == 256u << 20);
  CHECK(s.limits.request_timeout == 30s);
  CHECK(s.auth == StoreAuthPolicy::auto_detect);
}

TEST_CASE("each DSLAUNCH_STORE_ variable sets its cap") {
  const StoreSettings s = store_settings_from_env({{"DSLAUNCH_STORE_MAX_REPLY_BYTES", "2M"},
                                                   {"DSLAUNCH_STORE_MAX_STORED_BYTES", "3G"},
                                                   {"DSLAUNCH_STORE_MAX_CONNECTIONS", "100"},
                                                   {"DSLAUNCH_STORE_MAX_REQUEST_BYTES", "640k"},
                                                   {"DSLAUNCH_STORE_REQUEST_TIMEOUT", "0.25"},
                                                   {"DSLAUNCH_STORE_REQUIRE_AUTH", "1"}});
  CHECK(s.limits.max_reply_bytes == 2u << 20);
  CHECK(s.limits.max_stored_bytes == std::size_t{3} << 30);
  CHECK(s.limits.max_connections == 100);
  CHECK(s.limits.max_request_bytes == 640u << 10);
  CHECK(s.limits.request_timeout == 250ms);
  CHECK(s.auth == StoreAuthPolicy::required);
  CHECK(store_settings_from_env({{"DSLAUNCH_STORE_REQUIRE_AUTH", "0"}}).auth == StoreAuthPolicy::protected_keys_only);
  CHECK(store_settings_from_env({{"DSLAUNCH_STORE_REQUIRE_AUTH", "auto"}}).auth == StoreAuthPolicy::auto_detect);
}

TEST_CASE("a bad DSLAUNCH_STORE_ value is a UsageError naming the variable, the value and the fix") {
  auto message = [](const std::string& name, const std::string& value) -> std::string {
    try {
      store_settings_from_env({{name, value}});
    } catch (const UsageError& e) {
      return e.what();
    }
    return "no error";
  };
  CHECK(message("DSLAUNCH_STORE_MAX_REPLY_BYTES", "lots") ==
        "DSLAUNCH_STORE_MAX_REPLY_BYTES='lots' is not a positive whole number of bytes, optionally ending in K, M or G "
        "(1024-based), e.g. 64M; fix or unset it");
  CHECK(message("DSLAUNCH_STORE_MAX_STORED_BYTES", "0") ==
        "DSLAUNCH_STORE_MAX_STORED_BYTES='0' is not a positive whole number of bytes, optionally ending in K, M or G "
        "(1024-based), e.g. 64M; fix or unset it");
  CHECK(message("DSLAUNCH_STORE_MAX_REPLY_BYTES", "99999999999999999999G").find("is not a positive whole number") !=
        std::string::npos);
  CHECK(message("DSLAUNCH_STORE_MAX_CONNECTIONS", "10K") ==
        "DSLAUNCH_STORE_MAX_CONNECTIONS='10K' is not a positive whole number; fix or unset it");
  CHECK(message("DSLAUNCH_STORE_MAX_REQUEST_BYTES", "1G") ==
        "DSLAUNCH_STORE_MAX_REQUEST_BYTES='1G' is over the protocol's limit of 268435456 bytes (256M); lower it or unset it");
  CHECK(message("DSLAUNCH_STORE_REQUEST_TIMEOUT", "-1") ==
        "DSLAUNCH_STORE_REQUEST_TIMEOUT='-1' is not a positive number of seconds (e.g. 30 or 0.5); fix or unset it");
  CHECK(message("DSLAUNCH_STORE_REQUEST_TIMEOUT", "5s") ==
        "DSLAUNCH_STORE_REQUEST_TIMEOUT='5s' is not a positive number of seconds (e.g. 30 or 0.5); fix or unset it");
  CHECK(message("DSLAUNCH_STORE_REQUIRE_AUTH", "yes") ==
        "DSLAUNCH_STORE_REQUIRE_AUTH='yes' is not 1, 0 or auto: 1 refuses every client without the job token, 0 lets "
        "torch clients use the open keys, auto (the default) requires the token when every worker is dsworker");
}
