// The process mesh: the world's ranks laid out row-major over named axes ("dp=2,tp=2"), so that
// tensor-parallel code can talk to "the ranks that hold the other tp shards of my layer" by axis name.
// Torch-free. An axis the mesh does not name has size 1 (a single process is a mesh whose axes are all 1).
//
// Row-major means the last axis varies fastest: with dp=2,tp=2, ranks 0,1 form tp group 0 and ranks
// 0,2 form dp group 0, i.e. tp peers are neighbouring ranks (and, with the usual launchers, on one node).
#pragma once
#include <string>
#include <vector>

namespace fme::dist {

struct MeshAxis {
  std::string name;
  int size = 1;
};

class Mesh {
 public:
  Mesh() = default;  // no axes: one process
  // Throws ConfigError on an empty or duplicate name or a size < 1.
  explicit Mesh(std::vector<MeshAxis> axes);

  // Parses "dp=2,tp=2" (names: letters, digits, '_', not starting with a digit; spaces around items are
  // ignored; "" is the empty mesh) and checks that the sizes multiply to world_size, else ConfigError
  // "mesh dp=2,tp=2 has 4 processes but WORLD_SIZE is 2".
  static Mesh parse(const std::string& spec, int world_size);

  const std::vector<MeshAxis>& axes() const { return axes_; }
  int world_size() const;                          // product of the sizes (1 for no axes)
  bool has_axis(const std::string& name) const;
  int axis_size(const std::string& name) const;    // 1 for an axis the mesh does not name
  std::string to_string() const;                   // "dp=2,tp=2", "" for no axes

  // Coordinates of `rank`, one per axis in order; ConfigError if rank is outside [0, world_size).
  std::vector<int> coords(int rank) const;
  int rank_of(const std::vector<int>& coords) const;
  // Coordinate of `rank` along `axis` (0 for an axis the mesh does not name) = its index in its group.
  int coord(int rank, const std::string& axis) const;
  // Ranks of `rank`'s group along `axis`: those equal to it in every other coordinate, ordered by their
  // coordinate along `axis`. {rank} for an axis the mesh does not name.
  std::vector<int> group_ranks(int rank, const std::string& axis) const;
  // Which of the world_size / axis_size groups along `axis` holds `rank` (0-based; the smallest rank of
  // the group divided out), used to give each group a distinct rendezvous prefix.
  int group_index(int rank, const std::string& axis) const;

 private:
  int axis_position(const std::string& name) const;  // -1 when absent
  std::vector<MeshAxis> axes_;
};

}  // namespace fme::dist
