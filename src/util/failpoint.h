// Named crash points for the tests that prove a job survives kill -9 at an exact moment (between a
// checkpoint's files and its index, say), which a timed kill from outside hits only by luck.
//
// FME_FAILPOINT=NAME kills the process with SIGKILL the first time failpoint(NAME) is reached; NAME@N on its
// N-th time. NAME[@N]:stop stops it instead (SIGSTOP, once): a process that stalls, and goes on when sent
// SIGCONT. Unset (always, outside such tests) a failpoint costs one comparison.
#pragma once

namespace fme {

void failpoint(const char* name);

}  // namespace fme
