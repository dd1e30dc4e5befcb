// What the files of fme._native share: how path arguments are read, and one bind function per file.
#pragma once
#include <pybind11/pybind11.h>

#include <string>

namespace fme::native {

namespace py = pybind11;

// A str or os.PathLike as the UTF-8 path fme's C++ takes; TypeError naming `what` for anything else.
std::string fspath(py::handle path, const std::string& what);

void bind_tokenizer(py::module_& m);  // tokenizer_bindings.cpp: class Tokenizer
void bind_extract(py::module_& m);    // extract_bindings.cpp: extract()
void bind_gather(py::module_& m);     // gather_bindings.cpp: gather_rows()
void bind_read_ahead(py::module_& m); // read_ahead_bindings.cpp: read_ahead()
void bind_permute(py::module_& m);    // permute_bindings.cpp: permute()

}  // namespace fme::native
