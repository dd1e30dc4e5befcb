// The process mesh: the world's ranks laid out over named axes ("dp=2,tp=2"). One type serves the plans
// (which axis shards which dim, local shapes, shard offsets) and the distributed runtime (which ranks form
// "the other tp shards of my layer"). Torch-free. An axis the mesh does not name has size 1: a single
// process is a mesh whose axes are all 1.
//
// Row-major: rank r has coordinates r written in the mixed radix of the axis sizes with the LAST axis
// varying fastest (like jax.sharding.Mesh over a reshaped device array). With dp=2,tp=2, ranks 0,1 form tp
// group 0 and ranks 0,2 form dp group 0, i.e. tp peers are neighbouring ranks (with the usual launchers, on
// one node).
#pragma once
#include <string>
#include <vector>

namespace fme::plans {

struct MeshAxis {
  std::string name;
  int size = 1;
};

struct Mesh {
  std::vector<MeshAxis> axes;

  // Parses "dp=2,tp=2" (also "tp:2"; spaces around items are ignored; "" is the empty mesh). ConfigError on
  // bad syntax, a name that is not letters, digits and '_' (not starting with a digit), a size < 1 or a
  // repeated axis.
  static Mesh parse(const std::string& text);
  // parse(text), and the sizes must multiply to world_size, else ConfigError
  // "mesh dp=2,tp=2 has 4 processes but WORLD_SIZE is 2".
  static Mesh parse(const std::string& text, int world_size);
  // ConfigError on an invalid or repeated axis name, a size < 1 or more than INT_MAX ranks.
  void validate() const;

  bool has(const std::string& axis) const;
  int index(const std::string& axis) const;  // position of `axis` in `axes`, or -1
  int size(const std::string& axis) const;   // 1 for an axis the mesh does not name
  int num_ranks() const;                     // product of the sizes (1 for no axes)
  std::string to_string() const;             // "dp=2,tp=2"; "" for no axes

  // Coordinates of `rank`, one per axis; ConfigError if rank is outside [0, num_ranks()).
  std::vector<int> coords(int rank) const;
  int rank_of(const std::vector<int>& coords) const;
  // Coordinate of `rank` along `axis` (0 for an axis the mesh does not name) = its index in its group.
  int coord(int rank, const std::string& axis) const;
  // Ranks of `rank`'s group along `axis`: those equal to it in every other coordinate, ordered by their
  // coordinate along `axis`. {rank} for an axis the mesh does not name.
  std::vector<int> group_ranks(int rank, const std::string& axis) const;
  // Which of the num_ranks() / size(axis) groups along `axis` holds `rank` (row-major over the other
  // axes), used to give each group a distinct rendezvous prefix.
  int group_index(int rank, const std::string& axis) const;
};

}  // namespace fme::plans
