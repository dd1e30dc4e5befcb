// Which work unit (unit_run.h) a process computes next. One process takes its units in order. Many (launched
// by torchrun, mpirun or srun) claim them through the rendezvous store, so a fast rank takes more units and a
// slow one fewer and nothing is assigned by rank number:
//   - a shared counter hands out the units not complete when the run (re)started, each once;
//   - the owner of a unit bumps its heartbeat counter every lease/4 s from a thread of its own;
//   - once every unit is handed out, a rank with nothing left watches the unfinished ones: a unit whose
//     heartbeat has not moved for the lease (its owner died) is taken over with a compare-and-set on its owner
//     key, and resumed from its directory (RunDir: exactly once);
//   - a unit is done when its directory's manifest is complete; the ranks count that in the store and stop
//     when every unit is done;
//   - an owner that stalled past the lease (not dead: swapped out, stopped, a slow file system) finds at its
//     next commit that the unit's owner key is no longer its own, and leaves the unit to the rank that took
//     it (owns()). The check and the commit are not one atomic step: an owner that stalls again in the
//     milliseconds between them can still race its successor, which a lease much longer than any stall avoids.
// Heartbeats are counters, not timestamps: each watcher times them by its own clock (no clock skew).
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dist/process_group.h"

namespace fme {

class UnitClaims {
 public:
  // `todo`: the units not complete when the run (re)started, the same list on every rank. `key`: names this
  // run's keys in the store. `dist` null: one process.
  UnitClaims(std::shared_ptr<dist::Dist> dist, std::vector<int64_t> todo, std::string key, double lease_s);
  ~UnitClaims();
  UnitClaims(const UnitClaims&) = delete;
  UnitClaims& operator=(const UnitClaims&) = delete;

  // The next unit this process computes, or -1 when every unit is done. May wait (for the ranks still
  // computing, to take over a unit whose owner stopped), calling `waiting` about once a second meanwhile.
  int64_t next(const std::function<void()>& waiting = {});
  // This process's unit is complete (on disk, and in object storage when the run is uploaded). Until then its
  // heartbeat goes on, also while the process computes its next unit.
  void done(int64_t unit);
  // Whether this process still owns `unit` (no other rank has taken it over). Always true for one process.
  bool owns(int64_t unit);
  // This process gave up `unit` (another rank took it over): its heartbeat stops, and it is not counted done.
  void lost(int64_t unit);
  int64_t reclaimed() const { return reclaimed_; }  // units taken over from a stopped rank

 private:
  std::string key(const std::string& what) const { return key_ + "/" + what; }
  void own(int64_t unit, const std::string& token);
  void beat_loop();

  std::shared_ptr<dist::Dist> dist_;
  std::vector<int64_t> todo_;
  std::string key_, me_;
  std::chrono::duration<double> lease_;
  size_t local_next_ = 0;  // one process
  int64_t reclaimed_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  // Units claimed and not done (whose heartbeats the thread bumps) -> the owner key's value this process set.
  std::map<int64_t, std::string> owned_;
  bool stop_ = false;
  std::thread beater_;
};

}  // namespace fme
