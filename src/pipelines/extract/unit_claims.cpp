#include "pipelines/extract/unit_claims.h"

#include <map>

#include "util/error.h"

namespace fme {

UnitClaims::UnitClaims(std::shared_ptr<dist::Dist> dist, std::vector<int64_t> todo, std::string key, double lease_s)
    : dist_(std::move(dist)), todo_(std::move(todo)), key_(std::move(key)), lease_(lease_s) {
  if (lease_s <= 0) throw ConfigError("--unit-lease-s must be positive");
  if (dist_) {
    me_ = "rank-" + std::to_string(dist_->rank());
    beater_ = std::thread([this] { beat_loop(); });
  }
}

UnitClaims::~UnitClaims() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (beater_.joinable()) beater_.join();
}

void UnitClaims::own(int64_t unit, const std::string& token) {
  dist_->store_add(key("beat/" + std::to_string(unit)), 1);
  std::lock_guard<std::mutex> lock(mu_);
  owned_[unit] = token;
}

bool UnitClaims::owns(int64_t unit) {
  if (!dist_) return true;
  std::string token;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = owned_.find(unit);
    if (it == owned_.end()) return false;
    token = it->second;
  }
  return dist_->store_get(key("owner/" + std::to_string(unit))).value_or("") == token;
}

void UnitClaims::lost(int64_t unit) {
  std::lock_guard<std::mutex> lock(mu_);
  owned_.erase(unit);
}

void UnitClaims::beat_loop() {
  const auto every = std::chrono::duration_cast<std::chrono::milliseconds>(lease_ / 4);
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, std::max(every, std::chrono::milliseconds(50)), [&] { return stop_; })) {
    std::vector<int64_t> units;
    for (const auto& [unit, token] : owned_) units.push_back(unit);
    if (units.empty()) continue;
    lock.unlock();
    try {
      for (int64_t unit : units) dist_->store_add(key("beat/" + std::to_string(unit)), 1);
    } catch (const dist::DistError&) {  // the store is gone: the main thread's next request says so
      lock.lock();
      return;
    }
    lock.lock();
  }
}

int64_t UnitClaims::next(const std::function<void()>& waiting) {
  if (!dist_) return local_next_ < todo_.size() ? todo_[local_next_++] : -1;
  const int64_t n = static_cast<int64_t>(todo_.size());
  const int64_t i = dist_->store_add(key("next"), 1) - 1;
  if (i < n) {
    const int64_t unit = todo_[static_cast<size_t>(i)];
    dist_->store_set(key("owner/" + std::to_string(unit)), me_);
    own(unit, me_);
    return unit;
  }
  // Every unit is handed out: wait for the others, taking over a unit whose owner's heartbeat stopped.
  std::map<int64_t, std::pair<std::string, std::chrono::steady_clock::time_point>> seen;  // unit -> last beat, when
  for (int64_t round = 0;; ++round) {
    if (dist_->store_add(key("done"), 0) >= n) return -1;
    if (waiting && round % 5 == 0) waiting();
    const auto now = std::chrono::steady_clock::now();
    for (int64_t unit : todo_) {
      const std::string u = std::to_string(unit);
      if (dist_->store_get(key("done/" + u))) continue;
      const std::string beat = dist_->store_get(key("beat/" + u)).value_or("");
      auto it = seen.find(unit);
      if (it == seen.end() || it->second.first != beat) {
        seen[unit] = {beat, now};
        continue;
      }
      if (now - it->second.second < lease_) continue;
      const std::string owner = dist_->store_get(key("owner/" + u)).value_or("");
      const std::string token = me_ + "/" + beat;  // unique: the beat moves whenever an owner claims the unit
      if (!dist_->store_compare_set(key("owner/" + u), owner, token)) continue;  // another rank took it
      ++reclaimed_;
      own(unit, token);
      return unit;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

void UnitClaims::done(int64_t unit) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    owned_.erase(unit);
  }
  if (!dist_) return;
  dist_->store_set(key("done/" + std::to_string(unit)), "1");
  dist_->store_add(key("done"), 1);
}

}  // namespace fme
