// Tests of ARC augmentation: geometry against hand-checked grids and numpy's rot90, the PRNG, and the
// deterministic choice of variants, colour maps and train orders.
#include <gtest/gtest.h>

#include <set>

#include "data/arc_augment.h"
#include "data_test_helpers.h"
#include "util/error.h"

namespace {

namespace arc = fme::arc;

const arc::Grid k2x3{{1, 2, 3}, {4, 5, 6}};

TEST(ArcAugment, HandCheckedGeometry) {
  // np.rot90([[1,2,3],[4,5,6]]) == [[3,6],[2,5],[1,4]] (counter-clockwise).
  EXPECT_EQ(arc::rot90(k2x3, 1), (arc::Grid{{3, 6}, {2, 5}, {1, 4}}));
  EXPECT_EQ(arc::rot90(k2x3, 2), (arc::Grid{{6, 5, 4}, {3, 2, 1}}));
  EXPECT_EQ(arc::rot90(k2x3, 3), (arc::Grid{{4, 1}, {5, 2}, {6, 3}}));
  EXPECT_EQ(arc::rot90(k2x3, -1), arc::rot90(k2x3, 3));
  EXPECT_EQ(arc::hflip(k2x3), (arc::Grid{{3, 2, 1}, {6, 5, 4}}));
  // Flip first, then rotate: np.rot90(np.fliplr(g)).
  EXPECT_EQ(arc::apply_geometry(k2x3, true, 1), (arc::Grid{{1, 4}, {2, 5}, {3, 6}}));
}

TEST(ArcAugment, GeometryProperties) {
  arc::Grid g{{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 0, 1, 2}};  // [3][4]
  arc::Grid r = g;
  for (int i = 0; i < 4; ++i) r = arc::rot90(r, 1);
  EXPECT_EQ(r, g);
  EXPECT_EQ(arc::hflip(arc::hflip(g)), g);
  for (int k = 0; k < 4; ++k) {
    arc::Grid t = arc::rot90(g, k);
    EXPECT_EQ(arc::height(t), k % 2 ? 4u : 3u);
    EXPECT_EQ(arc::width(t), k % 2 ? 3u : 4u);
  }
  // The 8 variants are distinct for a grid without symmetry, and revert_grid undoes each.
  std::set<arc::Grid> seen;
  for (int flip = 0; flip < 2; ++flip)
    for (int k = 0; k < 4; ++k) {
      arc::Augmentation a;
      a.hflip = flip;
      a.rot90 = k;
      a.colours = {3, 1, 2, 0, 4, 5, 9, 7, 8, 6};
      seen.insert(arc::apply_geometry(g, flip, k));
      EXPECT_EQ(arc::revert_grid(arc::augment_grid(g, a), a), g);
    }
  EXPECT_EQ(seen.size(), 8u);
}

TEST(ArcAugment, SplitMixMatchesReferenceValues) {
  // Reference outputs of SplitMix64 seeded with 0 (as in Vigna's splitmix64.c).
  arc::SplitMix64 rng(0);
  EXPECT_EQ(rng.next(), 0xE220A8397B1DCDAFULL);
  EXPECT_EQ(rng.next(), 0x6E789E6AA1B965F4ULL);
  EXPECT_EQ(rng.next(), 0x06C45D188009454FULL);
  EXPECT_EQ(arc::fnv1a64(""), 0xCBF29CE484222325ULL);
  EXPECT_EQ(arc::fnv1a64("a"), 0xAF63DC4C8601EC8CULL);
  arc::SplitMix64 u(42);
  for (int i = 0; i < 1000; ++i) EXPECT_LT(u.uniform(7), 7u);
}

TEST(ArcAugment, ChoiceIsDeterministicAndVariantZeroIsIdentity) {
  auto a = arc::choose_augmentations("007bbfb7", 5, 8, 1234);
  auto b = arc::choose_augmentations("007bbfb7", 5, 8, 1234);
  auto c = arc::choose_augmentations("007bbfb7", 5, 8, 1235);
  auto d = arc::choose_augmentations("00d62c1b", 5, 8, 1234);
  ASSERT_EQ(a.size(), 8u);
  auto dump = [](const std::vector<arc::Augmentation>& v) {
    std::string s;
    for (const auto& x : v) s += arc::augmentation_to_json(x).dump() + "\n";
    return s;
  };
  EXPECT_EQ(dump(a), dump(b));
  EXPECT_NE(dump(a), dump(c));
  EXPECT_NE(dump(a), dump(d));
  EXPECT_TRUE(a[0].is_identity());
  EXPECT_EQ(arc::augmentation_to_json(a[0]).dump(),
            R"({"colours":"0123456789","hflip":false,"rot90":0,"train_order":[0,1,2,3,4]})");
  // With n = 8 every geometry appears exactly once; a prefix is the same for smaller n.
  std::set<std::pair<bool, int>> geometries;
  for (const auto& x : a) geometries.insert({x.hflip, x.rot90});
  EXPECT_EQ(geometries.size(), 8u);
  auto three = arc::choose_augmentations("007bbfb7", 5, 3, 1234);
  EXPECT_EQ(dump(three), dump({a[0], a[1], a[2]}));
  EXPECT_THROW(arc::choose_augmentations("x", 1, 0, 1), fme::ConfigError);
  EXPECT_THROW(arc::choose_augmentations("x", 1, 9, 1), fme::ConfigError);
  // JSON round trip.
  for (const auto& x : a)
    EXPECT_EQ(arc::augmentation_to_json(arc::augmentation_from_json(arc::augmentation_to_json(x), "t")).dump(),
              arc::augmentation_to_json(x).dump());
  EXPECT_THROW(arc::augmentation_from_json(
                   fme::Json::parse(R"({"hflip":false,"rot90":0,"colours":"0123456788","train_order":[]})"), "t"),
               fme::ConfigError);
}

TEST(ArcAugment, ColourMapsArePermutationsKeepingBackgroundAboutNinetyPercent) {
  size_t draws = 0, background_kept = 0, orders_changed = 0;
  for (uint64_t seed = 0; seed < 1000; ++seed) {
    for (const auto& a : arc::choose_augmentations("task" + std::to_string(seed % 7), 4, 8, seed)) {
      if (a.is_identity()) continue;  // variant 0
      std::set<int> values(a.colours.begin(), a.colours.end());
      EXPECT_EQ(values.size(), 10u);
      EXPECT_EQ(a.train_order.size(), 4u);
      std::set<uint32_t> order(a.train_order.begin(), a.train_order.end());
      EXPECT_EQ(order.size(), 4u);
      EXPECT_EQ(*order.rbegin(), 3u);
      ++draws;
      background_kept += a.colours[0] == 0;
      orders_changed += a.train_order != std::vector<uint32_t>{0, 1, 2, 3};
    }
  }
  ASSERT_EQ(draws, 7000u);
  // P(0 -> 0) = 0.9 + 0.1 * 1/10 = 0.91 (a full shuffle can map 0 to itself too).
  const double p = static_cast<double>(background_kept) / draws;
  EXPECT_NEAR(p, 0.91, 0.015);
  EXPECT_NEAR(static_cast<double>(orders_changed) / draws, 23.0 / 24.0, 0.015);
}

TEST(ArcAugment, AugmentTaskAppliesToEveryGridAndReordersTrain) {
  arc::Task t;
  t.id = "t";
  t.train = {{{{1, 0}}, {{2, 0}}}, {{{3, 0}}, {{4, 0}}}};
  t.test = {{{{5, 0}}, arc::Grid{{6, 0}}}};
  arc::Augmentation a;
  a.rot90 = 1;
  a.colours = {9, 1, 2, 3, 4, 5, 6, 7, 8, 0};
  a.train_order = {1, 0};
  arc::Task out = arc::augment_task(t, a);
  EXPECT_EQ(out.train[0].input, (arc::Grid{{9}, {3}}));
  EXPECT_EQ(out.train[1].output, (arc::Grid{{9}, {2}}));
  EXPECT_EQ(out.test[0].input, (arc::Grid{{9}, {5}}));
  EXPECT_EQ(*out.test[0].output, (arc::Grid{{9}, {6}}));
  a.train_order = {0, 0};
  EXPECT_THROW(arc::augment_task(t, a), fme::ConfigError);
}

}  // namespace
