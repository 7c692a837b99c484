#include <catch2/catch.hpp>

#include <map>

#include "zero/partition.hpp"

using namespace ds;
using namespace ds::zero;

namespace {

// Two units: "a" holds params of 5 and 30 elements, "b" one param of 7 elements.
model::ModelLayout small_layout() {
  model::ModelLayout layout;
  auto add_param = [&](const std::string& name, int64_t n, int unit) {
    model::ParamInfo p;
    p.name = name;
    p.shape = {n};
    p.numel = n;
    p.unit = unit;
    layout.params.push_back(p);
    layout.units[static_cast<size_t>(unit)].params.push_back(static_cast<int>(layout.params.size()) - 1);
    layout.units[static_cast<size_t>(unit)].numel += n;
  };
  layout.units.resize(2);
  layout.units[0].name = "a";
  layout.units[1].name = "b";
  add_param("a.x", 5, 0);
  add_param("a.y", 30, 0);
  add_param("b.z", 7, 1);
  return layout;
}

}  // namespace

TEST_CASE("units are padded to a multiple of world size times the alignment and split evenly") {
  auto layout = small_layout();
  for (int ws : {1, 2, 3, 4, 7}) {
    Partition part(layout, ws, 0);
    for (size_t u = 0; u < layout.units.size(); ++u) {
      const auto& up = part.unit(static_cast<int>(u));
      CHECK(up.numel == layout.units[u].numel);
      CHECK(up.padded % (ws * k_shard_align) == 0);
      CHECK(up.padded >= up.numel);
      CHECK(up.padded - up.numel < ws * k_shard_align);
      CHECK(up.slice * ws == up.padded);
    }
    CHECK(part.shard_numel() == part.unit(0).slice + part.unit(1).slice);
    CHECK(part.unit(1).shard_offset == part.unit(0).slice);
    CHECK(part.padded_numel() == part.shard_numel() * ws);
  }
}

TEST_CASE("every parameter element is owned by exactly one rank, in order, for any world size") {
  auto layout = small_layout();
  for (int ws : {1, 2, 3, 4, 5, 8}) {
    std::map<int, std::vector<int>> owners;  // param -> owner rank per element
    for (size_t p = 0; p < layout.params.size(); ++p)
      owners[static_cast<int>(p)].assign(static_cast<size_t>(layout.params[p].numel), -1);
    for (int r = 0; r < ws; ++r) {
      Partition part(layout, ws, r);
      int64_t last_end = -1;
      for (const auto& piece : part.pieces()) {
        CHECK(piece.shard_offset >= last_end);  // pieces come in shard order, never overlapping
        last_end = piece.shard_offset + piece.count;
        CHECK(last_end <= part.shard_numel());
        for (int64_t i = 0; i < piece.count; ++i) {
          auto& slot = owners[piece.param][static_cast<size_t>(piece.param_offset + i)];
          CHECK(slot == -1);
          slot = r;
        }
      }
    }
    for (auto& [p, elems] : owners)
      for (int o : elems) CHECK(o >= 0);
  }
}

TEST_CASE("owned ranges clip padding and agree with owner_of") {
  auto layout = small_layout();
  const int ws = 4;  // unit a: 35 elements padded to 64, slices of 16: ranks own 16, 16, 3, 0
  Partition part(layout, ws, 0);
  CHECK(part.unit(0).padded == 64);
  CHECK(part.owned_range(0, 0) == std::pair<int64_t, int64_t>{0, 16});
  CHECK(part.owned_range(0, 1) == std::pair<int64_t, int64_t>{16, 32});
  CHECK(part.owned_range(0, 2) == std::pair<int64_t, int64_t>{32, 35});
  auto [b3, e3] = part.owned_range(0, 3);
  CHECK(b3 == e3);
  for (int64_t i = 0; i < 64; ++i) CHECK(part.owner_of(0, i) == static_cast<int>(i / 16));
}

TEST_CASE("a parameter straddling a slice boundary is split into pieces with the right offsets") {
  auto layout = small_layout();
  Partition r0(layout, 4, 0), r1(layout, 4, 1);
  // unit a = [a.x (5) | a.y (30)]: rank 0 owns a.x[0,5) and a.y[0,11); rank 1 owns a.y[11,27).
  REQUIRE(r0.pieces().size() >= 2);
  CHECK(r0.pieces()[0].param == 0);
  CHECK(r0.pieces()[0].count == 5);
  CHECK(r0.pieces()[1].param == 1);
  CHECK(r0.pieces()[1].param_offset == 0);
  CHECK(r0.pieces()[1].count == 11);
  CHECK(r0.pieces()[1].shard_offset == 5);
  CHECK(r1.pieces()[0].param == 1);
  CHECK(r1.pieces()[0].param_offset == 11);
  CHECK(r1.pieces()[0].count == 16);
}
