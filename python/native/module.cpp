// fme._native: fme's C++ tokenizer and extract pipeline for the Python package (python/fme), which wraps them.
// Every C++ exception reaches Python as fme._native.Error (a RuntimeError) carrying the C++ message unchanged;
// libtorch's errors lose only their C++ backtrace, as the CLI prints them. Nothing here aborts the process.
#include <c10/util/Exception.h>

#include <new>

#include "native.h"

namespace fme::native {

std::string fspath(py::handle path, const std::string& what) {
  if (!py::isinstance<py::str>(path) && !py::hasattr(path, "__fspath__"))
    throw py::type_error(what + ": expected a str or os.PathLike path, got " +
                         std::string(py::str(path.get_type().attr("__name__"))));
  py::object p = py::module_::import("os").attr("fspath")(path);
  if (!py::isinstance<py::str>(p)) throw py::type_error(what + ": expected a str path, got bytes");
  return p.cast<std::string>();
}

}  // namespace fme::native

PYBIND11_MODULE(_native, m) {
  namespace py = pybind11;
  m.doc() = "fme's C++ tokenizer and activation extraction (use them through the fme package)";
  // Never freed: the type must outlive every call, and freeing it at exit would race interpreter teardown.
  static PyObject* error = PyErr_NewExceptionWithDoc(
      "fme._native.Error", "An error fme reported (the C++ message, unchanged: file, field, expected, got).",
      PyExc_RuntimeError, nullptr);
  if (!error) throw py::error_already_set();
  m.add_object("Error", py::handle(error));
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const py::error_already_set&) {
      throw;  // a Python exception (a progress callback's, KeyboardInterrupt): pybind11 restores it as it was
    } catch (const py::builtin_exception&) {
      throw;  // TypeError, ValueError, ... raised by the bindings themselves
    } catch (const std::bad_alloc&) {
      throw;  // MemoryError
    } catch (const c10::Error& e) {
      PyErr_SetString(error, e.what_without_backtrace());
    } catch (const std::exception& e) {  // fme::Error and its subclasses, and anything else from C++
      PyErr_SetString(error, e.what());
    }
  });
  fme::native::bind_tokenizer(m);
  fme::native::bind_extract(m);
  fme::native::bind_gather(m);
  fme::native::bind_read_ahead(m);
  fme::native::bind_permute(m);
}
