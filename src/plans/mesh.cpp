// Parsing of --mesh specs and the rank <-> coordinate arithmetic of a row-major mesh.
#include "plans/mesh.h"

#include <cctype>
#include <climits>

#include "util/error.h"

namespace fme::plans {

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

Mesh Mesh::parse(const std::string& text) {
  Mesh m;
  const std::string s = trim(text);
  if (s.empty()) return m;
  size_t pos = 0;
  while (true) {
    size_t comma = s.find(',', pos);
    std::string item = trim(s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    size_t sep = item.find_first_of("=:");
    if (sep == std::string::npos)
      throw ConfigError("mesh '" + text + "': item '" + item + "' must be name=size, e.g. tp=2");
    std::string name = trim(item.substr(0, sep)), size = trim(item.substr(sep + 1));
    if (!valid_name(name))
      throw ConfigError("mesh '" + text + "': axis name '" + name + "' must be letters, digits and '_'");
    bool digits = !size.empty() && size.size() <= 9;
    for (char c : size) digits = digits && std::isdigit(static_cast<unsigned char>(c));
    if (!digits || std::stoi(size) < 1)
      throw ConfigError("mesh '" + text + "': size of axis " + name + " must be a positive integer, got '" + size + "'");
    m.axes.push_back({name, std::stoi(size)});
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  try {
    m.validate();
  } catch (const ConfigError& e) {
    throw ConfigError("mesh '" + text + "': " + e.what());
  }
  return m;
}

Mesh Mesh::parse(const std::string& text, int world_size) {
  Mesh m = parse(text);
  if (m.num_ranks() != world_size) {
    int n = m.num_ranks();
    throw ConfigError("mesh " + (m.axes.empty() ? std::string("(none)") : m.to_string()) + " has " + std::to_string(n) +
                      (n == 1 ? " process" : " processes") + " but WORLD_SIZE is " + std::to_string(world_size));
  }
  return m;
}

void Mesh::validate() const {
  long long total = 1;
  for (size_t i = 0; i < axes.size(); ++i) {
    const MeshAxis& a = axes[i];
    if (!valid_name(a.name)) throw ConfigError("mesh axis name '" + a.name + "' must be letters, digits and '_'");
    if (a.size < 1) throw ConfigError("mesh axis " + a.name + " must have size >= 1, got " + std::to_string(a.size));
    for (size_t j = 0; j < i; ++j)
      if (axes[j].name == a.name) throw ConfigError("mesh names axis " + a.name + " twice");
    total *= a.size;
    if (total > INT_MAX) throw ConfigError("mesh " + to_string() + " has too many processes");
  }
}

int Mesh::index(const std::string& axis) const {
  for (size_t i = 0; i < axes.size(); ++i)
    if (axes[i].name == axis) return static_cast<int>(i);
  return -1;
}

bool Mesh::has(const std::string& axis) const { return index(axis) >= 0; }

int Mesh::size(const std::string& axis) const {
  int i = index(axis);
  return i < 0 ? 1 : axes[size_t(i)].size;
}

int Mesh::num_ranks() const {
  int n = 1;
  for (const auto& a : axes) n *= a.size;
  return n;
}

std::string Mesh::to_string() const {
  std::string s;
  for (const auto& a : axes) s += (s.empty() ? "" : ",") + a.name + "=" + std::to_string(a.size);
  return s;
}

std::vector<int> Mesh::coords(int rank) const {
  if (rank < 0 || rank >= num_ranks())
    throw ConfigError("rank " + std::to_string(rank) + " is outside mesh " + to_string() + " of " +
                      std::to_string(num_ranks()) + " processes");
  std::vector<int> c(axes.size());
  for (size_t i = axes.size(); i-- > 0;) {  // last axis fastest
    c[i] = rank % axes[i].size;
    rank /= axes[i].size;
  }
  return c;
}

int Mesh::rank_of(const std::vector<int>& c) const {
  if (c.size() != axes.size())
    throw ConfigError("mesh " + to_string() + " has " + std::to_string(axes.size()) + " axes, got " +
                      std::to_string(c.size()) + " coordinates");
  int r = 0;
  for (size_t i = 0; i < axes.size(); ++i) {
    if (c[i] < 0 || c[i] >= axes[i].size)
      throw ConfigError("coordinate " + std::to_string(c[i]) + " is outside mesh axis " + axes[i].name + "=" +
                        std::to_string(axes[i].size));
    r = r * axes[i].size + c[i];
  }
  return r;
}

int Mesh::coord(int rank, const std::string& axis) const {
  auto c = coords(rank);
  int p = index(axis);
  return p < 0 ? 0 : c[size_t(p)];
}

std::vector<int> Mesh::group_ranks(int rank, const std::string& axis) const {
  auto c = coords(rank);
  int p = index(axis);
  if (p < 0) return {rank};
  std::vector<int> ranks;
  for (int i = 0; i < axes[size_t(p)].size; ++i) {
    c[size_t(p)] = i;
    ranks.push_back(rank_of(c));
  }
  return ranks;
}

int Mesh::group_index(int rank, const std::string& axis) const {
  auto c = coords(rank);
  int p = index(axis);
  if (p < 0) return rank;
  int idx = 0;  // row-major over the remaining axes
  for (size_t i = 0; i < axes.size(); ++i)
    if (static_cast<int>(i) != p) idx = idx * axes[i].size + c[i];
  return idx;
}

}  // namespace fme::plans
