// The compute thread count every job applies before it runs (the CLI's --threads, the Python binding's
// threads=): one place, so both validate and apply it the same way.
#pragma once

namespace fme {

// All cores (Debian's libtorch would default to half of them).
int default_threads();

// Sets libtorch's intra-op thread count; inter-op threads are pinned to 1 when still possible (fme runs one op
// at a time per stream). ConfigError naming --threads unless threads >= 1.
void apply_threads(int threads);

}  // namespace fme
