// Parsing of --mesh specs and the rank <-> coordinate arithmetic of a row-major mesh.
#include "dist/mesh.h"

#include <cctype>
#include <climits>

#include "util/error.h"

namespace fme::dist {

namespace {

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

bool valid_name(const std::string& n) {
  if (n.empty() || std::isdigit(static_cast<unsigned char>(n[0]))) return false;
  for (char c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

}  // namespace

Mesh::Mesh(std::vector<MeshAxis> axes) : axes_(std::move(axes)) {
  long long total = 1;
  for (size_t i = 0; i < axes_.size(); ++i) {
    if (!valid_name(axes_[i].name)) throw ConfigError("mesh axis name '" + axes_[i].name + "' is not a valid name");
    if (axes_[i].size < 1)
      throw ConfigError("mesh axis " + axes_[i].name + " must have size >= 1, got " + std::to_string(axes_[i].size));
    for (size_t j = 0; j < i; ++j)
      if (axes_[j].name == axes_[i].name) throw ConfigError("mesh names axis " + axes_[i].name + " twice");
    total *= axes_[i].size;
    if (total > INT_MAX) throw ConfigError("mesh " + to_string() + " has too many processes");
  }
}

Mesh Mesh::parse(const std::string& spec, int world_size) {
  std::vector<MeshAxis> axes;
  std::string s = trim(spec);
  if (!s.empty()) {
    size_t pos = 0;
    while (true) {
      size_t comma = s.find(',', pos);
      std::string item = trim(s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
      size_t eq = item.find('=');
      if (eq == std::string::npos)
        throw ConfigError("mesh '" + spec + "': item '" + item + "' must be name=size, e.g. tp=2");
      std::string name = trim(item.substr(0, eq));
      std::string size = trim(item.substr(eq + 1));
      if (!valid_name(name))
        throw ConfigError("mesh '" + spec + "': axis name '" + name + "' must be letters, digits and '_'");
      bool digits = !size.empty() && size.size() <= 9;
      for (char c : size) digits = digits && std::isdigit(static_cast<unsigned char>(c));
      if (!digits || std::stoi(size) < 1)
        throw ConfigError("mesh '" + spec + "': size of axis " + name + " must be a positive integer, got '" + size + "'");
      axes.push_back({name, std::stoi(size)});
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
  }
  Mesh mesh(std::move(axes));
  if (mesh.world_size() != world_size) {
    int n = mesh.world_size();
    throw ConfigError("mesh " + (s.empty() ? std::string("(none)") : mesh.to_string()) + " has " + std::to_string(n) +
                      (n == 1 ? " process" : " processes") + " but WORLD_SIZE is " + std::to_string(world_size));
  }
  return mesh;
}

int Mesh::world_size() const {
  int n = 1;
  for (const auto& a : axes_) n *= a.size;
  return n;
}

int Mesh::axis_position(const std::string& name) const {
  for (size_t i = 0; i < axes_.size(); ++i)
    if (axes_[i].name == name) return static_cast<int>(i);
  return -1;
}

bool Mesh::has_axis(const std::string& name) const { return axis_position(name) >= 0; }

int Mesh::axis_size(const std::string& name) const {
  int p = axis_position(name);
  return p < 0 ? 1 : axes_[p].size;
}

std::string Mesh::to_string() const {
  std::string s;
  for (const auto& a : axes_) s += (s.empty() ? "" : ",") + a.name + "=" + std::to_string(a.size);
  return s;
}

std::vector<int> Mesh::coords(int rank) const {
  if (rank < 0 || rank >= world_size())
    throw ConfigError("rank " + std::to_string(rank) + " is outside mesh " + to_string() + " of " +
                      std::to_string(world_size()) + " processes");
  std::vector<int> c(axes_.size());
  for (size_t i = axes_.size(); i-- > 0;) {
    c[i] = rank % axes_[i].size;
    rank /= axes_[i].size;
  }
  return c;
}

int Mesh::rank_of(const std::vector<int>& c) const {
  if (c.size() != axes_.size())
    throw ConfigError("mesh " + to_string() + " has " + std::to_string(axes_.size()) + " axes, got " +
                      std::to_string(c.size()) + " coordinates");
  int r = 0;
  for (size_t i = 0; i < axes_.size(); ++i) {
    if (c[i] < 0 || c[i] >= axes_[i].size)
      throw ConfigError("coordinate " + std::to_string(c[i]) + " is outside mesh axis " + axes_[i].name + "=" +
                        std::to_string(axes_[i].size));
    r = r * axes_[i].size + c[i];
  }
  return r;
}

int Mesh::coord(int rank, const std::string& axis) const {
  auto c = coords(rank);
  int p = axis_position(axis);
  return p < 0 ? 0 : c[p];
}

std::vector<int> Mesh::group_ranks(int rank, const std::string& axis) const {
  auto c = coords(rank);
  int p = axis_position(axis);
  if (p < 0) return {rank};
  std::vector<int> ranks;
  for (int i = 0; i < axes_[p].size; ++i) {
    c[p] = i;
    ranks.push_back(rank_of(c));
  }
  return ranks;
}

int Mesh::group_index(int rank, const std::string& axis) const {
  auto c = coords(rank);
  int p = axis_position(axis);
  if (p < 0) return rank;
  // Row-major index over the remaining axes.
  int idx = 0;
  for (size_t i = 0; i < axes_.size(); ++i)
    if (static_cast<int>(i) != p) idx = idx * axes_[i].size + c[i];
  return idx;
}

}  // namespace fme::dist
