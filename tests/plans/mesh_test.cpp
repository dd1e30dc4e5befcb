// Tests of the one Mesh type of plans and the runtime: parsing, world-size check, row-major coordinates and per-axis groups.
#include <gtest/gtest.h>

#include <map>

#include "plans/mesh.h"
#include "util/error.h"

namespace fme::plans {
namespace {

std::string error_of(const std::string& spec, int world) {
  try {
    Mesh::parse(spec, world);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Mesh, ParsesOrderedAxes) {
  Mesh m = Mesh::parse("dp=2, tp=3", 6);
  ASSERT_EQ(m.axes.size(), 2u);
  EXPECT_EQ(m.axes[0].name, "dp");
  EXPECT_EQ(m.axes[0].size, 2);
  EXPECT_EQ(m.axes[1].name, "tp");
  EXPECT_EQ(m.axes[1].size, 3);
  EXPECT_EQ(m.num_ranks(), 6);
  EXPECT_EQ(m.to_string(), "dp=2,tp=3");
  EXPECT_EQ(m.size("pp"), 1);
  EXPECT_FALSE(m.has("pp"));
}

TEST(Mesh, EmptyMeshIsOneProcess) {
  Mesh m = Mesh::parse("", 1);
  EXPECT_TRUE(m.axes.empty());
  EXPECT_EQ(m.num_ranks(), 1);
  EXPECT_EQ(m.size("tp"), 1);
  EXPECT_EQ(m.group_ranks(0, "tp"), std::vector<int>{0});
  EXPECT_EQ(m.coord(0, "tp"), 0);
}

TEST(Mesh, WorldSizeMismatch) {
  EXPECT_EQ(error_of("dp=2,tp=2", 2), "mesh dp=2,tp=2 has 4 processes but WORLD_SIZE is 2");
  EXPECT_EQ(error_of("tp=2", 1), "mesh tp=2 has 2 processes but WORLD_SIZE is 1");
  EXPECT_EQ(error_of("", 4), "mesh (none) has 1 process but WORLD_SIZE is 4");
}

TEST(Mesh, MalformedSpecs) {
  EXPECT_NE(error_of("tp", 2).find("must be name=size"), std::string::npos);
  EXPECT_NE(error_of("tp=0", 1).find("positive integer"), std::string::npos);
  EXPECT_NE(error_of("tp=x", 2).find("positive integer, got 'x'"), std::string::npos);
  EXPECT_NE(error_of("tp=-2", 2).find("positive integer"), std::string::npos);
  EXPECT_NE(error_of("tp=2,tp=2", 4).find("names axis tp twice"), std::string::npos);
  EXPECT_NE(error_of("2tp=2", 2).find("axis name '2tp'"), std::string::npos);
  EXPECT_NE(error_of("tp=2,", 2).find("must be name=size"), std::string::npos);
  EXPECT_NE(error_of("=2", 2).find("axis name ''"), std::string::npos);
}

TEST(Mesh, RowMajorCoordinates) {
  Mesh m = Mesh::parse("dp=2,tp=2", 4);
  EXPECT_EQ(m.coords(0), (std::vector<int>{0, 0}));
  EXPECT_EQ(m.coords(1), (std::vector<int>{0, 1}));
  EXPECT_EQ(m.coords(2), (std::vector<int>{1, 0}));
  EXPECT_EQ(m.coords(3), (std::vector<int>{1, 1}));
  for (int r = 0; r < 4; ++r) EXPECT_EQ(m.rank_of(m.coords(r)), r);
  EXPECT_EQ(m.coord(3, "dp"), 1);
  EXPECT_EQ(m.coord(2, "tp"), 0);
  EXPECT_THROW(m.coords(4), ConfigError);
  EXPECT_THROW(m.rank_of({0}), ConfigError);
  EXPECT_THROW(m.rank_of({0, 2}), ConfigError);
}

TEST(Mesh, AxisGroups) {
  Mesh m = Mesh::parse("dp=2,tp=2", 4);
  EXPECT_EQ(m.group_ranks(0, "tp"), (std::vector<int>{0, 1}));
  EXPECT_EQ(m.group_ranks(3, "tp"), (std::vector<int>{2, 3}));
  EXPECT_EQ(m.group_ranks(1, "dp"), (std::vector<int>{1, 3}));
  EXPECT_EQ(m.group_ranks(2, "dp"), (std::vector<int>{0, 2}));
  EXPECT_EQ(m.group_ranks(2, "pp"), (std::vector<int>{2}));
  EXPECT_EQ(m.group_index(0, "tp"), 0);
  EXPECT_EQ(m.group_index(3, "tp"), 1);
  EXPECT_EQ(m.group_index(1, "dp"), 1);

  Mesh m3 = Mesh::parse("pp=2,dp=3,tp=2", 12);
  // rank 7 = (1, 0, 1): its dp group varies the middle coordinate.
  EXPECT_EQ(m3.coords(7), (std::vector<int>{1, 0, 1}));
  EXPECT_EQ(m3.group_ranks(7, "dp"), (std::vector<int>{7, 9, 11}));
  EXPECT_EQ(m3.group_ranks(7, "pp"), (std::vector<int>{1, 7}));
  // Every rank lies in exactly one group per axis, and group indices are distinct per group.
  for (const char* axis : {"pp", "dp", "tp"}) {
    std::map<int, std::vector<int>> by_index;
    for (int r = 0; r < 12; ++r) {
      auto g = m3.group_ranks(r, axis);
      EXPECT_EQ(g[m3.coord(r, axis)], r);
      auto [it, fresh] = by_index.emplace(m3.group_index(r, axis), g);
      EXPECT_EQ(it->second, g) << axis << " rank " << r;
    }
    EXPECT_EQ(static_cast<int>(by_index.size()), 12 / m3.size(axis));
  }
}

}  // namespace
}  // namespace fme::plans
